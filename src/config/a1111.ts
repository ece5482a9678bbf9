/** How the worker reaches the WebUI, how hard it tries, and how long it waits for it. */
import { readFileSync } from 'node:fs';
import { baseUrl, credentials, integer, optionalText, settingGroup } from './declare.js';

/** The warm-up when WARMUP says `on`: one step, the smallest picture, nothing saved. */
export const DEFAULT_WARMUP: Readonly<Record<string, unknown>> = { prompt: 'warm-up', steps: 1, width: 64, height: 64 };
const WARMUP_WORDS = new Map<string, boolean>([
  ['on', true],
  ['true', true],
  ['1', true],
  ['default', true],
  ['off', false],
  ['false', false],
  ['0', false],
  ['none', false],
]);

function readWarmupFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(
      `cannot read it (${(error as NodeJS.ErrnoException).code ?? 'error'}): must be on, off or a JSON file`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error('the file is not JSON: it must hold a txt2img request, e.g. {"prompt": "warm-up", "steps": 1}');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error('the file must hold a JSON object: a txt2img request');
  }
  return parsed as Record<string, unknown>;
}

/** The warm-up request WARMUP asks for; null for none. */
function warmupRequest(setting: string | undefined): Readonly<Record<string, unknown>> | null {
  if (setting === undefined) return DEFAULT_WARMUP;
  const word = WARMUP_WORDS.get(setting.trim().toLowerCase());
  if (word !== undefined) return word ? DEFAULT_WARMUP : null;
  try {
    return readWarmupFile(setting);
  } catch {
    return null; // `check` has reported it, and the configuration is refused
  }
}

export const A1111_SETTINGS = settingGroup(
  'A1111',
  {
    baseUrl: baseUrl('A1111_BASE_URL', {
      default: 'http://127.0.0.1:3000',
      hint: 'use A1111_API_AUTH',
      description:
        'Where the WebUI listens. The API lives under `/sdapi/v1` of this URL (a `--subpath` goes into the URL).',
    }),
    auth: credentials('A1111_API_AUTH', {
      description: 'Credentials when A1111 runs with `--api-auth`, sent as HTTP Basic auth. Never logged.',
    }),
    launchCommand: optionalText('A1111_LAUNCH_COMMAND', {
      description:
        "When set, the worker starts the WebUI itself with this shell command, forwards its output to the log, knows when it dies (a crash fails the running jobs BACKEND_CRASHED) and restarts it (A1111_RESTART_LIMIT). The WebUI gets the worker's environment without its secrets (RUNPOD_AI_API_KEY, RUNPOD_WEBHOOK_*, A1111_API_AUTH, *_TOKEN, *_API_KEY, *_SECRET, *_SECRET_KEY, *_SECRET_ACCESS_KEY, *_PASSWORD). Unset: the WebUI is run by someone else.",
      rule: 'a shell command line',
    }),
    restartLimit: integer('A1111_RESTART_LIMIT', {
      default: 3,
      min: 0,
      max: 1_000,
      description:
        'With A1111_LAUNCH_COMMAND: how many times the worker restarts a WebUI that died, within A1111_RESTART_WINDOW_MS, before it gives up and asks RunPod for a fresh worker (0: never restart).',
    }),
    restartWindowMs: integer('A1111_RESTART_WINDOW_MS', {
      default: 600_000,
      min: 1_000,
      max: 86_400_000,
      description: 'The window A1111_RESTART_LIMIT counts restarts in.',
    }),
    restartDelayMs: integer('A1111_RESTART_DELAY_MS', {
      default: 1_000,
      min: 0,
      max: 600_000,
      description: 'Pause between a WebUI that died and its restart.',
    }),
    requestTimeoutMs: integer('A1111_REQUEST_TIMEOUT_MS', {
      default: 600_000,
      min: 1_000,
      max: 86_400_000,
      description: 'Timeout of one HTTP request to A1111 (a txt2img call waits this long for its images).',
    }),
    httpRetries: integer('A1111_HTTP_RETRIES', {
      default: 10,
      min: 0,
      max: 100,
      description:
        'Retries of one request on 502/503/504 and on connection errors, txt2img POSTs included (against the local API they mean the request was not processed).',
    }),
    retryBaseDelayMs: integer('A1111_RETRY_BASE_DELAY_MS', {
      default: 100,
      min: 1,
      max: 60_000,
      description: 'First retry delay; each further retry doubles it, with up to 20 % jitter.',
    }),
    retryMaxDelayMs: integer('A1111_RETRY_MAX_DELAY_MS', {
      default: 10_000,
      min: 1,
      max: 600_000,
      description: 'Ceiling of one retry delay.',
    }),
    readyPollIntervalMs: integer('A1111_READY_POLL_INTERVAL_MS', {
      default: 200,
      min: 10,
      max: 60_000,
      description: 'Pause between readiness probes (GET /sdapi/v1/sd-models must answer 200 with a JSON array).',
    }),
    readyLogEvery: integer('A1111_READY_LOG_EVERY', {
      default: 15,
      min: 1,
      max: 1_000_000,
      description: 'Log a "still waiting" line every Nth failed readiness probe.',
    }),
    readyTimeoutMs: integer('A1111_READY_TIMEOUT_MS', {
      default: 900_000,
      min: 0,
      max: 86_400_000,
      zeroMeans: 'wait forever',
      description: 'How long a job waits for the API to become ready before failing BACKEND_UNAVAILABLE.',
    }),
    readyProbeTimeoutMs: integer('A1111_READY_PROBE_TIMEOUT_MS', {
      default: 10_000,
      min: 100,
      max: 600_000,
      description: 'Timeout of one readiness probe.',
    }),
    routeRecoveryAttempts: integer('A1111_ROUTE_RECOVERY_ATTEMPTS', {
      default: 3,
      min: 0,
      max: 100,
      description:
        'Recovery attempts after a route 404 ({"detail":"Not Found"}: the WebUI is reloading); then BACKEND_ROUTE_MISSING.',
    }),
    routeRecoveryDelayMs: integer('A1111_ROUTE_RECOVERY_DELAY_MS', {
      default: 5_000,
      min: 0,
      max: 600_000,
      description: 'Pause before each route-404 recovery attempt.',
    }),
    interruptSettleTimeoutMs: integer('A1111_INTERRUPT_SETTLE_TIMEOUT_MS', {
      default: 10_000,
      min: 0,
      max: 600_000,
      description:
        'How long a job stopped by its deadline, a request timeout or a cancel waits for A1111 to be done with its generation (the interrupt is sent whenever the generation starts, even after the job has ended).',
    }),
    warmup: optionalText('WARMUP', {
      shownDefault: 'on',
      rule: '`off`, `on`, or the path of a JSON file holding a txt2img request',
      description:
        'The generation the worker runs once A1111 answers and before its first job-take, so the first job does not wait for the checkpoint load A1111 does in the background: `on` a one-step 64×64 txt2img, `off` none, or a file with the request to run (a larger one warms more of the GPU).',
    }),
  },
  {
    check: ({ warmup }) => {
      if (warmup === undefined || WARMUP_WORDS.has(warmup.trim().toLowerCase())) return [];
      try {
        readWarmupFile(warmup);
        return [];
      } catch (error) {
        return [`WARMUP=${JSON.stringify(warmup)}: ${error instanceof Error ? error.message : String(error)}`];
      }
    },
    finish: ({ warmup, ...rest }) => ({ ...rest, warmup: warmupRequest(warmup) }),
  },
);
