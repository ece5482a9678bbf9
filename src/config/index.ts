/**
 * The worker's settings, read once from the environment: one group per concern (A1111, jobs, image
 * inputs, results, model downloads, RunPod, observability), each declared once in its own file with its defaults, rules and
 * documentation. `docs/configuration.md` is generated from the declarations (`npm run docs:config`) and
 * a test fails when it is stale. A bad value stops start-up with a message naming the variable, the
 * value and the rule; every bad variable is reported at once.
 */
import { A1111_SETTINGS } from './a1111.js';
import type { Env, Setting, SettingGroup } from './declare.js';
import { IMAGE_SETTINGS } from './images.js';
import { JOB_SETTINGS } from './job.js';
import { MODEL_SETTINGS } from './models.js';
import { OBSERVABILITY_SETTINGS } from './observability.js';
import { RESULT_SETTINGS } from './results.js';
import { RUNPOD_SETTINGS } from './runpod.js';

/** Every concern, in the order the documentation lists them. */
export const CONCERNS = {
  a1111: A1111_SETTINGS,
  job: JOB_SETTINGS,
  images: IMAGE_SETTINGS,
  results: RESULT_SETTINGS,
  models: MODEL_SETTINGS,
  runpod: RUNPOD_SETTINGS,
  observability: OBSERVABILITY_SETTINGS,
} as const;

type Finished<G> = G extends SettingGroup<infer _S, infer V> ? V : never;

/** The parsed settings, by concern. */
export type Config = { [K in keyof typeof CONCERNS]: Finished<(typeof CONCERNS)[K]> };
export type A1111Settings = Config['a1111'];
export type ImageSettings = Config['images'];
export type ResultSettings = Config['results'];
export type ModelSettings = Config['models'];
export type RunPodSettings = Config['runpod'];
export type ObservabilitySettings = Config['observability'];

/** Thrown when the environment holds a bad value; its message lists every offending variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
}

/** The raw text a setting reads: its own variable, else the first fallback that is set. */
function rawValue(setting: Setting<unknown>, env: Env): { name: string; raw: string | undefined } {
  const own = env[setting.env];
  if (own !== undefined && own.trim() !== '') return { name: setting.env, raw: own };
  for (const fallback of setting.fallbacks ?? []) {
    const value = env[fallback];
    // A fallback's bad value is reported under the setting's own name, which is the one documented.
    if (value) return { name: setting.env, raw: value };
  }
  return { name: setting.env, raw: own };
}

function parseGroup(group: SettingGroup<Record<string, Setting<unknown>>, unknown>, env: Env, problems: string[]) {
  const values: Record<string, unknown> = {};
  for (const [field, setting] of Object.entries(group.settings)) {
    const { name, raw } = rawValue(setting, env);
    const parsed = setting.schema.safeParse(raw);
    if (parsed.success) {
      values[field] = parsed.data;
      continue;
    }
    // A secret's value stays out of the message (it goes to the log); its length still helps to spot a mistake.
    const shown = setting.meta.secret && raw ? `<${raw.length} characters, hidden>` : JSON.stringify(raw ?? null);
    for (const issue of parsed.error.issues) problems.push(`${name}=${shown}: ${issue.message}`);
  }
  return values;
}

/**
 * Parses the environment. Throws {@link ConfigError} naming each bad variable, its value and the rule.
 *
 * @example
 * const config = loadConfig({ A1111_BASE_URL: 'http://127.0.0.1:7861' });
 * config.a1111.readyTimeoutMs; // 900000
 */
export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const parsed: Record<string, Record<string, unknown>> = {};
  for (const [concern, group] of Object.entries(CONCERNS)) {
    parsed[concern] = parseGroup(group as SettingGroup<Record<string, Setting<unknown>>, unknown>, env, problems);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const config: Record<string, unknown> = {};
  for (const [concern, group] of Object.entries(CONCERNS)) {
    const values = parsed[concern] as never;
    problems.push(...group.check(values, env));
    config[concern] = group.finish(values);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config as Config;
}

/** Every declared variable, concern by concern, in declaration order (for the documentation). */
export function declaredSettings(): { concern: string; title: string; setting: Setting<unknown> }[] {
  return Object.entries(CONCERNS).flatMap(([concern, group]) =>
    Object.values(group.settings as Record<string, Setting<unknown>>).map((setting) => ({
      concern,
      title: group.title,
      setting,
    })),
  );
}
