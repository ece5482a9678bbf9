/**
 * The job machine's vocabulary: its context, and the actors, guards, actions and delays its states
 * name (`setup`). Pure, as the machine is: the actors here are stubs src/job/actors.ts replaces with
 * `machine.provide`. The states are in job.machine.ts and job.verifying.ts.
 */
import { assign, emit, enqueueActions, fromCallback, fromPromise, setup } from 'xstate';
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

export function initialContext(input: JobMachineInput): JobContext {
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
export const withError = ({ event }: { event: { error: unknown } }) => ({ error: event.error });

/** The error handling shared by every state that talks to A1111 after readiness: route 404 → recovering. */
export const onBackendError = [
  {
    guard: { type: 'canRecoverRoute', params: withError },
    target: '#job.recovering',
    actions: { type: 'recordRouteError', params: withError },
  },
  { target: '#job.failed', actions: { type: 'recordFailure', params: withError } },
] as const;

export const jobSetup = setup({
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
