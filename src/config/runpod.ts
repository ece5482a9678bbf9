/** RunPod's serverless protocol: what RunPod sets on a worker, and how the worker's job loop behaves. */
import { flag, integer, optionalText, settingGroup } from './declare.js';

const urlTemplate = (env: string, description: string) =>
  optionalText(env, { description, rule: 'an http(s) URL template', pattern: /^https?:\/\// });

export const RUNPOD_SETTINGS = settingGroup(
  'RunPod',
  {
    concurrency: integer('WORKER_CONCURRENCY', {
      default: 1,
      min: 1,
      max: 16,
      description:
        "Jobs the worker holds at once. With 2, the next job already waits in the WebUI's queue when the current one finishes, so the GPU is never idle between jobs (see docs/runpod.md for the trade-off).",
    }),
    refreshOnCrash: flag('WORKER_REFRESH_ON_CRASH', {
      default: true,
      description:
        'When A1111 is gone for good (unreachable past A1111_READY_TIMEOUT_MS after a crash, or a supervised WebUI that died more often than A1111_RESTART_LIMIT allows), answer the jobs still running with `"stopPod": true` so RunPod replaces the worker (which exits either way). A crash A1111 recovers from never asks for a fresh worker.',
    }),
    jobTakeErrorDelayMs: integer('JOB_TAKE_ERROR_DELAY_MS', {
      default: 1_000,
      min: 10,
      max: 600_000,
      description:
        'First pause after a failed job-take (network error or unexpected status); doubles up to the maximum.',
    }),
    jobTakeErrorDelayMaxMs: integer('JOB_TAKE_ERROR_DELAY_MAX_MS', {
      default: 30_000,
      min: 10,
      max: 600_000,
      description:
        'Longest pause between failed job-takes, and between empty answers that come back at once (those pauses stop at 1 s).',
    }),
    throttleWaitMs: integer('JOB_TAKE_THROTTLE_WAIT_MS', {
      default: 5_000,
      min: 10,
      max: 600_000,
      description:
        "Pause after RunPod answers 429 to a job-take or stop-channel request (RunPod's own runtime waits 5 s).",
    }),
    jobDoneRetries: integer('JOB_DONE_RETRIES', {
      default: 5,
      min: 0,
      max: 100,
      description:
        'Retries of a job-done post on 5xx and network errors, with backoff; a result still unsent is logged with the job id and posted again, round after round, until RunPod takes or refuses it.',
    }),
    jobDoneRetryDelayMs: integer('JOB_DONE_RETRY_DELAY_MS', {
      default: 1_000,
      min: 1,
      max: 600_000,
      description: 'First pause before retrying a job-done post; doubles up to 10 times its value.',
    }),
    progressPostIntervalMs: integer('PROGRESS_POST_INTERVAL_MS', {
      default: 2_000,
      min: 0,
      max: 600_000,
      zeroMeans: 'no progress posts',
      description: 'Least time between two progress posts of a job ({"status":"IN_PROGRESS","output":{...}}).',
    }),
    metricsLogIntervalMs: integer('METRICS_LOG_INTERVAL_MS', {
      default: 60_000,
      min: 100,
      max: 86_400_000,
      description: 'While jobs run, a metrics summary line is logged this often (and once at shutdown).',
    }),
    endpointId: optionalText('RUNPOD_ENDPOINT_ID', {
      description: "Set by RunPod on its workers; switches `auto` logging to RunPod's JSON line shape.",
      rule: 'any text',
    }),
    getJobUrl: urlTemplate(
      'RUNPOD_WEBHOOK_GET_JOB',
      'Set by RunPod: the job-take URL (`$ID` is the worker id). When it is set and no test input is given, the worker runs its production job loop.',
    ),
    postOutputUrl: urlTemplate(
      'RUNPOD_WEBHOOK_POST_OUTPUT',
      'Set by RunPod: the job-done URL (`$ID` is the job id, `$RUNPOD_POD_ID` the worker id).',
    ),
    postStreamUrl: urlTemplate(
      'RUNPOD_WEBHOOK_POST_STREAM',
      "Set by RunPod: the URL for a generator handler's streamed partial outputs. Read, not posted to: progress goes to job-done only, once per reading, as runpod-python posts it for a handler that is not a generator.",
    ),
    pingUrl: urlTemplate(
      'RUNPOD_WEBHOOK_PING',
      'Set by RunPod: the heartbeat URL. Without it (or without RUNPOD_AI_API_KEY and RUNPOD_POD_ID) no heartbeat is sent.',
    ),
    pingIntervalMs: integer('RUNPOD_PING_INTERVAL', {
      default: 10_000,
      min: 100,
      max: 3_600_000,
      description: 'Set by RunPod: milliseconds between heartbeats.',
    }),
    apiKey: optionalText('RUNPOD_AI_API_KEY', {
      description: 'Set by RunPod: sent as the raw Authorization header of every control-plane request. Never logged.',
      rule: 'any text',
      secret: true,
    }),
    podId: optionalText('RUNPOD_POD_ID', {
      description:
        "Set by RunPod: this worker's id, substituted into the webhook URLs. A random id is used when unset.",
      rule: 'any text',
    }),
    podHostname: optionalText('RUNPOD_POD_HOSTNAME', {
      description: 'Set by RunPod: the host name, reported with internal errors.',
      rule: 'any text',
    }),
  },
  {
    check: (values) =>
      values.getJobUrl && !values.postOutputUrl
        ? [
            'RUNPOD_WEBHOOK_POST_OUTPUT=null: must be set when RUNPOD_WEBHOOK_GET_JOB is set (there would be nowhere to post results)',
          ]
        : [],
    // A maximum below the first pause would shorten the pauses instead of capping them.
    finish: (values) => ({
      ...values,
      jobTakeErrorDelayMaxMs: Math.max(values.jobTakeErrorDelayMaxMs, values.jobTakeErrorDelayMs),
    }),
  },
);
