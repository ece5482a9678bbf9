/**
 * The job runner: one job machine per job, from the raw input to A1111's answer or a classified
 * failure. Everything long-lived (the A1111 client, A1111's queue, downloads, the catalog, journals) is
 * built by the composition root and passed in; the runner builds only what one job needs.
 *
 * - Success: A1111's response passed through unchanged (`images`, `parameters`, `info`) plus one extra
 *   key, `worker`, with per-phase timings, the number of route-404 recoveries and notes on what the
 *   worker changed (a split sampler name, a renamed checkpoint).
 * - Failure: `{code, message, phase, retryable, details}`. An A1111 error body is never a success.
 *
 * Every actor created for a job is stopped when the job ends, whatever the outcome.
 */
import { createActor, type InspectionEvent, toPromise } from 'xstate';
import type { JobOutput, ProgressUpdate } from '../../machines/job.types.js';
import type { AnswerTap } from '../a1111/answer-tap.js';
import { imageStats } from '../a1111/images-answer.js';
import type { Config } from '../config/index.js';
import { type JobPhase, toJobFailure } from '../errors.js';
import type { JournalStore } from '../journal/store.js';
import { withExtraKeys } from '../json/source-bytes.js';
import type { ResultBucket } from '../results/bucket.js';
import { DEFAULT_OUTPUT, REPORT_ROOM_BYTES } from '../results/deliver.js';
import { type JobActorDeps, type LiveJobMachine, provideJobActors } from './actors.js';
import { earlyResultTap, type ResultWriter } from './early-result.js';
import { isPlainObject } from './envelope.js';
import type { JobOutcome } from './outcome.js';
import { RunObserver } from './run-observer.js';
import { type Clock, jobSettings } from './settings.js';

export interface RunOptions {
  /** Aborting cancels the job: A1111 is interrupted if it is generating, and the job fails CANCELLED. */
  signal?: AbortSignal;
  /** Called with A1111's progress while it generates (every PROGRESS_POLL_INTERVAL_MS). */
  onProgress?: (update: ProgressUpdate) => void;
  /** Receives every inspection event of the job's root actor. */
  inspect?: (event: InspectionEvent) => void;
  /**
   * Opens the job's final post, for a result written while A1111's answer arrives (early-result.ts);
   * without it, every answer is read before the outcome is returned.
   */
  openResult?: () => ResultWriter;
}

export interface JobRunnerDeps
  extends Omit<JobActorDeps, 'progressSinks' | 'answerTaps' | 'images' | 'results' | 'bucket'> {
  /** The bucket results go to when they are too large to post (src/results/bucket.ts). */
  bucket?: ResultBucket | null;
  config: Config;
  /** Job journals, when JOURNAL_DIR is set. */
  journals?: JournalStore;
  /** Drives the machine's named delays; tests pass a SimulatedClock. */
  clock?: Clock;
  /** Milliseconds for timings; `performance.now` by default. */
  now?: () => number;
  /** Receives every inspection event of every job (the Stately inspector). */
  inspect?: (event: InspectionEvent) => void;
}

export interface JobRunner {
  run(job: { id: string; input: unknown }, options?: RunOptions): Promise<JobOutcome>;
}

/**
 * @example
 * const runner = createJobRunner({ config, log, client, catalog, queue, downloader });
 * const outcome = await runner.run({ id: 'job-1', input: { prompt: 'a lighthouse', steps: 20 } });
 */
export function createJobRunner(deps: JobRunnerDeps): JobRunner {
  const now = deps.now ?? (() => performance.now());
  const progressSinks = new Map<string, (update: ProgressUpdate) => void>();
  const answerTaps = new Map<string, AnswerTap>();
  const machine: LiveJobMachine = provideJobActors({
    ...deps,
    images: deps.config.images,
    results: deps.config.results,
    bucket: deps.bucket ?? null,
    progressSinks,
    answerTaps,
  });
  const streamLimits = {
    minBytes: deps.config.results.streamMinBytes,
    maxBytes: deps.config.results.inlineMaxBytes - REPORT_ROOM_BYTES,
  };

  async function run(job: { id: string; input: unknown }, options: RunOptions = {}): Promise<JobOutcome> {
    const log = deps.log.child({ jobId: job.id });
    const settings = jobSettings(deps.config, options.onProgress !== undefined);
    let started = 0;
    const recorder = deps.journals?.recorder(job, settings, () => now() - started);
    const observer = new RunObserver({
      log,
      now,
      ...(recorder ? { recorder } : {}),
      ...(deps.inspect ? { inspectSystem: deps.inspect } : {}),
      ...(options.inspect ? { inspectJob: options.inspect } : {}),
    });
    started = observer.startedAt;
    const actor = createActor(machine, {
      input: { jobId: job.id, input: job.input, settings },
      ...(observer.inspect ? { inspect: observer.inspect } : {}),
      ...(deps.clock ? { clock: deps.clock } : {}),
    });
    observer.attach(actor);
    if (options.onProgress) {
      const onProgress = options.onProgress;
      actor.on('job.progress', (event) => onProgress(event.update));
      progressSinks.set(job.id, onProgress);
    }
    const tap = options.openResult
      ? earlyResultTap(
          options.openResult,
          streamLimits,
          () => actor.getSnapshot().context.job?.output ?? DEFAULT_OUTPUT,
        )
      : undefined;
    if (tap) answerTaps.set(job.id, tap);

    const onAbort = () => actor.send({ type: 'job.cancel', reason: describeAbort(options.signal) });
    let output: JobOutput;
    try {
      const done = toPromise(actor);
      actor.start();
      if (options.signal?.aborted) onAbort();
      else options.signal?.addEventListener('abort', onAbort, { once: true });
      output = await done;
    } catch (error) {
      // The machine handles every actor error; reaching this is a defect, reported rather than dropped.
      log.error('job machine failed', { error: error instanceof Error ? error.message : String(error) });
      output = { status: 'failed', failure: toJobFailure(error, observer.phase as JobPhase), notes: [], recoveries: 0 };
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      progressSinks.delete(job.id);
      answerTaps.delete(job.id);
      actor.stop();
    }

    if (recorder && deps.journals) await deps.journals.save(job.id, recorder, output, log);
    const report = observer.finish(output);
    if (output.status === 'succeeded') {
      const { response } = output;
      const images = hasImages(response) ? imageStats(response) : { count: 0, chars: 0 };
      log.info('job succeeded', {
        images: images.count,
        // Base64 characters of inline images; the stored bytes of uploaded ones.
        imageBytes: output.uploads ? output.uploads.reduce((sum, item) => sum + item.bytes, 0) : images.chars,
        ...(output.uploads ? { uploaded: output.uploads.length } : {}),
        ...(tap?.streamed ? { streamed: true } : {}),
        totalMs: report.timings_ms.total,
      });
      // An object answer carries the report; a list or null (a read route, a refresh) stays as A1111 sent it.
      const answer = isPlainObject(response) ? withExtraKeys(response, { worker: report }) : response;
      return { ok: true, jobId: job.id, output: answer, report };
    }
    log.warn('job failed', {
      code: output.failure.code,
      phase: output.failure.phase,
      message: output.failure.message,
      totalMs: report.timings_ms.total,
    });
    return { ok: false, jobId: job.id, failure: output.failure, report };
  }

  return { run };
}

function describeAbort(signal: AbortSignal | undefined): string {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error && reason.name !== 'AbortError') return reason.message;
  return typeof reason === 'string' ? reason : 'cancelled by the caller';
}

/**
 * True when an answer holds a list of images. A generation's images stay undecoded until read (a getter,
 * images-answer.ts): that one is taken as a list without reading it.
 */
function hasImages(value: unknown): value is { images: string[] } {
  if (!isPlainObject(value)) return false;
  const descriptor = Object.getOwnPropertyDescriptor(value, 'images');
  return descriptor !== undefined && (descriptor.get !== undefined || Array.isArray(descriptor.value));
}
