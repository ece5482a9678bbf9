/**
 * The worker's view of A1111's generation queue.
 *
 * A1111 runs txt2img requests one at a time, first in, first out, and `/interrupt` stops whichever
 * generation is running at that moment, not a particular one; an interrupt that arrives before a
 * generation has begun is forgotten when it begins. With more than one job in flight
 * (WORKER_CONCURRENCY > 1) the worker therefore has to know which of its requests A1111 is working on:
 *
 * - the first request in the line is the one A1111 generates (or is about to, while it waits for the
 *   model or the queue lock); the others wait inside A1111;
 * - stopping a request means waiting until A1111 reports it running, then sending /interrupt, but only
 *   while the reading is that request's (same step count and batch count) with at least two steps to
 *   go, so the interrupt cannot land on the request behind it. A1111 answers a request after it has
 *   released its queue lock, so the next one may already run when the answer arrives; when the request
 *   behind looks the same in /progress the two cannot be told apart, and the unwanted one is left to
 *   finish rather than risk stopping a wanted one;
 * - a request that still waits behind another is marked, and stopped the same way once it reaches the
 *   front; its job does not wait for that;
 * - progress readings belong to the first request only.
 *
 * A request stays in the line until A1111 answers it, even when the job that sent it has ended, because
 * A1111 keeps working on it until then.
 */
import type { A1111Client } from '../a1111/client.js';
import type { Progress, Txt2ImgRequest, Txt2ImgResponse } from '../a1111/schemas.js';
import { errorFields, WorkerError } from '../errors.js';
import type { Logger } from '../log.js';

interface Entry {
  jobId: string;
  /** What /progress shows while this request runs. */
  steps: number;
  batches: number;
  settled: boolean;
  done: Promise<void>;
  unwanted: boolean;
  stopping: Promise<void> | null;
}

export interface InterruptResult {
  /** `now`: A1111 answered the stopped request; `scheduled`: it still waits in A1111's queue. */
  outcome: 'now' | 'scheduled' | 'not-running';
}

const POLL_MS = 20;

/** The step and batch counts A1111's /progress shows for a request (v1.9.3 defaults filled in). */
function signatureOf(request: Txt2ImgRequest): { steps: number; batches: number } {
  const iterations = typeof request.n_iter === 'number' ? request.n_iter : 1;
  return {
    steps: typeof request.steps === 'number' ? request.steps : 50,
    batches: request['enable_hr'] === true ? iterations * 2 : iterations,
  };
}

export class GenerationLine {
  private readonly line: Entry[] = [];

  constructor(
    private readonly client: A1111Client,
    private readonly log: Logger,
    private readonly settleTimeoutMs: number,
  ) {}

  /** Jobs with a request in A1111, in A1111's order. */
  get jobIds(): string[] {
    return this.line.map((entry) => entry.jobId);
  }

  /** True while this job's request is the one A1111 is generating (or about to). */
  isGenerating(jobId: string): boolean {
    return this.line[0]?.jobId === jobId;
  }

  /**
   * Sends a txt2img request and keeps it in the line until A1111 answers. Aborting `signal` stops
   * waiting for the answer, not the request: A1111 would go on with it anyway.
   */
  submit(jobId: string, request: Txt2ImgRequest, signal?: AbortSignal): Promise<Txt2ImgResponse> {
    const call = this.client.txt2img(request);
    const entry: Entry = {
      jobId,
      ...signatureOf(request),
      settled: false,
      unwanted: false,
      stopping: null,
      done: call.then(
        () => undefined,
        () => undefined,
      ),
    };
    this.line.push(entry);
    void entry.done.then(() => {
      entry.settled = true;
      this.leave(entry);
    });
    if (!signal) return call;
    return new Promise<Txt2ImgResponse>((resolve, reject) => {
      const onAbort = () => reject(new WorkerError('CANCELLED', 'txt2img was abandoned by its job'));
      if (signal.aborted) onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      call.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /**
   * Stops the generation of a job. When A1111 is working on it (or about to), resolves once A1111 has
   * answered it, bounded by the settle timeout; when it still waits behind another request, resolves
   * at once and stops it later, when it starts.
   */
  async interrupt(jobId: string): Promise<InterruptResult> {
    const entry = this.line.find((e) => e.jobId === jobId);
    if (!entry) return { outcome: 'not-running' };
    entry.unwanted = true;
    if (this.line[0] !== entry) {
      this.log.info(
        'the job\u2019s generation still waits in A1111\u2019s queue; it will be interrupted when it starts',
        {
          jobId,
          ahead: this.line.indexOf(entry),
        },
      );
      return { outcome: 'scheduled' };
    }
    await this.stop(entry);
    await this.waitSettled(entry);
    return { outcome: 'now' };
  }

  private stop(entry: Entry): Promise<void> {
    entry.stopping ??= this.stopWhenRunning(entry).catch((error: unknown) => {
      this.log.warn('could not interrupt a generation', { jobId: entry.jobId, ...errorFields(error) });
    });
    return entry.stopping;
  }

  /** Polls /progress until this request runs, then interrupts it; gives up when it settles or times out. */
  private async stopWhenRunning(entry: Entry): Promise<void> {
    const next = this.line[this.line.indexOf(entry) + 1];
    if (next && next.steps === entry.steps && next.batches === entry.batches) {
      this.log.info('leaving an unwanted generation to finish: the request behind it looks the same in /progress', {
        jobId: entry.jobId,
        next: next.jobId,
      });
      return;
    }
    const deadline = Date.now() + this.settleTimeoutMs;
    while (!entry.settled && Date.now() < deadline) {
      const progress = await this.client.getProgress();
      if (entry.settled) return;
      if (this.isRunning(entry, progress)) {
        if (this.stepsLeft(progress) < 2) return; // about to finish: an interrupt could hit the next one
        await this.client.interrupt();
        this.log.info('sent POST /sdapi/v1/interrupt to A1111', {
          jobId: entry.jobId,
          step: progress.state.sampling_step,
        });
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  private isRunning(entry: Entry, progress: Progress): boolean {
    const { state } = progress;
    return (
      this.line[0] === entry &&
      state.job_count > 0 &&
      state.sampling_steps === entry.steps &&
      state.job_count === entry.batches
    );
  }

  private stepsLeft(progress: Progress): number {
    const { state } = progress;
    const batchesLeft = Math.max(0, state.job_count - state.job_no - 1);
    return state.sampling_steps - state.sampling_step + batchesLeft * state.sampling_steps;
  }

  private async waitSettled(entry: Entry): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new WorkerError(
              'BACKEND_TIMEOUT',
              `A1111 had not answered the interrupted generation ${this.settleTimeoutMs} ms after /interrupt`,
            ),
          ),
        this.settleTimeoutMs,
      );
    });
    try {
      await Promise.race([entry.done, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private leave(entry: Entry): void {
    const index = this.line.indexOf(entry);
    if (index >= 0) this.line.splice(index, 1);
    const next = this.line[0];
    if (index === 0 && next?.unwanted) {
      this.log.info('interrupting a generation whose job had already ended', { jobId: next.jobId });
      void this.stop(next);
    }
  }
}
