/**
 * The job machine: one instance per RunPod job, from raw input to images or a classified failure.
 *
 * booting ─▶ waitingForApi ─▶ verifyingModels ─▶ ready ─▶ inferring ─▶ delivering ─▶ succeeded
 *                 ▲                 │   ▲          │           │
 *                 │                 ▼   │          │           │ route 404
 *                 │      postDownloadStabilizing   │           ▼
 *                 └──────────────── recovering ◀───┴───────────┘
 *
 * Any state can end in `failed`. A job deadline or a `job.cancel` during `inferring` goes through
 * `interrupting` (POST /sdapi/v1/interrupt) so the next job does not inherit a busy GPU.
 *
 * The machine is pure: every HTTP call is an actor src/job/actors.ts provides (`machine.provide`), every wait
 * is a named delay read from `context.settings`, so a SimulatedClock drives it in tests and a journal of
 * its events replays it exactly. State-by-state documentation: docs/machine.md.
 */
import { and, assign, emit, enqueueActions, fromCallback, fromPromise, not, setup, stateIn } from 'xstate';
import type { A1111Request } from '../src/a1111/request-fields.js';
import type { SdModel } from '../src/a1111/schemas.js';
import { type ErrorCode, type JobFailure, type JobPhase, toJobFailure } from '../src/errors.js';
import type {
  Delivered,
  DeliverInput,
  InterruptResult,
  JobEmitted,
  JobEvent,
  JobMachineInput,
  JobOutput,
  JobSettings,
  PreparedJob,
  UploadedImage,
  VerifiedJob,
  VerifyModelsInput,
} from './job.types.js';
import {
  codeOf,
  countedProbeFailure,
  failure,
  isFatalProbeError,
  NEVER_MS,
  readinessTimeout,
  WAITING_FOR_API_DESCRIPTION,
} from './waiting-for-api.js';

export interface JobContext {
  jobId: string;
  /** The lifecycle phase the job is in; failures report it. */
  phase: JobPhase;
  input: unknown;
  settings: JobSettings;
  job: PreparedJob | null;
  /** The operation's key once `booting` has read it (`POST /sdapi/v1/txt2img`). */
  operation: string | null;
  request: A1111Request | null;
  models: SdModel[] | null;
  notes: string[];
  probeFailures: number;
  lastProbeError: JobFailure | null;
  recoveryAttempts: number;
  lastRouteError: JobFailure | null;
  downloadDone: boolean;
  /** A1111's answer; `undefined` until it came (null is an answer: the refresh routes give it). */
  response: unknown;
  /** The images `delivering` stored in the bucket. */
  uploads: UploadedImage[];
  failure: JobFailure | null;
}

function initialContext(input: JobMachineInput): JobContext {
  return {
    jobId: input.jobId,
    phase: 'booting',
    input: input.input,
    settings: input.settings,
    job: null,
    operation: null,
    request: null,
    models: null,
    notes: [],
    probeFailures: 0,
    lastProbeError: null,
    recoveryAttempts: 0,
    lastRouteError: null,
    downloadDone: false,
    response: undefined,
    uploads: [],
    failure: null,
  };
}

/** What a failed actor's error event carries, for the guards and actions that read it. */
const withError = ({ event }: { event: { error: unknown } }) => ({ error: event.error });

/** The error handling shared by every state that talks to A1111 after readiness: route 404 → recovering. */
const onBackendError = [
  {
    guard: { type: 'canRecoverRoute', params: withError },
    target: '#job.recovering',
    actions: { type: 'recordRouteError', params: withError },
  },
  { target: '#job.failed', actions: { type: 'recordFailure', params: withError } },
] as const;

const jobSetup = setup({
  types: {
    context: {} as JobContext,
    events: {} as JobEvent,
    input: {} as JobMachineInput,
    output: {} as JobOutput,
    emitted: {} as JobEmitted,
  },
  actors: {
    validateInput: fromPromise<PreparedJob, { jobId: string; input: unknown }>(async () => {
      throw new Error('validateInput is provided by src/job/actors.ts');
    }),
    probeApi: fromPromise<SdModel[], void>(async () => {
      throw new Error('probeApi is provided by src/job/actors.ts');
    }),
    verifyModels: fromPromise<VerifiedJob, VerifyModelsInput>(async () => {
      throw new Error('verifyModels is provided by src/job/actors.ts');
    }),
    refreshCheckpoints: fromPromise<void, void>(async () => {
      throw new Error('refreshCheckpoints is provided by src/job/actors.ts');
    }),
    checkRoute: fromPromise<void, { operation: string }>(async () => {
      throw new Error('checkRoute is provided by src/job/actors.ts');
    }),
    fetchImages: fromPromise<PreparedJob, { jobId: string; job: PreparedJob }>(async () => {
      throw new Error('fetchImages is provided by src/job/actors.ts');
    }),
    callA1111: fromPromise<unknown, { jobId: string; operation: string; request: A1111Request }>(async () => {
      throw new Error('callA1111 is provided by src/job/actors.ts');
    }),
    watchProgress: fromCallback<JobEvent, { jobId: string; intervalMs: number; operation: string }>(
      () => () => undefined,
    ),
    interruptBackend: fromPromise<InterruptResult, { jobId: string; reason: ErrorCode }>(async () => {
      throw new Error('interruptBackend is provided by src/job/actors.ts');
    }),
    deliverResult: fromPromise<Delivered, DeliverInput>(async () => {
      throw new Error('deliverResult is provided by src/job/actors.ts');
    }),
  },
  guards: {
    hasJobDeadline: ({ context }) => context.settings.jobTimeoutMs > 0,
    hasReadinessDeadline: ({ context }) => context.settings.readyTimeoutMs > 0,
    isFatalProbeError: (_, params: { error: unknown }) => isFatalProbeError(params.error),
    canRecoverRoute: ({ context }, params: { error: unknown }) =>
      codeOf(params.error) === 'BACKEND_ROUTE_MISSING' &&
      context.recoveryAttempts < context.settings.routeRecoveryAttempts,
    isRecovering: ({ context }) => context.recoveryAttempts > 0,
    /** The job has image URLs to fetch before anything else. */
    hasImageUrls: (_, params: { job: PreparedJob }) => params.job.imageUrls > 0,
    /** Operations that render (or name models) have their names checked against A1111's lists. */
    needsVerification: ({ context }) => context.job?.verify === true,
    /** A1111 did not answer in time: it is still working on the request, so the GPU must be freed. */
    isRequestTimeout: (_, params: { error: unknown }) => codeOf(params.error) === 'BACKEND_TIMEOUT',
    modelWasDownloaded: (_, params: { output: VerifiedJob }) => params.output.downloaded,
  },
  actions: {
    /** Records the top-level state just entered as the job's phase, and tells the job runner (see `entered`). */
    enterPhase: enqueueActions(({ enqueue, event }, params: { phase: JobPhase }) => {
      enqueue.assign({ phase: params.phase });
      enqueue.emit({ type: 'job.entered', state: params.phase, event: event.type });
    }),
    /** Tells the job runner a top-level state was entered, and by which event: it logs and times the phases. */
    entered: emit(({ event }, params: { state: 'succeeded' | 'failed' }) => ({
      type: 'job.entered' as const,
      state: params.state,
      event: event.type,
    })),
    /** Tells the job runner about a step after a checkpoint download, for the log. */
    stabilizing: emit((_, params: { message: string; level?: 'info' | 'warn' }) => ({
      type: 'job.stabilizing' as const,
      level: params.level ?? ('info' as const),
      message: params.message,
    })),
    /** Keeps what `booting` made of the input: the operation, the request, the notes. */
    recordPreparedJob: assign((_, params: { job: PreparedJob }) => ({
      job: params.job,
      operation: params.job.operation,
      request: params.job.request,
      notes: [...params.job.notes],
    })),
    /** After a checkpoint download, a step that failed is noted and the job goes on. */
    noteAndGoOn: enqueueActions(({ enqueue }, params: { step: string; error: unknown }) => {
      const note = `${params.step} failed (${toJobFailure(params.error, 'postDownloadStabilizing').message}); going on`;
      enqueue.assign({ notes: ({ context }) => [...context.notes, note] });
      enqueue.emit({ type: 'job.stabilizing', level: 'warn', message: note });
    }),
    /** Keeps the route 404 that sent the job to `recovering`, for the log and the final message. */
    recordRouteError: assign({
      lastRouteError: ({ context }, params: { error: unknown }) => toJobFailure(params.error, context.phase),
    }),
    /** Ends the job with the error of the actor that just failed, in the current phase. */
    recordFailure: assign({
      failure: ({ context }, params: { error: unknown }) => {
        const base = toJobFailure(params.error, context.phase);
        if (base.code !== 'BACKEND_ROUTE_MISSING' || context.recoveryAttempts === 0) return base;
        return {
          ...base,
          message: `${base.message}; still missing after ${context.recoveryAttempts} recovery attempt(s)`,
          details: { ...base.details, recoveryAttempts: context.recoveryAttempts },
        };
      },
    }),
    countProbeFailure: enqueueActions(({ context, enqueue }, params: { error: unknown }) => {
      const counted = countedProbeFailure(context.probeFailures, params.error, context.settings);
      enqueue.assign({ probeFailures: counted.failures, lastProbeError: counted.lastError });
      if (counted.logIt)
        enqueue.emit({ type: 'api.waiting', failures: counted.failures, lastError: counted.lastError });
    }),
    failReadinessTimeout: assign({
      failure: ({ context }) => readinessTimeout(context.settings, context.probeFailures, context.lastProbeError),
    }),
    failDeadline: assign({
      failure: ({ context }) =>
        failure('BACKEND_TIMEOUT', `the job exceeded its ${context.settings.jobTimeoutMs} ms deadline`, context.phase, {
          jobTimeoutMs: context.settings.jobTimeoutMs,
        }),
    }),
    failCancelled: assign({
      failure: ({ context }, params: { reason: string | undefined }) =>
        failure('CANCELLED', `the job was cancelled${params.reason ? `: ${params.reason}` : ''}`, context.phase, {}),
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

/** `waitingForApi`: the rules of waiting-for-api.ts, as the job runs them. */
const waitingForApi = jobSetup.createStateConfig({
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
      {
        guard: stateIn('#job.inferring'),
        target: '.interrupting',
        actions: { type: 'failCancelled', params: ({ event }) => ({ reason: event.reason }) },
      },
      {
        guard: not(stateIn('#job.interrupting')),
        target: '.failed',
        actions: { type: 'failCancelled', params: ({ event }) => ({ reason: event.reason }) },
      },
    ],
  },
  states: {
    booting: {
      description:
        "Reads which operation the job asks for (a plain input is txt2img) and checks its input against that operation's rules; a broken rule ends the job INVALID_INPUT before anything is sent to A1111.",
      entry: { type: 'enterPhase', params: { phase: 'booting' } },
      invoke: {
        id: 'validateInput',
        src: 'validateInput',
        input: ({ context }) => ({ jobId: context.jobId, input: context.input }),
        onDone: [
          {
            guard: { type: 'hasImageUrls', params: ({ event }) => ({ job: event.output }) },
            target: 'fetchingImages',
            actions: { type: 'recordPreparedJob', params: ({ event }) => ({ job: event.output }) },
          },
          {
            target: 'waitingForApi',
            actions: { type: 'recordPreparedJob', params: ({ event }) => ({ job: event.output }) },
          },
        ],
        onError: { target: 'failed', actions: { type: 'recordFailure', params: withError } },
      },
    },
    fetchingImages: {
      description:
        'Fetches the image URLs the job gives (within the URL guard, size, time and pixel caps) so A1111 gets base64 only; a refused URL fails INVALID_INPUT, one that cannot be fetched IMAGE_FETCH_FAILED.',
      entry: { type: 'enterPhase', params: { phase: 'fetchingImages' } },
      invoke: {
        id: 'fetchImages',
        src: 'fetchImages',
        input: ({ context }) => ({ jobId: context.jobId, job: context.job! }),
        onDone: {
          target: 'waitingForApi',
          actions: assign({
            job: ({ event }) => event.output,
            request: ({ event }) => event.output.request,
            notes: ({ event }) => [...event.output.notes],
          }),
        },
        onError: { target: 'failed', actions: { type: 'recordFailure', params: withError } },
      },
    },
    waitingForApi,
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
    },
    ready: {
      description:
        "The request is final; after a recovery the operation's route is checked (a GET on a POST route answers 405 when it is mounted) before it is sent again.",
      entry: { type: 'enterPhase', params: { phase: 'ready' } },
      initial: 'routing',
      states: {
        routing: {
          always: [{ guard: 'isRecovering', target: 'checkingRoute' }, { target: '#job.inferring' }],
        },
        checkingRoute: {
          invoke: {
            id: 'checkRoute',
            src: 'checkRoute',
            input: ({ context }) => ({ operation: context.operation! }),
            onDone: '#job.inferring',
            onError: [...onBackendError],
          },
        },
      },
    },
    inferring: {
      description:
        "Sends the operation's request (POST /sdapi/v1/txt2img for a plain input) and, for a generation, reads /sdapi/v1/progress meanwhile; a route 404 leads to recovering, a request timeout to interrupting, any other error ends the job with its classified code.",
      entry: { type: 'enterPhase', params: { phase: 'inferring' } },
      invoke: [
        {
          id: 'callA1111',
          src: 'callA1111',
          input: ({ context }) => ({ jobId: context.jobId, operation: context.operation!, request: context.request! }),
          onDone: { target: 'delivering', actions: assign({ response: ({ event }) => event.output }) },
          onError: [
            {
              guard: { type: 'isRequestTimeout', params: withError },
              target: 'interrupting',
              actions: { type: 'recordFailure', params: withError },
            },
            ...onBackendError,
          ],
        },
        {
          id: 'watchProgress',
          src: 'watchProgress',
          input: ({ context }) => ({
            jobId: context.jobId,
            intervalMs: context.settings.progressIntervalMs,
            operation: context.operation!,
          }),
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
    delivering: {
      description:
        "Makes A1111's answer the result: images re-encoded when the job asks for WebP or JPEG, and uploaded to the bucket (the answer then holds their URLs) when the result would pass RESULT_INLINE_MAX_BYTES or the job asks for it. Too large with no bucket fails RESULT_TOO_LARGE, a failed upload UPLOAD_FAILED (its objects deleted); an answer without images passes as it is.",
      entry: { type: 'enterPhase', params: { phase: 'delivering' } },
      invoke: {
        id: 'deliverResult',
        src: 'deliverResult',
        input: ({ context }) => ({
          jobId: context.jobId,
          operation: context.operation!,
          response: context.response,
          output: context.job?.output ?? null,
        }),
        onDone: {
          target: 'succeeded',
          actions: assign({
            response: ({ event }) => event.output.response,
            uploads: ({ event }) => event.output.uploads,
            notes: ({ context, event }) =>
              event.output.notes.length > 0 ? [...context.notes, ...event.output.notes] : context.notes,
          }),
        },
        onError: { target: 'failed', actions: { type: 'recordFailure', params: withError } },
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
    context.failure || context.response === undefined
      ? {
          status: 'failed',
          failure: context.failure ?? toJobFailure(new Error('job ended without a result'), null),
          notes: context.notes,
          recoveries: context.recoveryAttempts,
        }
      : {
          status: 'succeeded',
          response: context.response,
          notes: context.notes,
          recoveries: context.recoveryAttempts,
          ...(context.uploads.length > 0 ? { uploads: context.uploads } : {}),
        },
});
