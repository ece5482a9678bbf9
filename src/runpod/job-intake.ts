/**
 * The job-take loop: long-polls RunPod for as many jobs as the worker has room for, hands each to the
 * worker loop, and backs off when RunPod misbehaves: a failed job-take waits a floor delay that doubles
 * to a cap (RunPod's Python runtime retries at once, forever), a 429 waits (5 s by default), and empty answers that
 * come back at once are spaced out so the loop never spins. A job-take already on the wire at
 * shutdown is let finish: a job RunPod hands out in it is run and answered, not lost.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { errorFields } from '../errors.js';
import type { Logger } from '../log/index.js';
import { type ControlPlane, type MalformedJob, ThrottledError } from './control-plane.js';
import type { RunPodJob } from './handler.js';

export interface JobIntakeOptions {
  controlPlane: ControlPlane;
  log: Logger;
  concurrency: number;
  errorDelayMs: number;
  errorDelayMaxMs: number;
  /** Pause after a 429. */
  throttleWaitMs: number;
  /** Ends the loop (shutdown). */
  stopping: AbortSignal;
  /** Jobs held now. */
  running(): number;
  /** Resolves when the worker may take jobs (at once, unless it waits for its backend to answer again). */
  ready(): Promise<void>;
  /** Resolves when a job ends (or the loop stops). */
  slotFreed(): Promise<void>;
  start(job: RunPodJob): void;
  malformed(job: MalformedJob): void;
}

/** Waits `ms`, or less when `signal` ends the wait. */
export async function pause(ms: number, signal: AbortSignal): Promise<void> {
  await sleep(ms, undefined, { signal }).catch(() => undefined);
}

/** Takes jobs until `stopping` aborts. */
export async function takeJobs(options: JobIntakeOptions): Promise<void> {
  const { controlPlane, log, stopping } = options;
  let errorDelay = options.errorDelayMs;
  let emptyStreak = 0;
  while (!stopping.aborted) {
    await options.ready();
    if (stopping.aborted) break;
    const free = options.concurrency - options.running();
    if (free <= 0) {
      await options.slotFreed();
      continue;
    }
    const askedAt = Date.now();
    try {
      // Not aborted on shutdown: a job RunPod hands out in this answer is run and answered, not lost.
      const taken = await controlPlane.takeJobs(free, options.running() > 0);
      errorDelay = options.errorDelayMs;
      if (taken.timedOut) log.debug('job-take long-poll timed out without a job; asking again');
      for (const bad of taken.malformed) options.malformed(bad);
      for (const job of taken.jobs) options.start(job);
      // RunPod holds job-take open until a job comes; an empty answer that comes back at once would
      // otherwise turn this loop into a busy one.
      if (taken.jobs.length === 0 && Date.now() - askedAt < 100) {
        emptyStreak++;
        await pause(Math.min(1_000, options.errorDelayMaxMs, 10 * 2 ** Math.min(emptyStreak, 7)), stopping);
      } else {
        emptyStreak = 0;
      }
    } catch (error) {
      if (stopping.aborted) break;
      if (error instanceof ThrottledError) {
        log.warn(`RunPod throttles job-take (429); waiting ${options.throttleWaitMs} ms`);
        await pause(options.throttleWaitMs, stopping);
        continue;
      }
      log.error('Failed to get job.', { ...errorFields(error), retryInMs: errorDelay });
      await pause(errorDelay, stopping);
      errorDelay = Math.min(errorDelay * 2, options.errorDelayMaxMs);
    }
  }
}
