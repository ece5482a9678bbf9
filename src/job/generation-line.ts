/**
 * The worker's view of A1111's generation queue.
 *
 * A1111 runs txt2img requests one at a time, first in, first out, and `/interrupt` stops whichever
 * generation is running, not a particular one. With more than one job in flight (WORKER_CONCURRENCY
 * > 1) the worker must therefore know which of its requests A1111 is working on:
 *
 * - the first request in the line is the one generating; the others wait inside A1111;
 * - interrupting the first one means POST /interrupt and waiting for its answer (partial images), so
 *   the GPU is free when the next job starts;
 * - interrupting a waiting one cannot take it out of A1111's queue, so it is marked: the moment it
 *   reaches the front (its predecessor answered and A1111 reports a running job), the worker sends
 *   /interrupt, and the job behind it is not delayed by a generation nobody wants;
 * - progress readings belong to the first request only.
 *
 * A request stays in the line until A1111 answers it, even when the job that sent it has ended, because
 * A1111 keeps working on it until then.
 */
import type { A1111Client } from '../a1111/client.js';
import type { Txt2ImgRequest, Txt2ImgResponse } from '../a1111/schemas.js';
import { errorFields, WorkerError } from '../errors.js';
import type { Logger } from '../log.js';

interface Entry {
  jobId: string;
  settled: Promise<void>;
  unwanted: boolean;
}

export interface InterruptResult {
  /** `now`: it was generating and has stopped; `scheduled`: it still waits and will be stopped when it starts. */
  outcome: 'now' | 'scheduled' | 'not-running';
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
      unwanted: false,
      settled: call.then(
        () => undefined,
        () => undefined,
      ),
    };
    this.line.push(entry);
    void entry.settled.then(() => this.leave(entry));
    if (!signal) return call;
    return new Promise<Txt2ImgResponse>((resolve, reject) => {
      const onAbort = () => reject(new WorkerError('CANCELLED', 'txt2img was abandoned by its job'));
      if (signal.aborted) onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      call.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /**
   * Stops the generation of a job: at once when A1111 is working on it (resolving when A1111 has
   * answered, bounded by the settle timeout), or when it reaches the front of the line.
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
    await this.client.interrupt();
    this.log.info('sent POST /sdapi/v1/interrupt to A1111', { jobId });
    await this.waitSettled(entry);
    return { outcome: 'now' };
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
      await Promise.race([entry.settled, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private leave(entry: Entry): void {
    const index = this.line.indexOf(entry);
    if (index >= 0) this.line.splice(index, 1);
    const next = this.line[0];
    if (index === 0 && next?.unwanted) void this.interruptWhenStarted(next);
  }

  /** A1111 ignores an interrupt sent before a generation begins, so wait until it reports one running. */
  private async interruptWhenStarted(entry: Entry): Promise<void> {
    const deadline = Date.now() + this.settleTimeoutMs;
    let settled = false;
    void entry.settled.then(() => {
      settled = true;
    });
    try {
      while (!settled && Date.now() < deadline) {
        const progress = await this.client.getProgress();
        if (progress.state.job_count > 0) {
          await this.client.interrupt();
          this.log.info('interrupted a generation whose job had already ended', { jobId: entry.jobId });
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } catch (error) {
      this.log.warn('could not interrupt an abandoned generation', { jobId: entry.jobId, ...errorFields(error) });
    }
  }
}
