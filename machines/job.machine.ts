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
 * its events replays it exactly. State-by-state documentation: docs/machine.md. Its vocabulary (context,
 * actors, guards, actions, delays) is job.setup.ts; the states up to a verified request are job.verifying.ts.
 */
import { and, assign, emit, not, stateIn } from 'xstate';
import { toJobFailure } from '../src/errors.js';
import { initialContext, jobSetup, onBackendError, withError } from './job.setup.js';
import type { JobOutput } from './job.types.js';
import { postDownloadStabilizing, verifyingModels, waitingForApi } from './job.verifying.js';

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
    verifyingModels,
    postDownloadStabilizing,
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
