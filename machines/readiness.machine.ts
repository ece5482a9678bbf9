/**
 * The start-up wait for A1111: the rules of the job machine's `waitingForApi` (waiting-for-api.ts) and
 * nothing else. The worker runs it before it takes its first job. Ends in `ready` (with A1111's model
 * list) or `failed`. Its one actor, `probeApi`, is provided by src/job/readiness.ts.
 */
import { assign, emit, enqueueActions, fromPromise, setup } from 'xstate';
import type { SdModel } from '../src/a1111/schemas.js';
import { type JobFailure, toJobFailure } from '../src/errors.js';
import type { JobEmitted, ReadinessOutput } from './job.types.js';
import {
  countedProbeFailure,
  isFatalProbeError,
  NEVER_MS,
  readinessTimeout,
  WAITING_FOR_API_DESCRIPTION,
  type WaitSettings,
} from './waiting-for-api.js';

export interface ReadinessContext {
  settings: WaitSettings;
  models: SdModel[] | null;
  probeFailures: number;
  lastProbeError: JobFailure | null;
  failure: JobFailure | null;
}

const withError = ({ event }: { event: { error: unknown } }) => ({ error: event.error });

export const readinessMachine = setup({
  types: {
    context: {} as ReadinessContext,
    input: {} as { settings: WaitSettings },
    output: {} as ReadinessOutput,
    emitted: {} as Extract<JobEmitted, { type: 'api.waiting' }>,
  },
  actors: {
    probeApi: fromPromise<SdModel[], void>(async () => {
      throw new Error('probeApi is provided by src/job/readiness.ts');
    }),
  },
  guards: {
    hasReadinessDeadline: ({ context }) => context.settings.readyTimeoutMs > 0,
    isFatalProbeError: (_, params: { error: unknown }) => isFatalProbeError(params.error),
  },
  actions: {
    countProbeFailure: enqueueActions(({ context, enqueue }, params: { error: unknown }) => {
      const counted = countedProbeFailure(context.probeFailures, params.error, context.settings);
      enqueue.assign({ probeFailures: counted.failures, lastProbeError: counted.lastError });
      if (counted.logIt) {
        enqueue(emit({ type: 'api.waiting' as const, failures: counted.failures, lastError: counted.lastError }));
      }
    }),
    recordFailure: assign({ failure: (_, params: { error: unknown }) => toJobFailure(params.error, 'waitingForApi') }),
    failReadinessTimeout: assign({
      failure: ({ context }) => readinessTimeout(context.settings, context.probeFailures, context.lastProbeError),
    }),
  },
  delays: {
    readinessDeadline: ({ context }) => context.settings.readyTimeoutMs || NEVER_MS,
    readinessPoll: ({ context }) => context.settings.readyPollIntervalMs,
  },
}).createMachine({
  id: 'readiness',
  context: ({ input }) => ({
    settings: input.settings,
    models: null,
    probeFailures: 0,
    lastProbeError: null,
    failure: null,
  }),
  initial: 'waitingForApi',
  states: {
    waitingForApi: {
      description: WAITING_FOR_API_DESCRIPTION,
      initial: 'probing',
      after: {
        readinessDeadline: { guard: 'hasReadinessDeadline', target: 'failed', actions: 'failReadinessTimeout' },
      },
      states: {
        probing: {
          invoke: {
            id: 'probeApi',
            src: 'probeApi',
            onDone: { target: '#readiness.ready', actions: assign({ models: ({ event }) => event.output }) },
            onError: [
              {
                guard: { type: 'isFatalProbeError', params: withError },
                target: '#readiness.failed',
                actions: { type: 'recordFailure', params: withError },
              },
              { target: 'pausing', actions: { type: 'countProbeFailure', params: withError } },
            ],
          },
        },
        pausing: { after: { readinessPoll: 'probing' } },
      },
    },
    ready: { type: 'final' },
    failed: { type: 'final' },
  },
  output: ({ context }): ReadinessOutput =>
    context.failure
      ? { status: 'failed', failure: context.failure, probes: context.probeFailures }
      : { status: 'ready', models: context.models ?? [], probes: context.probeFailures + 1 },
});
