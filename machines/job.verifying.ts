/**
 * The job machine's states before a request goes out: `waitingForApi` (A1111 answers), `verifyingModels`
 * (the job's models and names checked against A1111's lists, downloads included) and
 * `postDownloadStabilizing` (A1111 made to see a downloaded checkpoint).
 */
import { assign, emit } from 'xstate';
import { jobSetup, onBackendError, withError } from './job.setup.js';
import { WAITING_FOR_API_DESCRIPTION } from './waiting-for-api.js';

/** `waitingForApi`: the rules of waiting-for-api.ts, as the job runs them. */
export const waitingForApi = jobSetup.createStateConfig({
  description: WAITING_FOR_API_DESCRIPTION,
  entry: [
    { type: 'enterPhase', params: { phase: 'waitingForApi' } },
    assign({ probeFailures: 0, lastProbeError: null }),
  ],
  initial: 'probing',
  after: {
    readinessDeadline: { guard: 'hasReadinessDeadline', target: '#job.failed', actions: 'failReadinessTimeout' },
  },
  states: {
    probing: {
      invoke: {
        id: 'probeApi',
        src: 'probeApi',
        onDone: [
          {
            guard: 'needsVerification',
            target: '#job.verifyingModels',
            actions: assign({ models: ({ event }) => event.output }),
          },
          { target: '#job.ready', actions: assign({ models: ({ event }) => event.output }) },
        ],
        onError: [
          // A refusal (wrong credentials for --api-auth) or a supervised WebUI that exited does not go
          // away by waiting.
          {
            guard: { type: 'isFatalProbeError', params: withError },
            target: '#job.failed',
            actions: { type: 'recordFailure', params: withError },
          },
          { target: 'pausing', actions: { type: 'countProbeFailure', params: withError } },
        ],
      },
    },
    pausing: {
      after: { readinessPoll: 'probing' },
    },
  },
});

/** `verifyingModels`: the job checked against what this A1111 has, and what it lacks downloaded. */
export const verifyingModels = jobSetup.createStateConfig({
  description:
    'Checks the named checkpoint, the override_settings keys, the sampler and the scheduler against the live A1111 lists and rewrites legacy names; an unknown checkpoint fails MODEL_NOT_FOUND.',
  entry: { type: 'enterPhase', params: { phase: 'verifyingModels' } },
  invoke: {
    id: 'verifyModels',
    src: 'verifyModels',
    input: ({ context }) => ({
      jobId: context.jobId,
      job: context.job!,
      models: context.models,
      downloadDone: context.downloadDone,
    }),
    onDone: [
      {
        guard: { type: 'modelWasDownloaded', params: ({ event }) => ({ output: event.output }) },
        target: 'postDownloadStabilizing',
        actions: assign({
          downloadDone: true,
          models: null,
          notes: ({ context, event }) => [...context.notes, ...event.output.notes],
        }),
      },
      {
        target: 'ready',
        actions: assign({
          request: ({ event }) => event.output.request,
          notes: ({ context, event }) => [...context.notes, ...event.output.notes],
        }),
      },
    ],
    onError: [...onBackendError],
  },
});

/** `postDownloadStabilizing`: after a checkpoint download, A1111 refreshes its list before the job is verified again. */
export const postDownloadStabilizing = jobSetup.createStateConfig({
  description:
    "After a checkpoint download: POST /sdapi/v1/refresh-checkpoints, wait the registry delay, check the API's health (a failure only adds a note), then verify again.",
  entry: { type: 'enterPhase', params: { phase: 'postDownloadStabilizing' } },
  initial: 'refreshing',
  states: {
    refreshing: {
      invoke: {
        id: 'refreshCheckpoints',
        src: 'refreshCheckpoints',
        onDone: {
          target: 'settling',
          actions: { type: 'stabilizing', params: { message: 'A1111 refreshed its checkpoint list' } },
        },
        onError: {
          target: 'settling',
          actions: {
            type: 'noteAndGoOn',
            params: ({ event }) => ({ step: 'refresh-checkpoints', error: event.error }),
          },
        },
      },
    },
    settling: {
      entry: emit(({ context }) => ({
        type: 'job.stabilizing' as const,
        level: 'info' as const,
        message: `waiting ${context.settings.modelRegistryWaitMs} ms for A1111 to register the checkpoint`,
      })),
      after: { registryWait: 'checkingHealth' },
    },
    checkingHealth: {
      invoke: {
        id: 'healthCheck',
        src: 'probeApi',
        onDone: {
          target: '#job.verifyingModels',
          actions: [
            assign({ models: ({ event }) => event.output }),
            { type: 'stabilizing', params: { message: 'A1111 answers after the download' } },
          ],
        },
        onError: {
          target: '#job.verifyingModels',
          actions: {
            type: 'noteAndGoOn',
            params: ({ event }) => ({ step: 'health check after the download', error: event.error }),
          },
        },
      },
    },
  },
});
