/**
 * The small language the settings are declared in: one call per environment variable, with its
 * default, its rule and a sentence of documentation, and a zod schema that turns the raw text into
 * the typed value. A concern groups its settings with `settingGroup`; the group's field names are the
 * names the rest of the worker reads (`config.a1111.requestTimeoutMs`), the variables' names are
 * RunPod users' (`A1111_REQUEST_TIMEOUT_MS`). Nothing is named a third time.
 */
import { isIP } from 'node:net';
import { z } from 'zod';

/** What the documentation generator reads for each variable. */
export interface SettingMeta {
  description: string;
  default: string;
  rule: string;
  secret?: boolean;
}

/** One environment variable: its name, its parser and its documentation. */
export interface Setting<T> {
  env: string;
  schema: z.ZodType<T, string | undefined>;
  meta: SettingMeta;
  /** Variables read, in order, when `env` is unset (RunPod's own names for the same thing). */
  fallbacks?: readonly string[];
}

export type Env = Record<string, string | undefined>;

type Shape = Record<string, Setting<unknown>>;

/** The values a group's settings parse to, by field name. */
export type ValuesOf<S extends Shape> = { [K in keyof S]: S[K] extends Setting<infer T> ? T : never };

/** A concern's settings, and the rules that tie several of them together. */
export interface SettingGroup<S extends Shape, V = ValuesOf<S>> {
  title: string;
  settings: S;
  /** Problems no single variable shows (`X must be set when Y is`), as `NAME=value: rule` lines. */
  check(values: ValuesOf<S>, env: Env): string[];
  /** The group's values as the worker reads them (derived values filled in). */
  finish(values: ValuesOf<S>): V;
}

/**
 * Declares a concern's settings.
 *
 * @example
 * const jobSettings = settingGroup('Jobs', { timeoutMs: integer('JOB_TIMEOUT_MS', { ... }) });
 */
export function settingGroup<S extends Shape, V = ValuesOf<S>>(
  title: string,
  settings: S,
  rules: { check?: (values: ValuesOf<S>, env: Env) => string[]; finish?: (values: ValuesOf<S>) => V } = {},
): SettingGroup<S, V> {
  return {
    title,
    settings,
    check: rules.check ?? (() => []),
    finish: rules.finish ?? ((values) => values as unknown as V),
  };
}

function isBlank(raw: string | undefined): raw is undefined {
  return raw === undefined || raw.trim() === '';
}

function setting<T>(
  env: string,
  schema: z.ZodType<T, string | undefined>,
  meta: SettingMeta,
  fallbacks?: readonly string[],
): Setting<T> {
  return { env, schema, meta, ...(fallbacks ? { fallbacks } : {}) };
}

/** A whole number in a range; blank means the default. */
export function integer(
  env: string,
  opts: { default: number; min: number; max: number; description: string; zeroMeans?: string },
): Setting<number> {
  const rule = `whole number from ${opts.min} to ${opts.max}${opts.zeroMeans ? ` (0 = ${opts.zeroMeans})` : ''}`;
  const schema = z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (isBlank(raw)) return opts.default;
      const value = Number(raw.trim());
      if (!Number.isInteger(value) || value < opts.min || value > opts.max) {
        ctx.addIssue({ code: 'custom', message: `must be a ${rule}`, input: raw });
        return z.NEVER;
      }
      return value;
    });
  return setting(env, schema, { description: opts.description, default: String(opts.default), rule });
}

/** One of a few words (any case), with aliases. */
export function oneOf<const T extends readonly string[]>(
  env: string,
  values: T,
  opts: {
    default: T[number];
    description: string;
    aliases?: Record<string, T[number]>;
    fallbacks?: readonly string[];
  },
): Setting<T[number]> {
  const rule = `one of ${values.join(', ')} (any case)`;
  const schema = z
    .string()
    .optional()
    .transform((raw, ctx): T[number] => {
      if (isBlank(raw)) return opts.default;
      const key = raw.trim().toLowerCase();
      const aliased = opts.aliases && Object.hasOwn(opts.aliases, key) ? opts.aliases[key] : undefined;
      if (aliased) return aliased;
      const found = values.find((v) => v === key);
      if (found === undefined) {
        ctx.addIssue({ code: 'custom', message: `must be ${rule}`, input: raw });
        return z.NEVER;
      }
      return found;
    });
  return setting(env, schema, { description: opts.description, default: opts.default, rule }, opts.fallbacks);
}

/** true or false, and the usual spellings of both. */
export function flag(env: string, opts: { default: boolean; description: string }): Setting<boolean> {
  const rule = 'true or false (also 1/0, yes/no)';
  const schema = z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (isBlank(raw)) return opts.default;
      const word = raw.trim().toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(word)) return true;
      if (['false', '0', 'no', 'off'].includes(word)) return false;
      ctx.addIssue({ code: 'custom', message: `must be ${rule}`, input: raw });
      return z.NEVER;
    });
  return setting(env, schema, { description: opts.description, default: String(opts.default), rule });
}

/** Comma-separated host names; `*.example.com` matches subdomains. */
export function hostList(
  env: string,
  opts: { default: string; description: string; shownDefault?: string },
): Setting<string[]> {
  const rule = 'comma-separated host names; `*.example.com` matches its subdomains';
  const schema = z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const text = isBlank(raw) ? opts.default : raw;
      const hosts = text
        .split(',')
        .map((h) => h.trim().toLowerCase())
        .filter(Boolean);
      const bad = hosts.find((h) => !/^(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(h));
      if (bad !== undefined) {
        ctx.addIssue({ code: 'custom', message: `must be ${rule} ("${bad}" is not a host name)`, input: raw });
        return z.NEVER;
      }
      return hosts;
    });
  return setting(env, schema, { description: opts.description, default: opts.shownDefault ?? opts.default, rule });
}

/** Comma-separated addresses or CIDR blocks (`10.0.0.0/8,127.0.0.1`). */
export function networkList(env: string, opts: { description: string }): Setting<string[]> {
  const schema = z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (isBlank(raw)) return [];
      const entries = raw
        .split(',')
        .map((e) => e.trim())
        .filter(Boolean);
      const bad = entries.find((entry) => {
        const [address, prefix, extra] = entry.split('/');
        const family = isIP(address ?? '');
        const max = family === 6 ? 128 : 32;
        return (
          family === 0 ||
          extra !== undefined ||
          (prefix !== undefined && !(Number(prefix) >= 0 && Number(prefix) <= max))
        );
      });
      if (bad !== undefined) {
        ctx.addIssue({
          code: 'custom',
          message: `must be comma-separated addresses or CIDR blocks ("${bad}" is neither)`,
          input: raw,
        });
        return z.NEVER;
      }
      return entries;
    });
  return setting(env, schema, {
    description: opts.description,
    default: '(none)',
    rule: 'comma-separated addresses or CIDR blocks',
  });
}

/** Text that may be unset; `pattern` (with `rule` in words) when it has a shape. */
export function optionalText(
  env: string,
  opts: { description: string; rule: string; pattern?: RegExp; secret?: boolean; shownDefault?: string },
): Setting<string | undefined> {
  const schema = z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (isBlank(raw)) return undefined;
      if (opts.pattern && !opts.pattern.test(raw)) {
        ctx.addIssue({ code: 'custom', message: `must be ${opts.rule}`, input: raw });
        return z.NEVER;
      }
      return raw;
    });
  return setting(env, schema, {
    description: opts.description,
    default: opts.shownDefault ?? '(unset)',
    rule: opts.rule,
    ...(opts.secret ? { secret: true } : {}),
  });
}

/** A directory path with a default. */
export function directory(env: string, opts: { default: string; description: string }): Setting<string> {
  const schema = z
    .string()
    .optional()
    .transform((raw) => (isBlank(raw) ? opts.default : raw.trim()));
  return setting(env, schema, { description: opts.description, default: opts.default, rule: 'a directory path' });
}

/** An absolute http(s) URL without query, fragment or credentials; the trailing slash trimmed. */
export function baseUrl(env: string, opts: { default: string; description: string; hint: string }): Setting<string> {
  const rule = 'absolute http(s) URL without query or credentials';
  const schema = z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const value = isBlank(raw) ? opts.default : raw.trim();
      let url: URL | null = null;
      try {
        url = new URL(value);
      } catch {
        url = null;
      }
      if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
        ctx.addIssue({ code: 'custom', message: 'must be an absolute http(s) URL', input: raw });
        return z.NEVER;
      }
      if (url.search || url.hash || url.username || url.password) {
        ctx.addIssue({
          code: 'custom',
          message: `must not carry a query, fragment or credentials (${opts.hint})`,
          input: raw,
        });
        return z.NEVER;
      }
      return url.href.replace(/\/+$/, '');
    });
  return setting(env, schema, { description: opts.description, default: opts.default, rule });
}

/** `user:password`, split at the first colon. */
export function credentials(
  env: string,
  opts: { description: string },
): Setting<{ username: string; password: string } | undefined> {
  const rule = '`user:password`';
  const schema = z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (isBlank(raw)) return undefined;
      const colon = raw.indexOf(':');
      if (colon < 1 || colon === raw.length - 1) {
        ctx.addIssue({ code: 'custom', message: `must be ${rule}`, input: raw });
        return z.NEVER;
      }
      return { username: raw.slice(0, colon), password: raw.slice(colon + 1) };
    });
  return setting(env, schema, { description: opts.description, default: '(unset)', rule, secret: true });
}
