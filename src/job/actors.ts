/**
 * The I/O behind the job machine's actors: each stub in `machines/job.setup.ts` gets its real
 * implementation here, built from the worker's A1111 client. Every actor passes the machine's abort
 * signal to its HTTP calls, so leaving a state (deadline, cancel) stops its request.
 */
import { fromCallback, fromPromise } from 'xstate';
import { jobMachine } from '../../machines/job.machine.js';
import type {
  Delivered,
  DeliverInput,
  InterruptResult,
  JobEvent,
  PreparedJob,
  ProgressUpdate,
  VerifiedJob,
  VerifyModelsInput,
} from '../../machines/job.types.js';
import type { AnswerTap } from '../a1111/answer-tap.js';
import type { A1111Client } from '../a1111/client.js';
import { operationOf } from '../a1111/operations.js';
import type { A1111Request } from '../a1111/request-fields.js';
import type { SdModel } from '../a1111/schemas.js';
import type { ImageSettings, ResultSettings } from '../config/index.js';
import { type ErrorCode, errorFields, WorkerError } from '../errors.js';
import type { Logger } from '../log/index.js';
import type { DownloadProgress, ModelDownloader } from '../models/downloads.js';
import type { ResultBucket } from '../results/bucket.js';
import { deliverResult } from '../results/deliver.js';
import type { A1111Queue } from './a1111-queue.js';
import type { A1111Catalog } from './catalog.js';
import { fetchImageUrls } from './image-inputs.js';
import { prepareJob } from './prepare.js';
import { downloadUpdate, toProgressUpdate } from './progress.js';
import { verifyModels } from './verify.js';

/** One reason for every stopped progress poll (abort() without one builds a DOMException each time). */
const PROGRESS_STOPPED = new Error('the job left the inferring state');

export interface JobActorDeps {
  client: A1111Client;
  /** The limits of a job's image inputs. */
  images: ImageSettings;
  /** How results are delivered: the inline limit, upload concurrency. */
  results: ResultSettings;
  /** The bucket results go to when they are too large to post; null when none is set. */
  bucket: ResultBucket | null;
  catalog: A1111Catalog;
  downloader: ModelDownloader;
  /** Each running job's progress callback, by job id (download progress does not pass through the machine). */
  progressSinks: Map<string, (update: ProgressUpdate) => void>;
  /** Each running job's look at A1111's answer while it arrives, by job id, when its result may be streamed. */
  answerTaps: Map<string, AnswerTap>;
  /** The worker's view of A1111's generation queue, shared by all its jobs. */
  queue: A1111Queue;
  log: Logger;
}

/**
 * The job machine with every actor implemented. Build it once per worker; each job creates its own actor.
 *
 * @example
 * const machine = provideJobActors({ client, catalog, queue, downloader, progressSinks, log });
 * const actor = createActor(machine, { input: { jobId, input, settings } }).start();
 */
export function provideJobActors(deps: JobActorDeps) {
  const { client, log } = deps;
  return jobMachine.provide({
    actors: {
      validateInput: fromPromise<PreparedJob, { jobId: string; input: unknown }>(async ({ input }) =>
        prepareJob(
          input.input,
          { maxPixels: deps.images.maxPixels, bucket: deps.bucket !== null },
          log.child({ jobId: input.jobId }),
        ),
      ),
      fetchImages: fromPromise<PreparedJob, { jobId: string; job: PreparedJob }>(async ({ input, signal }) => {
        const { job } = input;
        const { request, fetched } = await fetchImageUrls(operationOf(job.operation), job.request, deps.images, signal);
        const notes = fetched.map(({ field, bytes }) => `${field} fetched from its URL (${bytes} bytes)`);
        return { ...job, request, imageUrls: 0, notes: [...job.notes, ...notes] };
      }),
      probeApi: fromPromise<SdModel[], void>(({ signal }) => client.probe(signal)),
      verifyModels: fromPromise<VerifiedJob, VerifyModelsInput>(({ input, signal }) => {
        const sink = deps.progressSinks.get(input.jobId);
        return verifyModels(
          {
            client,
            catalog: deps.catalog,
            downloader: deps.downloader,
            ...(sink ? { onDownloadProgress: (progress: DownloadProgress) => sink(downloadUpdate(progress)) } : {}),
          },
          input,
          signal,
        );
      }),
      refreshCheckpoints: fromPromise<void, void>(({ signal }) => client.refreshCheckpoints(signal)),
      checkRoute: fromPromise<void, { operation: string }>(async ({ input, signal }) => {
        const operation = operationOf(input.operation);
        if (await client.isRouteMounted(operation, signal)) return;
        const why = operation.path.startsWith('/sdapi/')
          ? 'its API is not mounted'
          : 'the extension that serves it is not installed, or the WebUI is reloading';
        throw new WorkerError(
          'BACKEND_ROUTE_MISSING',
          `A1111 has no ${operation.key} route yet (a GET there answers 404): ${why}`,
        );
      }),
      callA1111: fromPromise<unknown, { jobId: string; operation: string; request: A1111Request }>(
        ({ input, signal }) => {
          const operation = operationOf(input.operation);
          const tap = deps.answerTaps.get(input.jobId);
          // What A1111 runs under its queue lock goes into the worker's view of that queue.
          return operation.queued
            ? deps.queue.submit(input.jobId, operation, input.request, signal, tap)
            : client.send(operation, input.request, signal, tap);
        },
      ),
      watchProgress: fromCallback<JobEvent, { jobId: string; intervalMs: number; operation: string }>(
        ({ input, sendBack }) => {
          if (input.intervalMs <= 0 || operationOf(input.operation).kind !== 'generation') return () => undefined;
          const controller = new AbortController();
          let timer: NodeJS.Timeout | undefined;
          const poll = async () => {
            try {
              // While another job's request is ahead in A1111's queue, the reading is that job's.
              if (deps.queue.isGenerating(input.jobId)) {
                const progress = await client.getProgress(controller.signal);
                if (progress.state.job_count > 0)
                  sendBack({ type: 'a1111.progress', update: toProgressUpdate(progress) });
              }
            } catch (error) {
              if (!controller.signal.aborted) log.debug('progress poll failed', errorFields(error));
            }
            if (!controller.signal.aborted) timer = setTimeout(poll, input.intervalMs);
          };
          timer = setTimeout(poll, input.intervalMs);
          return () => {
            controller.abort(PROGRESS_STOPPED);
            clearTimeout(timer);
          };
        },
      ),

      deliverResult: fromPromise<Delivered, DeliverInput>(({ input, signal }) =>
        deliverResult({ settings: deps.results, bucket: deps.bucket, log }, input, signal),
      ),
      interruptBackend: fromPromise<InterruptResult, { jobId: string; reason: ErrorCode }>(async ({ input }) => {
        const result = await deps.queue.interrupt(input.jobId);
        log.child({ jobId: input.jobId }).debug('interrupt', { reason: input.reason, ...result });
        return result;
      }),
    },
  });
}

export type LiveJobMachine = ReturnType<typeof provideJobActors>;
