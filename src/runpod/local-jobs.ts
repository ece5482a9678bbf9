/**
 * The jobs of the local API (`--rp_serve_api`), as RunPod's platform keeps them: IN_QUEUE →
 * IN_PROGRESS → COMPLETED | FAILED | CANCELLED, run by the job handler up to the worker's concurrency,
 * in order. While a job runs, its `output` is the latest progress reading and each reading is also a
 * `stream` item. Cancel really cancels: the handler interrupts the generation. Finished jobs are kept
 * (up to 1000) for status calls; a `webhook` receives a finished job once.
 */
import { randomUUID } from 'node:crypto';
import axios from 'axios';
import { errorFields } from '../errors.js';
import type { Logger } from '../log/index.js';
import type { JobHandler } from './handler.js';
import { WorkerMetrics } from './metrics.js';
import { resultBody } from './protocol.js';

export type LocalStatus = 'IN_QUEUE' | 'IN_PROGRESS' | 'COMPLETED' | 'FAILED' | 'CANCELLED';

export interface LocalJob {
  id: string;
  input: unknown;
  webhook: string | undefined;
  status: LocalStatus;
  createdAt: number;
  startedAt?: number;
  completedAt?: number;
  output?: unknown;
  error?: string;
  stream: { output: unknown }[];
  controller: AbortController;
  waiters: (() => void)[];
  /** Woken when a progress reading arrives (and when the job ends): `/stream` requests held open. */
  streamWaiters: (() => void)[];
}

const FINAL: readonly LocalStatus[] = ['COMPLETED', 'FAILED', 'CANCELLED'];
const MAX_KEPT = 1_000;

export function isFinal(job: LocalJob): boolean {
  return FINAL.includes(job.status);
}

export class LocalJobs {
  private readonly jobs = new Map<string, LocalJob>();
  private readonly queue: LocalJob[] = [];
  private running = 0;
  readonly metrics = new WorkerMetrics();

  constructor(
    private readonly handler: JobHandler,
    private readonly concurrency: number,
    private readonly log: Logger,
  ) {}

  /** Queues a job; it starts once the answer to its request is built. */
  add(input: unknown, webhook: string | undefined): LocalJob {
    const job: LocalJob = {
      id: `local-${randomUUID()}`,
      input,
      webhook,
      status: 'IN_QUEUE',
      createdAt: Date.now(),
      stream: [],
      controller: new AbortController(),
      waiters: [],
      streamWaiters: [],
    };
    this.jobs.set(job.id, job);
    this.queue.push(job);
    this.forgetOldJobs();
    // Started after the answer to /run is built: the platform answers IN_QUEUE.
    setImmediate(() => this.pump());
    return job;
  }

  get(id: string | undefined): LocalJob | undefined {
    return id ? this.jobs.get(id) : undefined;
  }

  /** Resolves when the job is final or `ms` have passed. */
  async waitFinal(job: LocalJob, ms: number): Promise<void> {
    if (isFinal(job)) return;
    await waitOn(job.waiters, ms);
  }

  /**
   * Resolves when the job has progress readings not yet read, when it is final, or after `ms`: a
   * `/stream` request is held open until there is something to say, as RunPod's is.
   */
  async waitForStream(job: LocalJob, ms: number): Promise<void> {
    if (job.stream.length > 0 || isFinal(job)) return;
    await waitOn(job.streamWaiters, ms);
  }

  cancel(job: LocalJob): LocalJob {
    if (isFinal(job)) return job;
    const queued = this.queue.indexOf(job);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      job.status = 'CANCELLED';
      job.completedAt = Date.now();
      for (const wake of [...job.waiters.splice(0), ...job.streamWaiters.splice(0)]) wake();
      return job;
    }
    job.controller.abort('cancelled through the local API');
    return job;
  }

  /** Removes the jobs still waiting; returns how many. */
  purge(): number {
    const removed = this.queue.splice(0);
    for (const job of removed) {
      this.jobs.delete(job.id);
      // A request waiting on it (runsync, status-sync, stream) answers now, with the job as it was left.
      job.status = 'CANCELLED';
      job.completedAt = Date.now();
      for (const wake of [...job.waiters.splice(0), ...job.streamWaiters.splice(0)]) wake();
    }
    return removed.length;
  }

  /** Cancels what is queued or running. */
  cancelAll(reason: string): void {
    for (const job of this.jobs.values()) if (!isFinal(job)) job.controller.abort(reason);
  }

  /** How a job looks to a client; `withResult` adds its output or error. */
  view(job: LocalJob, withResult: boolean): Record<string, unknown> {
    const view: Record<string, unknown> = { id: job.id, status: job.status };
    if (job.startedAt !== undefined) view['delayTime'] = job.startedAt - job.createdAt;
    if (job.completedAt !== undefined && job.startedAt !== undefined)
      view['executionTime'] = job.completedAt - job.startedAt;
    if (withResult && job.output !== undefined) view['output'] = job.output;
    if (withResult && job.error !== undefined) view['error'] = job.error;
    return view;
  }

  health(): Record<string, unknown> {
    const all = [...this.jobs.values()];
    const count = (status: LocalStatus) => all.filter((job) => job.status === status).length;
    return {
      jobs: {
        completed: count('COMPLETED'),
        failed: count('FAILED'),
        inProgress: count('IN_PROGRESS'),
        inQueue: count('IN_QUEUE'),
        retried: 0,
      },
      workers: {
        idle: this.running === 0 ? 1 : 0,
        initializing: 0,
        ready: this.running === 0 ? 1 : 0,
        running: this.running > 0 ? 1 : 0,
        throttled: 0,
      },
      worker: { concurrency: this.concurrency, ...this.metrics.snapshot(this.running) },
    };
  }

  private pump(): void {
    while (this.running < this.concurrency && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.running++;
      void this.execute(job).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }

  private async execute(job: LocalJob): Promise<void> {
    job.status = 'IN_PROGRESS';
    job.startedAt = Date.now();
    this.metrics.jobTaken();
    const outcome = await this.handler.run(
      { id: job.id, input: job.input },
      {
        signal: job.controller.signal,
        onProgress: (progress) => {
          job.output = progress;
          job.stream.push({ output: progress });
          for (const wake of job.streamWaiters.splice(0)) wake();
        },
      },
    );
    this.metrics.jobFinished(outcome);
    job.completedAt = Date.now();
    const body = resultBody(outcome, { stopPod: false });
    if ('output' in body) {
      job.status = 'COMPLETED';
      // The stream holds the progress readings only, as on RunPod, where the result goes to job-done alone.
      job.output = body.output;
    } else {
      job.status = !outcome.ok && outcome.failure.code === 'CANCELLED' ? 'CANCELLED' : 'FAILED';
      delete job.output;
      job.error = body.error;
    }
    for (const wake of [...job.waiters.splice(0), ...job.streamWaiters.splice(0)]) wake();
    if (job.webhook) void this.callWebhook(job);
  }

  private async callWebhook(job: LocalJob): Promise<void> {
    try {
      await axios.post(job.webhook!, this.view(job, true), { timeout: 10_000 });
    } catch (error) {
      this.log.warn('webhook call failed', { jobId: job.id, ...errorFields(error) });
    }
  }

  private forgetOldJobs(): void {
    if (this.jobs.size <= MAX_KEPT) return;
    for (const [id, job] of this.jobs) {
      if (this.jobs.size <= MAX_KEPT) break;
      if (isFinal(job)) this.jobs.delete(id);
    }
  }
}

/** Resolves when a waker of `waiters` runs or after `ms`; a timed-out waiter leaves the list. */
function waitOn(waiters: (() => void)[], ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      const index = waiters.indexOf(wake);
      if (index >= 0) waiters.splice(index, 1);
      resolve();
    }, ms);
    waiters.push(wake);
  });
}
