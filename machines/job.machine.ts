/**
 * The job machine: one instance per RunPod job, from raw input to images or a classified failure.
 *
 * booting ─▶ waitingForApi ─▶ verifyingModels ─▶ ready ─▶ inferring ─▶ succeeded
 *                 ▲                 │   ▲          │           │
 *                 │                 ▼   │          │           │ route 404
 *                 │      postDownloadStabilizing   │           ▼
 *                 └──────────────── recovering ◀───┴───────────┘
 *
 * Any state can end in `failed`. A job deadline or a `job.cancel` during `inferring` goes through
 * `interrupting` (POST /sdapi/v1/interrupt) so the next job does not inherit a busy GPU.
 *
 * The machine is pure: every HTTP call is an actor the handler provides (`machine.provide`), every wait
 * is a named delay read from `context.settings`, so a SimulatedClock drives it in tests and a journal of
 * its events replays it exactly. State-by-state documentation: docs/machine.md.
 */
import { and, assign, emit, enqueueActions, fromCallback, fromPromise, not, setup, stateIn } from 'xstate';
import type { SdModel, Txt2ImgRequest, Txt2ImgResponse } from '../src/a1111/schemas.js';
import { ERROR_CODES, type ErrorCode, type JobFailure, type JobPhase, toJobFailure } from '../src/errors.js';
import type {
  InterruptResult,
  JobEmitted,
  JobEvent,
  JobMachineInput,
  JobOutput,
  JobSettings,
  PreparedJob,
  ReadinessOutput,
  VerifiedJob,
  VerifyModelsInput,
} from './job.types.js';

/** setTimeout's ceiling (about 24.8 days): a delay this long stands for "never" (the guard is false anyway). */
const NEVER_MS = 2_147_483_647;

export interface JobContext {
  jobId: string;
  /** The lifecycle phase the job is in; failures report it. */
  phase: JobPhase;
  input: unknown;
  settings: JobSettings;
  job: PreparedJob | null;
  request: Txt2ImgRequest | null;
  models: SdModel[] | null;
  notes: string[];
  probeFailures: number;
  lastProbeError: JobFailure | null;
  recoveryAttempts: number;
  lastRouteError: JobFailure | null;
  downloadDone: boolean;
  response: Txt2ImgResponse | null;
  failure: JobFailure | null;
}

function failure(code: ErrorCode, message: string, phase: JobPhase, details: Record<string, unknown>): JobFailure {
  return { code, message, phase, retryable: ERROR_CODES[code].retryable, details };
}

function codeOf(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null ? (error as { code?: string }).code : undefined;
}

function initialContext(input: JobMachineInput): JobContext {
  return {
    jobId: input.jobId,
    phase: 'booting',
    input: input.input,
    settings: input.settings,
    job: null,
    request: null,
    models: null,
    notes: [],
    probeFailures: 0,
    lastProbeError: null,
    recoveryAttempts: 0,
    lastRouteError: null,
    downloadDone: false,
    response: null,
    failure: null,
  };
}

/** The error handling shared by every state that talks to A1111 after readiness: route 404 → recovering. */
const onBackendError = [
  { guard: 'canRecoverRoute', target: '#job.recovering', actions: 'recordRouteError' },
  { target: '#job.failed', actions: 'recordFailure' },
] as const;

const jobSetup = setup({
  types: {
    context: {} as JobContext,
    events: {} as JobEvent,
    input: {} as JobMachineInput,
    output: {} as JobOutput | ReadinessOutput,
    emitted: {} as JobEmitted,
  },
  actors: {
    validateInput: fromPromise<PreparedJob, { jobId: string; input: unknown }>(async () => {
      throw new Error('validateInput is provided by the handler');
    }),
    probeApi: fromPromise<SdModel[], void>(async () => {
      throw new Error('probeApi is provided by the handler');
    }),
    verifyModels: fromPromise<VerifiedJob, VerifyModelsInput>(async () => {
      throw new Error('verifyModels is provided by the handler');
    }),
    refreshCheckpoints: fromPromise<void, void>(async () => {
      throw new Error('refreshCheckpoints is provided by the handler');
    }),
    checkRoute: fromPromise<void, void>(async () => {
      throw new Error('checkRoute is provided by the handler');
    }),
    txt2img: fromPromise<Txt2ImgResponse, { jobId: string; request: Txt2ImgRequest }>(async () => {
      throw new Error('txt2img is provided by the handler');
    }),
    watchProgress: fromCallback<JobEvent, { jobId: string; intervalMs: number }>(() => () => undefined),
    interruptBackend: fromPromise<InterruptResult, { jobId: string; reason: ErrorCode }>(async () => {
      throw new Error('interruptBackend is provided by the handler');
    }),
  },
  guards: {
    hasJobDeadline: ({ context }) => context.settings.jobTimeoutMs > 0,
    hasReadinessDeadline: ({ context }) => context.settings.readyTimeoutMs > 0,
    isFatalProbeError: ({ event }) => {
      const error = (event as { error?: { details?: Record<string, unknown> } }).error;
      return codeOf(error) === 'BACKEND_REJECTED' || error?.details?.['backendExited'] === true;
    },
    canRecoverRoute: ({ context, event }) =>
      codeOf((event as { error?: unknown }).error) === 'BACKEND_ROUTE_MISSING' &&
      context.recoveryAttempts < context.settings.routeRecoveryAttempts,
    isRecovering: ({ context }) => context.recoveryAttempts > 0,
    /** A1111 did not answer txt2img in time: it is still generating, so the GPU must be freed. */
    isRequestTimeout: ({ event }) => codeOf((event as { error?: unknown }).error) === 'BACKEND_TIMEOUT',
    modelWasDownloaded: ({ event }) => (event as { output?: VerifiedJob }).output?.downloaded === true,
  },
  actions: {
    /** Records the top-level state just entered as the job's phase, and tells the handler (see `entered`). */
    enterPhase: enqueueActions(({ enqueue, event }, params: { phase: JobPhase }) => {
      enqueue.assign({ phase: params.phase });
      enqueue.emit({ type: 'job.entered', state: params.phase, event: event.type });
    }),
    /** Tells the handler a top-level state was entered, and by which event: it logs and times the phases. */
    entered: emit(({ event }, params: { state: 'succeeded' | 'failed' }) => ({
      type: 'job.entered' as const,
      state: params.state,
      event: event.type,
    })),
    /** Tells the handler about a step after a checkpoint download, for the log. */
    stabilizing: emit((_, params: { message: string; level?: 'info' | 'warn' }) => ({
      type: 'job.stabilizing' as const,
      level: params.level ?? ('info' as const),
      message: params.message,
    })),
    /** Keeps the route 404 that sent the job to `recovering`, for the log and the final message. */
    recordRouteError: assign({
      lastRouteError: ({ context, event }) => toJobFailure((event as { error?: unknown }).error, context.phase),
    }),
    /** Ends the job with the error of the actor that just failed, in the current phase. */
    recordFailure: assign({
      failure: ({ context, event }) => {
        const base = toJobFailure((event as { error?: unknown }).error, context.phase);
        if (base.code !== 'BACKEND_ROUTE_MISSING' || context.recoveryAttempts === 0) return base;
        return {
          ...base,
          message: `${base.message}; still missing after ${context.recoveryAttempts} recovery attempt(s)`,
          details: { ...base.details, recoveryAttempts: context.recoveryAttempts },
        };
      },
    }),
    countProbeFailure: enqueueActions(({ context, event, enqueue }) => {
      const failures = context.probeFailures + 1;
      const lastError = toJobFailure((event as { error?: unknown }).error, 'waitingForApi');
      enqueue.assign({ probeFailures: failures, lastProbeError: lastError });
      if (failures % context.settings.readyLogEvery === 0) enqueue.emit({ type: 'api.waiting', failures, lastError });
    }),
    failReadinessTimeout: assign({
      failure: ({ context }) =>
        failure(
          'BACKEND_UNAVAILABLE',
          `A1111 did not become ready within ${context.settings.readyTimeoutMs} ms (${context.probeFailures} failed probe(s)${
            context.lastProbeError ? `; last: ${context.lastProbeError.message}` : ''
          })`,
          'waitingForApi',
          { readyTimeoutMs: context.settings.readyTimeoutMs, probeFailures: context.probeFailures },
        ),
    }),
    failDeadline: assign({
      failure: ({ context }) =>
        failure('BACKEND_TIMEOUT', `the job exceeded its ${context.settings.jobTimeoutMs} ms deadline`, context.phase, {
          jobTimeoutMs: context.settings.jobTimeoutMs,
        }),
    }),
    failCancelled: assign({
      failure: ({ context, event }) =>
        failure(
          'CANCELLED',
          `the job was cancelled${(event as { reason?: string }).reason ? `: ${(event as { reason?: string }).reason}` : ''}`,
          context.phase,
          {},
        ),
    }),
  },
  delays: {
    jobDeadline: ({ context }) => context.settings.jobTimeoutMs || NEVER_MS,
    readinessDeadline: ({ context }) => context.settings.readyTimeoutMs || NEVER_MS,
    readinessPoll: ({ context }) => context.settings.readyPollIntervalMs,
    recoveryDelay: ({ context }) => context.settings.routeRecoveryDelayMs,
    registryWait: ({ context }) => context.settings.modelRegistryWaitMs,
  },
});

/**
 * `waitingForApi`, shared by the job machine and the start-up readiness machine so both wait for A1111
 * by the same rules. `readyTarget` is where a successful probe leads; the deadline leads to the
 * sibling `failed` state.
 */
function waitingForApiState(readyTarget: string, failedTarget: string) {
  return jobSetup.createStateConfig({
    description:
      'Probes GET /sdapi/v1/sd-models every poll interval until it answers 200 with a JSON array; past the readiness deadline the job fails BACKEND_UNAVAILABLE, and a refusal (401) or a supervised WebUI that exited fails it at once.',
    entry: [
      { type: 'enterPhase', params: { phase: 'waitingForApi' } },
      assign({ probeFailures: 0, lastProbeError: null }),
    ],
    initial: 'probing',
    after: {
      readinessDeadline: { guard: 'hasReadinessDeadline', target: failedTarget, actions: 'failReadinessTimeout' },
    },
    states: {
      probing: {
        invoke: {
          id: 'probeApi',
          src: 'probeApi',
          onDone: { target: readyTarget, actions: assign({ models: ({ event }) => event.output }) },
          onError: [
            // A refusal (wrong credentials for --api-auth) or a supervised WebUI that exited does not go
            // away by waiting.
            { guard: 'isFatalProbeError', target: failedTarget, actions: 'recordFailure' },
            { target: 'pausing', actions: 'countProbeFailure' },
          ],
        },
      },
      pausing: {
        after: { readinessPoll: 'probing' },
      },
    },
  });
}

export const jobMachine = jobSetup.createMachine({
  id: 'job',
  context: ({ input }) => initialContext(input),
  initial: 'booting',
  after: {
    jobDeadline: [
      { guard: and(['hasJobDeadline', stateIn('#job.inferring')]), target: '.interrupting', actions: 'failDeadline' },
      { guard: and(['hasJobDeadline', not(stateIn('#job.interrupting'))]), target: '.failed', actions: 'failDeadline' },
    ],
  },
  on: {
    'job.cancel': [
      { guard: stateIn('#job.inferring'), target: '.interrupting', actions: 'failCancelled' },
      { guard: not(stateIn('#job.interrupting')), target: '.failed', actions: 'failCancelled' },
    ],
  },
  states: {
    booting: {
      description:
        "Checks the job's input against the txt2img rules; a broken rule ends the job INVALID_INPUT before anything is sent to A1111.",
      entry: { type: 'enterPhase', params: { phase: 'booting' } },
      invoke: {
        id: 'validateInput',
        src: 'validateInput',
        input: ({ context }) => ({ jobId: context.jobId, input: context.input }),
        onDone: {
          target: 'waitingForApi',
          actions: assign({ job: ({ event }) => event.output, notes: ({ event }) => [...event.output.notes] }),
        },
        onError: { target: 'failed', actions: 'recordFailure' },
      },
    },
    waitingForApi: waitingForApiState('#job.verifyingModels', '#job.failed'),
    verifyingModels: {
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
            guard: 'modelWasDownloaded',
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
    },
    postDownloadStabilizing: {
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
              actions: enqueueActions(({ enqueue, event }) => {
                const note = `refresh-checkpoints failed (${toJobFailure(event.error, 'postDownloadStabilizing').message}); going on`;
                enqueue.assign({ notes: ({ context }) => [...context.notes, note] });
                enqueue({ type: 'stabilizing', params: { message: note, level: 'warn' } });
              }),
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
              actions: enqueueActions(({ enqueue, event }) => {
                const note = `health check after the download failed (${toJobFailure(event.error, 'postDownloadStabilizing').message}); going on`;
                enqueue.assign({ notes: ({ context }) => [...context.notes, note] });
                enqueue({ type: 'stabilizing', params: { message: note, level: 'warn' } });
              }),
            },
          },
        },
      },
    },
    ready: {
      description:
        'The request is final; after a recovery the txt2img route is checked (a GET there answers 405 when it is mounted) before generating again.',
      entry: { type: 'enterPhase', params: { phase: 'ready' } },
      initial: 'routing',
      states: {
        routing: {
          always: [{ guard: 'isRecovering', target: 'checkingRoute' }, { target: '#job.inferring' }],
        },
        checkingRoute: {
          invoke: { id: 'checkRoute', src: 'checkRoute', onDone: '#job.inferring', onError: [...onBackendError] },
        },
      },
    },
    inferring: {
      description:
        'POST /sdapi/v1/txt2img while /sdapi/v1/progress is read; a route 404 leads to recovering, a request timeout to interrupting, any other error ends the job with its classified code.',
      entry: { type: 'enterPhase', params: { phase: 'inferring' } },
      invoke: [
        {
          id: 'txt2img',
          src: 'txt2img',
          input: ({ context }) => ({ jobId: context.jobId, request: context.request! }),
          onDone: { target: 'succeeded', actions: assign({ response: ({ event }) => event.output }) },
          onError: [{ guard: 'isRequestTimeout', target: 'interrupting', actions: 'recordFailure' }, ...onBackendError],
        },
        {
          id: 'watchProgress',
          src: 'watchProgress',
          input: ({ context }) => ({ jobId: context.jobId, intervalMs: context.settings.progressIntervalMs }),
        },
      ],
      on: {
        'a1111.progress': { actions: emit(({ event }) => ({ type: 'job.progress' as const, update: event.update })) },
      },
    },
    recovering: {
      description:
        'A route 404 means the WebUI is reloading: wait the recovery delay, then wait for the API and verify again; after the last attempt the job fails BACKEND_ROUTE_MISSING.',
      entry: [
        { type: 'enterPhase', params: { phase: 'recovering' } },
        assign({ recoveryAttempts: ({ context }) => context.recoveryAttempts + 1 }),
        emit(({ context }) => ({
          type: 'job.recovering' as const,
          attempt: context.recoveryAttempts,
          of: context.settings.routeRecoveryAttempts,
          reason: context.lastRouteError,
        })),
      ],
      after: { recoveryDelay: 'waitingForApi' },
    },
    interrupting: {
      description:
        'The deadline or the request timeout passed, or the job was cancelled, while A1111 had its request: POST /sdapi/v1/interrupt once A1111 runs it (after a checkpoint load, if need be) and wait, at most the settle timeout, until A1111 is done with it, so the next job finds a free GPU. The failure says what became of the generation.',
      entry: { type: 'enterPhase', params: { phase: 'interrupting' } },
      invoke: {
        id: 'interruptBackend',
        src: 'interruptBackend',
        input: ({ context }) => ({ jobId: context.jobId, reason: context.failure?.code ?? 'CANCELLED' }),
        onDone: {
          target: 'failed',
          // The failure says what became of the generation: interrupted, already answered, left to finish…
          actions: assign({
            failure: ({ context, event }) =>
              context.failure &&
              (event.output
                ? {
                    ...context.failure,
                    details: {
                      ...context.failure.details,
                      interrupt: event.output.interrupt,
                      a1111Idle: event.output.settled,
                    },
                  }
                : context.failure),
          }),
        },
        onError: {
          target: 'failed',
          actions: assign({
            failure: ({ context, event }) =>
              context.failure && {
                ...context.failure,
                details: {
                  ...context.failure.details,
                  interruptError: toJobFailure(event.error, 'interrupting').message,
                },
              },
          }),
        },
      },
    },
    succeeded: {
      type: 'final',
      description: "Final: A1111's response is the job's output.",
      entry: { type: 'entered', params: { state: 'succeeded' } },
    },
    failed: {
      type: 'final',
      description: "Final: the job's output is its classified failure.",
      entry: { type: 'entered', params: { state: 'failed' } },
    },
  },
  output: ({ context }): JobOutput =>
    context.failure || !context.response
      ? {
          status: 'failed',
          failure: context.failure ?? toJobFailure(new Error('job ended without a result'), null),
          notes: context.notes,
          recoveries: context.recoveryAttempts,
        }
      : { status: 'succeeded', response: context.response, notes: context.notes, recoveries: context.recoveryAttempts },
});

export type JobMachine = typeof jobMachine;

/**
 * Waits for A1111 by the rules of `waitingForApi` and nothing else: the worker runs it once at start-up,
 * before it takes its first job. Ends in `ready` (with A1111's model list) or `failed`.
 */
export const readinessMachine = jobSetup.createMachine({
  id: 'readiness',
  context: ({ input }) => initialContext(input),
  initial: 'waitingForApi',
  states: {
    waitingForApi: waitingForApiState('#readiness.ready', '#readiness.failed'),
    ready: { type: 'final' },
    failed: { type: 'final' },
  },
  output: ({ context }): ReadinessOutput =>
    context.failure
      ? { status: 'failed', failure: context.failure, probes: context.probeFailures }
      : { status: 'ready', models: context.models ?? [], probes: context.probeFailures + 1 },
});
