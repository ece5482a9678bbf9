/**
 * Worker settings, read once from the environment and parsed with zod.
 *
 * Every setting is declared once below with its default, its rule and a sentence of documentation;
 * `docs/configuration.md` is generated from these declarations (`npm run docs:config`) and a test fails
 * when it is stale. A bad value stops start-up with a message naming the variable, the value and the rule.
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

export const settingsRegistry = z.registry<SettingMeta>();

type Env = Record<string, string | undefined>;

function isBlank(raw: string | undefined): raw is undefined {
  return raw === undefined || raw.trim() === '';
}

function declare<T extends z.ZodType>(schema: T, meta: SettingMeta): T {
  settingsRegistry.add(schema, meta);
  return schema;
}

function integer(opts: { default: number; min: number; max: number; description: string; zeroMeans?: string }) {
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
  return declare(schema, { description: opts.description, default: String(opts.default), rule });
}

function oneOf<const T extends readonly string[]>(
  values: T,
  opts: { default: T[number]; description: string; aliases?: Record<string, T[number]> },
) {
  const rule = `one of ${values.join(', ')} (any case)`;
  const schema = z
    .string()
    .optional()
    .transform((raw, ctx): T[number] => {
      if (isBlank(raw)) return opts.default;
      const key = raw.trim().toLowerCase();
      const aliased = opts.aliases?.[key];
      if (aliased) return aliased;
      const found = values.find((v) => v === key);
      if (found === undefined) {
        ctx.addIssue({ code: 'custom', message: `must be ${rule}`, input: raw });
        return z.NEVER;
      }
      return found;
    });
  return declare(schema, { description: opts.description, default: opts.default, rule });
}

function flag(opts: { default: boolean; description: string }) {
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
  return declare(schema, { description: opts.description, default: String(opts.default), rule });
}

function hostList(opts: { default: string; description: string }) {
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
  return declare(schema, { description: opts.description, default: opts.default, rule });
}

function optionalText(opts: { description: string; rule: string; pattern?: RegExp; secret?: boolean }) {
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
  return declare(schema, {
    description: opts.description,
    default: '(unset)',
    rule: opts.rule,
    ...(opts.secret ? { secret: true } : {}),
  });
}

const baseUrl = declare(
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const value = isBlank(raw) ? 'http://127.0.0.1:3000' : raw.trim();
      let url: URL;
      try {
        url = new URL(value);
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be an absolute http(s) URL', input: raw });
        return z.NEVER;
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        ctx.addIssue({ code: 'custom', message: 'must be an absolute http(s) URL', input: raw });
        return z.NEVER;
      }
      if (url.search || url.hash || url.username || url.password) {
        ctx.addIssue({
          code: 'custom',
          message: 'must not carry a query, fragment or credentials (use A1111_API_AUTH)',
          input: raw,
        });
        return z.NEVER;
      }
      return url.href.replace(/\/+$/, '');
    }),
  {
    description:
      'Where the WebUI listens. The API lives under `/sdapi/v1` of this URL (a `--subpath` goes into the URL).',
    default: 'http://127.0.0.1:3000',
    rule: 'absolute http(s) URL without query or credentials',
  },
);

/** The zod schema of the whole environment the worker reads. */
export const ConfigSchema = z.object({
  A1111_BASE_URL: baseUrl,
  A1111_API_AUTH: optionalText({
    description: 'Credentials when A1111 runs with `--api-auth`, sent as HTTP Basic auth. Never logged.',
    rule: '`user:password`',
    pattern: /^[^:]+:.+$/s,
    secret: true,
  }),
  A1111_LAUNCH_COMMAND: optionalText({
    description:
      "When set, the worker starts the WebUI itself with this shell command, forwards its output to the log and knows when it dies (a dead WebUI fails readiness at once and a crash fails the job BACKEND_CRASHED). The WebUI gets the worker's environment without its secrets (RUNPOD_AI_API_KEY, RUNPOD_WEBHOOK_*, A1111_API_AUTH, *_TOKEN, *_API_KEY, *_SECRET, *_SECRET_KEY, *_SECRET_ACCESS_KEY, *_PASSWORD). Unset: the WebUI is run by someone else.",
    rule: 'a shell command line',
  }),
  A1111_REQUEST_TIMEOUT_MS: integer({
    default: 600_000,
    min: 1_000,
    max: 86_400_000,
    description: 'Timeout of one HTTP request to A1111 (a txt2img call waits this long for its images).',
  }),
  A1111_HTTP_RETRIES: integer({
    default: 10,
    min: 0,
    max: 100,
    description:
      'Retries of one request on 502/503/504 and on connection errors, txt2img POSTs included (against the local API they mean the request was not processed).',
  }),
  A1111_RETRY_BASE_DELAY_MS: integer({
    default: 100,
    min: 1,
    max: 60_000,
    description: 'First retry delay; each further retry doubles it, with up to 20 % jitter.',
  }),
  A1111_RETRY_MAX_DELAY_MS: integer({
    default: 10_000,
    min: 1,
    max: 600_000,
    description: 'Ceiling of one retry delay.',
  }),
  A1111_READY_POLL_INTERVAL_MS: integer({
    default: 200,
    min: 10,
    max: 60_000,
    description: 'Pause between readiness probes (GET /sdapi/v1/sd-models must answer 200 with a JSON array).',
  }),
  A1111_READY_LOG_EVERY: integer({
    default: 15,
    min: 1,
    max: 1_000_000,
    description: 'Log a "still waiting" line every Nth failed readiness probe.',
  }),
  A1111_READY_TIMEOUT_MS: integer({
    default: 900_000,
    min: 0,
    max: 86_400_000,
    zeroMeans: 'wait forever',
    description: 'How long a job waits for the API to become ready before failing BACKEND_UNAVAILABLE.',
  }),
  A1111_READY_PROBE_TIMEOUT_MS: integer({
    default: 10_000,
    min: 100,
    max: 600_000,
    description: 'Timeout of one readiness probe.',
  }),
  A1111_ROUTE_RECOVERY_ATTEMPTS: integer({
    default: 3,
    min: 0,
    max: 100,
    description:
      'Recovery attempts after a route 404 ({"detail":"Not Found"}: the WebUI is reloading); then BACKEND_ROUTE_MISSING.',
  }),
  A1111_ROUTE_RECOVERY_DELAY_MS: integer({
    default: 5_000,
    min: 0,
    max: 600_000,
    description: 'Pause before each route-404 recovery attempt.',
  }),
  A1111_INTERRUPT_SETTLE_TIMEOUT_MS: integer({
    default: 10_000,
    min: 0,
    max: 600_000,
    description:
      'How long a job stopped by its deadline, a request timeout or a cancel waits for A1111 to be done with its generation (the interrupt is sent whenever the generation starts, even after the job has ended).',
  }),
  MODEL_REGISTRY_WAIT_MS: integer({
    default: 3_000,
    min: 0,
    max: 600_000,
    description: 'After a model download and POST /sdapi/v1/refresh-checkpoints, pause before checking the API again.',
  }),
  JOB_TIMEOUT_MS: integer({
    default: 0,
    min: 0,
    max: 86_400_000,
    zeroMeans: 'no deadline',
    description:
      "Whole-job deadline (readiness, verification and generation). Set it below the endpoint's execution timeout so a job ends with BACKEND_TIMEOUT and an interrupted GPU rather than being killed.",
  }),
  PROGRESS_POLL_INTERVAL_MS: integer({
    default: 1_000,
    min: 0,
    max: 60_000,
    zeroMeans: 'no progress polling',
    description: 'How often GET /sdapi/v1/progress is read while A1111 generates.',
  }),
  WORKER_CONCURRENCY: integer({
    default: 1,
    min: 1,
    max: 16,
    description:
      "Jobs the worker holds at once. With 2, the next job already waits in the WebUI's queue when the current one finishes, so the GPU is never idle between jobs (see docs/runpod.md for the trade-off).",
  }),
  WORKER_REFRESH_ON_CRASH: flag({
    default: true,
    description:
      'Answer crash-class failures (BACKEND_CRASHED, BACKEND_UNAVAILABLE) with `"stopPod": true` so RunPod replaces the worker.',
  }),
  JOB_TAKE_ERROR_DELAY_MS: integer({
    default: 1_000,
    min: 10,
    max: 600_000,
    description: 'First pause after a failed job-take (network error or unexpected status); doubles up to the maximum.',
  }),
  JOB_TAKE_ERROR_DELAY_MAX_MS: integer({
    default: 30_000,
    min: 10,
    max: 600_000,
    description: 'Longest pause between failed job-takes.',
  }),
  JOB_DONE_RETRIES: integer({
    default: 5,
    min: 0,
    max: 100,
    description:
      'Retries of a job-done post on 5xx and network errors, with backoff; a result still unsent is logged with the job id.',
  }),
  JOB_DONE_RETRY_DELAY_MS: integer({
    default: 1_000,
    min: 1,
    max: 600_000,
    description: 'First pause before retrying a job-done post; doubles up to 10 times its value.',
  }),
  PROGRESS_POST_INTERVAL_MS: integer({
    default: 2_000,
    min: 0,
    max: 600_000,
    zeroMeans: 'no progress posts',
    description: 'Least time between two progress posts of a job ({"status":"IN_PROGRESS","output":{...}}).',
  }),
  METRICS_LOG_INTERVAL_MS: integer({
    default: 60_000,
    min: 100,
    max: 86_400_000,
    description: 'While jobs run, a metrics summary line is logged this often (and once at shutdown).',
  }),
  MODELS_DIR: declare(
    z
      .string()
      .optional()
      .transform((raw) => (isBlank(raw) ? '/stable-diffusion-webui/models/Stable-diffusion' : raw.trim())),
    {
      description:
        "Where downloaded checkpoints go: A1111's checkpoint folder (the one it scans on POST /sdapi/v1/refresh-checkpoints).",
      default: '/stable-diffusion-webui/models/Stable-diffusion',
      rule: 'a directory path',
    },
  ),
  MODEL_DOWNLOAD_HOSTS: hostList({
    default: 'huggingface.co,*.huggingface.co,hf.co,*.hf.co,civitai.com,*.civitai.com',
    description:
      "Hosts a job's model URL may name. Redirects from them may lead elsewhere (their CDNs), but never to a private address.",
  }),
  MODEL_DOWNLOAD_PRIVATE_ALLOW: declare(
    z
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
      }),
    {
      description:
        'Private, loopback or link-local networks downloads may reach after all (a model server on your own network), e.g. `10.0.0.0/8,127.0.0.1`. Everything else private is refused.',
      default: '(none)',
      rule: 'comma-separated addresses or CIDR blocks',
    },
  ),
  MODEL_DOWNLOAD_TIMEOUT_MS: integer({
    default: 1_800_000,
    min: 1_000,
    max: 86_400_000,
    description: 'Deadline of one checkpoint download.',
  }),
  MODEL_DOWNLOAD_MAX_BYTES: integer({
    default: 17_179_869_184,
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    description: 'Largest checkpoint a job may download (16 GiB by default).',
  }),
  MODEL_DOWNLOAD_MIN_FREE_BYTES: integer({
    default: 536_870_912,
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    description: 'Free disk space to keep beyond the downloaded file; a download that would eat into it is refused.',
  }),
  HF_TOKEN: optionalText({
    description:
      'Hugging Face access token for gated checkpoints; sent only to Hugging Face hosts. Never taken from a job.',
    rule: 'any text',
    secret: true,
  }),
  CIVITAI_TOKEN: optionalText({
    description: 'Civitai API token; sent only to civitai.com. Never taken from a job.',
    rule: 'any text',
    secret: true,
  }),
  JOURNAL_DIR: optionalText({
    description:
      'Where job journals go (one JSON-lines file per job, replayable with `node dist/src/main.js replay <file>`). Unset: no journals.',
    rule: 'a directory path',
  }),
  JOURNAL_KEEP: oneOf(['failed', 'all'] as const, {
    default: 'failed',
    description: 'Which jobs keep their journal when JOURNAL_DIR is set: only the failed ones, or all.',
  }),
  STATELY_INSPECT: optionalText({
    description:
      'Send every job machine to the Stately inspector: `serve` starts a local bridge on STATELY_INSPECT_PORT (open it in a browser), a ws:// URL connects to a bridge elsewhere. Unset: off. See docs/inspect.md.',
    rule: '`serve` or a ws:// or wss:// URL',
    pattern: /^(serve|wss?:\/\/.+)$/,
  }),
  STATELY_INSPECT_PORT: integer({
    default: 8080,
    min: 1,
    max: 65_535,
    description: 'Port of the local inspector bridge started by STATELY_INSPECT=serve.',
  }),
  LOG_LEVEL: oneOf(['error', 'warn', 'info', 'debug'] as const, {
    default: 'info',
    description:
      "Least severe level written; when unset, RUNPOD_LOG_LEVEL or RUNPOD_DEBUG_LEVEL is read. RunPod names are accepted: WARNING means warn, TRACE means debug, NOTSET means error (RunPod's NOTSET prints nothing, but a lost job must always leave an error line), and 0-5 are RunPod's level numbers.",
    aliases: {
      warning: 'warn',
      trace: 'debug',
      notset: 'error',
      '0': 'error',
      '1': 'debug',
      '2': 'debug',
      '3': 'info',
      '4': 'warn',
      '5': 'error',
    },
  }),
  LOG_FORMAT: oneOf(['auto', 'json', 'runpod', 'text'] as const, {
    default: 'auto',
    description:
      'Log line shape. `auto` is `runpod` ({requestId, message, level}) when RUNPOD_ENDPOINT_ID is set, `text` in a terminal, `json` otherwise.',
  }),
  RUNPOD_ENDPOINT_ID: optionalText({
    description: "Set by RunPod on its workers; switches `auto` logging to RunPod's JSON line shape.",
    rule: 'any text',
  }),
  RUNPOD_WEBHOOK_GET_JOB: optionalText({
    description:
      'Set by RunPod: the job-take URL (`$ID` is the worker id). When it is set and no test input is given, the worker runs its production job loop.',
    rule: 'an http(s) URL template',
    pattern: /^https?:\/\//,
  }),
  RUNPOD_WEBHOOK_POST_OUTPUT: optionalText({
    description: 'Set by RunPod: the job-done URL (`$ID` is the job id, `$RUNPOD_POD_ID` the worker id).',
    rule: 'an http(s) URL template',
    pattern: /^https?:\/\//,
  }),
  RUNPOD_WEBHOOK_POST_STREAM: optionalText({
    description: 'Set by RunPod: the URL for streamed partial outputs (same substitutions as job-done).',
    rule: 'an http(s) URL template',
    pattern: /^https?:\/\//,
  }),
  RUNPOD_WEBHOOK_PING: optionalText({
    description:
      'Set by RunPod: the heartbeat URL. Without it (or without RUNPOD_AI_API_KEY and RUNPOD_POD_ID) no heartbeat is sent.',
    rule: 'an http(s) URL template',
    pattern: /^https?:\/\//,
  }),
  RUNPOD_PING_INTERVAL: integer({
    default: 10_000,
    min: 100,
    max: 3_600_000,
    description: 'Set by RunPod: milliseconds between heartbeats.',
  }),
  RUNPOD_AI_API_KEY: optionalText({
    description: 'Set by RunPod: sent as the raw Authorization header of every control-plane request. Never logged.',
    rule: 'any text',
    secret: true,
  }),
  RUNPOD_POD_ID: optionalText({
    description: "Set by RunPod: this worker's id, substituted into the webhook URLs. A random id is used when unset.",
    rule: 'any text',
  }),
  RUNPOD_POD_HOSTNAME: optionalText({
    description: 'Set by RunPod: the host name, reported with internal errors.',
    rule: 'any text',
  }),
});

export type ConfigEnv = z.input<typeof ConfigSchema>;

/** The parsed settings the rest of the worker uses. */
export interface Config {
  a1111BaseUrl: string;
  a1111LaunchCommand: string | undefined;
  a1111Auth: { username: string; password: string } | undefined;
  requestTimeoutMs: number;
  httpRetries: number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  readyPollIntervalMs: number;
  readyLogEvery: number;
  readyTimeoutMs: number;
  readyProbeTimeoutMs: number;
  routeRecoveryAttempts: number;
  routeRecoveryDelayMs: number;
  interruptSettleTimeoutMs: number;
  modelRegistryWaitMs: number;
  jobTimeoutMs: number;
  progressPollIntervalMs: number;
  concurrency: number;
  refreshOnCrash: boolean;
  jobTakeErrorDelayMs: number;
  jobTakeErrorDelayMaxMs: number;
  jobDoneRetries: number;
  jobDoneRetryDelayMs: number;
  progressPostIntervalMs: number;
  metricsLogIntervalMs: number;
  models: ModelSettings;
  journalDir: string | undefined;
  journalKeep: 'failed' | 'all';
  inspect: { target: string | undefined; port: number };
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  logFormat: 'auto' | 'json' | 'runpod' | 'text';
  runpodEndpointId: string | undefined;
  runpod: RunPodSettings;
}

/** Checkpoint downloads. */
export interface ModelSettings {
  dir: string;
  allowedHosts: string[];
  /** Private networks that are allowed after all, as addresses or CIDR blocks. */
  privateAllow: string[];
  timeoutMs: number;
  maxBytes: number;
  minFreeBytes: number;
  hfToken: string | undefined;
  civitaiToken: string | undefined;
}

/** What RunPod sets on a serverless worker. */
export interface RunPodSettings {
  getJobUrl: string | undefined;
  postOutputUrl: string | undefined;
  postStreamUrl: string | undefined;
  pingUrl: string | undefined;
  pingIntervalMs: number;
  apiKey: string | undefined;
  podId: string | undefined;
  podHostname: string | undefined;
}

/** Thrown when the environment holds a bad value; its message lists every offending variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
}

function describeProblem(issue: z.core.$ZodIssue, env: Env): string {
  const variable = String(issue.path[0] ?? '(environment)');
  const raw = env[variable];
  const field = (ConfigSchema.shape as Record<string, z.ZodType | undefined>)[variable];
  const secret = field !== undefined && settingsRegistry.get(field)?.secret === true;
  // A secret's value stays out of the message (it goes to the log); its length still helps to spot a mistake.
  const shown = secret && raw ? `<${raw.length} characters, hidden>` : JSON.stringify(raw ?? null);
  return `${variable}=${shown}: ${issue.message}`;
}

/**
 * Parses the environment. Throws {@link ConfigError} naming each bad variable, its value and the rule.
 *
 * @example
 * const config = loadConfig({ A1111_BASE_URL: 'http://127.0.0.1:7861' });
 * config.readyTimeoutMs; // 900000
 */
export function loadConfig(env: Env = process.env): Config {
  const levelFallback = env['RUNPOD_LOG_LEVEL'] || env['RUNPOD_DEBUG_LEVEL'];
  const effective = isBlank(env['LOG_LEVEL']) && levelFallback ? { ...env, LOG_LEVEL: levelFallback } : env;
  const parsed = ConfigSchema.safeParse(effective);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((issue) => describeProblem(issue, effective)));
  const v = parsed.data;
  if (v.RUNPOD_WEBHOOK_GET_JOB && !v.RUNPOD_WEBHOOK_POST_OUTPUT) {
    throw new ConfigError([
      'RUNPOD_WEBHOOK_POST_OUTPUT=null: must be set when RUNPOD_WEBHOOK_GET_JOB is set (there would be nowhere to post results)',
    ]);
  }
  const auth = v.A1111_API_AUTH;
  const colon = auth?.indexOf(':') ?? -1;
  return {
    a1111BaseUrl: v.A1111_BASE_URL,
    a1111LaunchCommand: v.A1111_LAUNCH_COMMAND,
    a1111Auth: auth ? { username: auth.slice(0, colon), password: auth.slice(colon + 1) } : undefined,
    requestTimeoutMs: v.A1111_REQUEST_TIMEOUT_MS,
    httpRetries: v.A1111_HTTP_RETRIES,
    retryBaseDelayMs: v.A1111_RETRY_BASE_DELAY_MS,
    retryMaxDelayMs: v.A1111_RETRY_MAX_DELAY_MS,
    readyPollIntervalMs: v.A1111_READY_POLL_INTERVAL_MS,
    readyLogEvery: v.A1111_READY_LOG_EVERY,
    readyTimeoutMs: v.A1111_READY_TIMEOUT_MS,
    readyProbeTimeoutMs: v.A1111_READY_PROBE_TIMEOUT_MS,
    routeRecoveryAttempts: v.A1111_ROUTE_RECOVERY_ATTEMPTS,
    routeRecoveryDelayMs: v.A1111_ROUTE_RECOVERY_DELAY_MS,
    interruptSettleTimeoutMs: v.A1111_INTERRUPT_SETTLE_TIMEOUT_MS,
    modelRegistryWaitMs: v.MODEL_REGISTRY_WAIT_MS,
    jobTimeoutMs: v.JOB_TIMEOUT_MS,
    progressPollIntervalMs: v.PROGRESS_POLL_INTERVAL_MS,
    concurrency: v.WORKER_CONCURRENCY,
    refreshOnCrash: v.WORKER_REFRESH_ON_CRASH,
    jobTakeErrorDelayMs: v.JOB_TAKE_ERROR_DELAY_MS,
    jobTakeErrorDelayMaxMs: Math.max(v.JOB_TAKE_ERROR_DELAY_MAX_MS, v.JOB_TAKE_ERROR_DELAY_MS),
    jobDoneRetries: v.JOB_DONE_RETRIES,
    jobDoneRetryDelayMs: v.JOB_DONE_RETRY_DELAY_MS,
    progressPostIntervalMs: v.PROGRESS_POST_INTERVAL_MS,
    metricsLogIntervalMs: v.METRICS_LOG_INTERVAL_MS,
    models: {
      dir: v.MODELS_DIR,
      allowedHosts: v.MODEL_DOWNLOAD_HOSTS,
      privateAllow: v.MODEL_DOWNLOAD_PRIVATE_ALLOW,
      timeoutMs: v.MODEL_DOWNLOAD_TIMEOUT_MS,
      maxBytes: v.MODEL_DOWNLOAD_MAX_BYTES,
      minFreeBytes: v.MODEL_DOWNLOAD_MIN_FREE_BYTES,
      hfToken: v.HF_TOKEN,
      civitaiToken: v.CIVITAI_TOKEN,
    },
    journalDir: v.JOURNAL_DIR,
    journalKeep: v.JOURNAL_KEEP,
    inspect: { target: v.STATELY_INSPECT, port: v.STATELY_INSPECT_PORT },
    logLevel: v.LOG_LEVEL,
    logFormat: v.LOG_FORMAT,
    runpodEndpointId: v.RUNPOD_ENDPOINT_ID,
    runpod: {
      getJobUrl: v.RUNPOD_WEBHOOK_GET_JOB,
      postOutputUrl: v.RUNPOD_WEBHOOK_POST_OUTPUT,
      postStreamUrl: v.RUNPOD_WEBHOOK_POST_STREAM,
      pingUrl: v.RUNPOD_WEBHOOK_PING,
      pingIntervalMs: v.RUNPOD_PING_INTERVAL,
      apiKey: v.RUNPOD_AI_API_KEY,
      podId: v.RUNPOD_POD_ID,
      podHostname: v.RUNPOD_POD_HOSTNAME,
    },
  };
}
