/**
 * The worker's view of A1111's generation queue.
 *
 * A1111 runs its queued requests (txt2img, img2img, extras, interrogate, refreshes, a checkpoint change)
 * one at a time, first in, first out, and `/interrupt` stops whichever
 * generation is running at that moment, not a particular one; an interrupt that arrives before a
 * generation has begun is forgotten when it begins. With more than one job in flight
 * (WORKER_CONCURRENCY > 1) the worker therefore has to know which of its requests A1111 is working on:
 *
 * - the first of the worker's requests is the one A1111 generates (or is about to, while it waits for the
 *   model or the queue lock); the others wait inside A1111;
 * - stopping a request means waiting until A1111 reports it running, then sending /interrupt, but only
 *   while the reading is that request's (the job A1111 names, `scripts_txt2img`, `scripts_img2img` or
 *   `extras`, the same step count and batch count) with at least two steps (or images) to go, so the
 *   interrupt cannot land on the request behind it. A1111 answers a request after it has
 *   released its queue lock, so the next one may already run when the answer arrives; when the request
 *   behind looks the same in /progress the two cannot be told apart, and the unwanted one is left to
 *   finish rather than risk stopping a wanted one;
 * - a request that still waits behind another, or for a checkpoint to load, is marked, and stopped the
 *   same way once it runs; its job waits for that at most the settle timeout;
 * - progress readings belong to the first request only.
 *
 * A request stays in the queue until A1111 is done with it, even when the job that sent it has ended:
 * until A1111 answers it, or, when the HTTP call timed out (A1111 goes on regardless), until /progress
 * shows it ended (only readings asked for after an interrupt count as proof of one), or one settle
 * timeout after it reached the front if it was never seen running (it may have ended before the timeout:
 * a large answer is encoded after the queue lock is released).
 */

import { setTimeout as sleep } from 'node:timers/promises';
import type { InterruptResult, InterruptStatus } from '../../machines/job.types.js';
import type { AnswerTap } from '../a1111/answer-tap.js';
import type { A1111Client } from '../a1111/client.js';
import type { Operation } from '../a1111/operations.js';
import type { A1111Request } from '../a1111/request-fields.js';
import type { Progress } from '../a1111/schemas.js';
import { stopWaitingOnAbort } from '../abort.js';
import { errorFields, WorkerError } from '../errors.js';
import type { Logger } from '../log/index.js';

interface Entry {
  jobId: string;
  /**
   * What /progress shows while this request runs: its `job` (`scripts_txt2img`, `scripts_img2img`,
   * `extras`), its step count (null when it cannot be told in advance: img2img's depends on the
   * denoising strength, the extras have none) and its batch count (the extras: one per image). A
   * request /progress does not show (interrogate, options, refreshes) is never interrupted: it cannot
   * be told from the request behind it.
   */
  job: string;
  steps: number | null;
  batches: number;
  interruptible: boolean;
  /**
   * Aborted once A1111 is done with it: it answered, or (after the HTTP call timed out) /progress shows
   * it ended. Ends the watchers' waits and takes the entry out of the queue.
   */
  settled: AbortController;
  /** Resolves when `settled` is aborted. */
  done: Promise<void>;
  stopping: Promise<void> | null;
  /** What became of stopping it, once decided. */
  stop: InterruptStatus | null;
  /** `job_timestamp` of the reading that showed this request running. */
  seenRunningAt: string | null;
  /** When the /interrupt for it was answered: readings asked for before then predate it. */
  interruptedAt: number | null;
}

const POLL_MS = 20;
/** The reason every settled request's signal carries (`abort()` without one builds a DOMException each time). */
const SETTLED = new Error('A1111 is done with the request');
const MAX_POLL_MS = 250;

/** What A1111's /progress shows for a request (v1.9.3 defaults filled in). */
function signatureOf(
  operation: Operation,
  request: A1111Request,
): { job: string; steps: number | null; batches: number; interruptible: boolean } {
  const iterations = typeof request.n_iter === 'number' ? request.n_iter : 1;
  switch (operation.name) {
    case 'txt2img':
      return {
        job: 'scripts_txt2img',
        steps: typeof request.steps === 'number' ? request.steps : 50,
        batches: request['enable_hr'] === true ? iterations * 2 : iterations,
        interruptible: true,
      };
    case 'img2img':
      return { job: 'scripts_img2img', steps: null, batches: iterations, interruptible: true };
    // The extras stop between images and inside an upscaler's passes when interrupted.
    case 'extra-single-image':
      return { job: 'extras', steps: null, batches: 1, interruptible: true };
    case 'extra-batch-images':
      return {
        job: 'extras',
        steps: null,
        batches: Array.isArray(request['imageList']) ? request['imageList'].length : 0,
        interruptible: true,
      };
    default:
      return { job: operation.name, steps: null, batches: 0, interruptible: false };
  }
}

export class A1111Queue {
  /** The worker's requests inside A1111, in A1111's order. */
  private readonly requests: Entry[] = [];

  /**
   * @param settleTimeoutMs how long a stopping job waits for A1111 to be done with its request
   * @param detachedWatchMs how long a request whose HTTP call timed out is watched in /progress at most
   */
  constructor(
    private readonly client: A1111Client,
    private readonly log: Logger,
    private readonly settleTimeoutMs: number,
    private readonly detachedWatchMs: number = settleTimeoutMs,
  ) {}

  /** Jobs with a request in A1111, in A1111's order. */
  get jobIds(): string[] {
    return this.requests.map((entry) => entry.jobId);
  }

  /** True while this job's request is the one A1111 is generating (or about to). */
  isGenerating(jobId: string): boolean {
    return this.requests[0]?.jobId === jobId;
  }

  /**
   * Sends a queued operation's request and keeps it in the queue until A1111 is done with it. Aborting `signal`
   * stops waiting for the answer, not the request: A1111 would go on with it anyway.
   */
  submit(
    jobId: string,
    operation: Operation,
    request: A1111Request,
    signal?: AbortSignal,
    tap?: AnswerTap,
  ): Promise<unknown> {
    const call = this.client.send(operation, request, undefined, tap);
    const settled = new AbortController();
    const entry: Entry = {
      jobId,
      ...signatureOf(operation, request),
      settled,
      done: new Promise<void>((resolve) => settled.signal.addEventListener('abort', () => resolve(), { once: true })),
      stopping: null,
      stop: null,
      seenRunningAt: null,
      interruptedAt: null,
    };
    this.requests.push(entry);
    settled.signal.addEventListener('abort', () => this.leave(entry), { once: true });
    call.then(
      () => settled.abort(SETTLED),
      (error: unknown) => {
        // A request timeout ends the HTTP call, not the generation: A1111 goes on until it is done.
        if (error instanceof WorkerError && error.code === 'BACKEND_TIMEOUT') void this.watchDetached(entry);
        else settled.abort(SETTLED);
      },
    );
    return stopWaitingOnAbort(call, signal, `${operation.name} was abandoned by its job`);
  }

  /**
   * Stops the generation of a job: interrupts it once A1111 runs it, however
   * long that takes (a checkpoint load, a queue ahead of it). Waits at most the settle timeout for
   * A1111 to be done with it; a request that still waits behind another is not waited for.
   */
  async interrupt(jobId: string): Promise<InterruptResult> {
    const entry = this.requests.find((e) => e.jobId === jobId);
    if (!entry) return { interrupt: 'answered', settled: true };
    if (!entry.interruptible) {
      this.log.info('leaving the job’s request to finish: /interrupt could stop another job’s generation', { jobId });
      return { interrupt: 'left-to-finish', settled: false };
    }
    const stopping = this.stopWhenRunning(entry);
    if (this.requests[0] !== entry) {
      this.log.info(
        'the job\u2019s generation still waits in A1111\u2019s queue; it will be interrupted when it starts',
        { jobId, ahead: this.requests.indexOf(entry) },
      );
      return { interrupt: 'queued', settled: false };
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>(
      (resolve) => (timer = setTimeout(resolve, this.settleTimeoutMs, 'timeout')),
    );
    const first = await Promise.race([entry.done.then(() => stopping), timedOut]);
    clearTimeout(timer);
    if (first === 'timeout') {
      const interrupt = entry.stop ?? 'pending';
      this.log.warn(
        interrupt === 'pending'
          ? 'A1111 has not started the job\u2019s generation; it will be interrupted when it starts'
          : 'A1111 is not done with the job\u2019s generation yet',
        { jobId, interrupt, waitedMs: this.settleTimeoutMs },
      );
      return { interrupt, settled: false };
    }
    return { interrupt: entry.stop ?? 'answered', settled: true };
  }

  /** Interrupts an unwanted request once A1111 runs it; one watcher per request. */
  private stopWhenRunning(entry: Entry): Promise<void> {
    entry.stopping ??= this.watchAndStop(entry).catch((error: unknown) => {
      this.log.warn('could not interrupt a generation', { jobId: entry.jobId, ...errorFields(error) });
    });
    return entry.stopping;
  }

  /** Polls /progress until this request runs, then interrupts it; ends when A1111 is done with it. */
  private async watchAndStop(entry: Entry): Promise<void> {
    const { signal } = entry.settled;
    let pause = POLL_MS;
    while (!signal.aborted) {
      if (this.requests[0] === entry) {
        try {
          const progress = await this.client.getProgress();
          if (signal.aborted) break;
          if (this.isRunning(entry, progress)) {
            entry.stop = await this.stopRunning(entry, progress);
            return;
          }
        } catch (error) {
          // A failed reading is one missed look: the interrupt still waits for the generation to start.
          this.log.debug('progress poll failed while waiting to interrupt', {
            jobId: entry.jobId,
            ...errorFields(error),
          });
        }
      }
      await sleep(pause, undefined, { signal }).catch(() => undefined);
      pause = Math.min(pause * 2, MAX_POLL_MS);
    }
    entry.stop ??= 'answered';
  }

  /** Interrupts the running request, unless the interrupt could land on a request behind it. */
  private async stopRunning(entry: Entry, progress: Progress): Promise<InterruptStatus> {
    // Requests A1111 has finished but not yet answered may still sit between this one and the next.
    const lookalike = this.requests
      .slice(1)
      .find((e) => e.job === entry.job && e.steps === entry.steps && e.batches === entry.batches);
    if (lookalike) {
      this.log.info('leaving an unwanted generation to finish: a request behind it looks the same in /progress', {
        jobId: entry.jobId,
        next: lookalike.jobId,
      });
      return 'left-to-finish';
    }
    // About to finish: an interrupt could arrive once the request behind has begun.
    if (this.requests.length > 1 && this.stepsLeft(progress) < 2) return 'left-to-finish';
    await this.client.interrupt();
    entry.interruptedAt = Date.now();
    this.log.info('sent POST /sdapi/v1/interrupt to A1111', {
      jobId: entry.jobId,
      step: progress.state.sampling_step,
    });
    return 'sent';
  }

  /**
   * Watches a request whose HTTP call timed out until /progress shows A1111 done with it: idle after it
   * ran, a new generation begun (A1111 clears `interrupted` and stamps a new `job_timestamp` when one
   * begins), or, at the latest, `settleTimeoutMs` after it reached the front of the queue without ever
   * being seen running (it may have ended before the timeout, or never reached A1111), or
   * `detachedWatchMs` after that if it was.
   */
  private async watchDetached(entry: Entry): Promise<void> {
    const { signal } = entry.settled;
    let frontSince: number | null = null;
    while (!signal.aborted) {
      if (this.requests[0] === entry) {
        frontSince ??= Date.now();
        try {
          const askedAt = Date.now();
          const progress = await this.client.getProgress();
          const { state } = progress;
          if (this.isRunning(entry, progress)) entry.seenRunningAt ??= state.job_timestamp ?? '';
          // A reading asked for before the interrupt was answered cannot tell whether it took.
          const afterInterrupt = entry.interruptedAt !== null && askedAt > entry.interruptedAt;
          const ran = entry.seenRunningAt !== null || afterInterrupt;
          const ended =
            ran &&
            (state.job_count === 0 ||
              (afterInterrupt && !state.interrupted) ||
              (entry.seenRunningAt !== null && (state.job_timestamp ?? '') !== entry.seenRunningAt));
          if (ended) break;
        } catch (error) {
          this.log.debug('progress poll failed', errorFields(error));
        }
        const limit = entry.seenRunningAt === null ? this.settleTimeoutMs : this.detachedWatchMs;
        if (Date.now() - frontSince > limit) {
          this.log.warn('stopped watching a generation A1111 did not answer in time', {
            jobId: entry.jobId,
            seenRunning: entry.seenRunningAt !== null,
          });
          break;
        }
      }
      await sleep(MAX_POLL_MS, undefined, { signal }).catch(() => undefined);
    }
    entry.settled.abort(SETTLED);
  }

  private isRunning(entry: Entry, progress: Progress): boolean {
    const { state } = progress;
    return (
      this.requests[0] === entry &&
      state.job_count > 0 &&
      // A1111 names what runs (state.job); a reading without it is matched on the counts alone.
      (state.job === undefined || state.job === entry.job) &&
      (entry.steps === null || state.sampling_steps === entry.steps) &&
      state.job_count === entry.batches
    );
  }

  /** What is left of the running request: sampling steps, or for the extras the images after this one. */
  private stepsLeft(progress: Progress): number {
    const { state } = progress;
    // The extras count their images in job_no from 1 and leave sampling_steps as the last generation set it.
    if (state.job === 'extras') return Math.max(0, state.job_count - state.job_no);
    const batchesLeft = Math.max(0, state.job_count - state.job_no - 1);
    return state.sampling_steps - state.sampling_step + batchesLeft * state.sampling_steps;
  }

  private leave(entry: Entry): void {
    const index = this.requests.indexOf(entry);
    if (index >= 0) this.requests.splice(index, 1);
  }
}
