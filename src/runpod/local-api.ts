/**
 * The local API (`--rp_serve_api`): RunPod's serverless endpoint API on your machine, served by the
 * worker itself, so the official JS client (npm `runpod-sdk`, `baseUrl` pointed here) works unchanged.
 *
 * Paths and shapes are the platform's, under any prefix: `<base>/<endpointId>/run`, `runsync?wait=`,
 * `status/{id}`, `status-sync/{id}?wait=`, `stream/{id}`, `cancel/{id}`, `health`, `purge-queue`.
 * Jobs go IN_QUEUE → IN_PROGRESS → COMPLETED | FAILED | CANCELLED; while a job runs, its `output` is
 * the latest progress reading and each reading is also a `stream` item; the final output is the last
 * stream item. Cancel really cancels: A1111 is interrupted. Finished jobs are kept (up to 1000) for
 * status calls.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import axios from 'axios';
import type { Config } from '../config/index.js';
import { errorFields } from '../errors.js';
import type { JobRunner } from '../handler.js';
import type { Logger } from '../log.js';
import { progressOutput } from './job-reporter.js';
import { WorkerMetrics } from './metrics.js';
import { resultBody } from './worker-loop.js';

type Status = 'IN_QUEUE' | 'IN_PROGRESS' | 'COMPLETED' | 'FAILED' | 'CANCELLED';

interface LocalJob {
  id: string;
  input: unknown;
  webhook: string | undefined;
  status: Status;
  createdAt: number;
  startedAt?: number;
  completedAt?: number;
  output?: unknown;
  error?: string;
  stream: { output: unknown }[];
  controller: AbortController;
  waiters: (() => void)[];
}

const FINAL: readonly Status[] = ['COMPLETED', 'FAILED', 'CANCELLED'];
const MAX_BODY_BYTES = 20 * 1024 * 1024;
const MAX_KEPT = 1_000;
const ACTIONS = new Set(['run', 'runsync', 'status', 'status-sync', 'stream', 'cancel', 'health', 'purge-queue']);

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface LocalApiDeps {
  config: Config;
  log: Logger;
  runner: JobRunner;
}

export class LocalApi {
  private readonly jobs = new Map<string, LocalJob>();
  private readonly queue: LocalJob[] = [];
  private running = 0;
  private server: Server | null = null;
  readonly metrics = new WorkerMetrics();

  constructor(private readonly deps: LocalApiDeps) {}

  /** Starts serving; resolves with the base URL (`http://host:port`). */
  async listen(host: string, port: number): Promise<string> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        const status = error instanceof HttpError ? error.status : 500;
        if (status === 500) this.deps.log.error('local API request failed', errorFields(error));
        send(res, status, { error: error instanceof Error ? error.message : String(error) });
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    const address = server.address() as AddressInfo;
    return `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
  }

  /** Stops serving and cancels what is still queued or running. */
  async close(): Promise<void> {
    for (const job of this.jobs.values())
      if (!FINAL.includes(job.status)) job.controller.abort('the local API stopped');
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://local');
    const segments = url.pathname.split('/').filter(Boolean);
    const at = segments.findIndex((segment) => ACTIONS.has(segment));
    if (at < 0) throw new HttpError(404, `no such route: ${req.method} ${url.pathname}`);
    const action = segments[at]!;
    const id = segments[at + 1];
    const waitMs = clampWait(url.searchParams.get('wait'));

    switch (action) {
      case 'run':
        return send(res, 200, this.view(this.enqueue(await readJson(req)), false));
      case 'runsync': {
        const job = this.enqueue(await readJson(req));
        await this.waitFinal(job, waitMs);
        return send(res, 200, this.view(job, true));
      }
      case 'status':
      case 'status-sync': {
        const job = this.find(id);
        if (action === 'status-sync') await this.waitFinal(job, waitMs);
        return send(res, 200, this.view(job, true));
      }
      case 'stream': {
        const job = this.find(id);
        const stream = job.stream.splice(0);
        return send(res, 200, { id: job.id, status: job.status, stream });
      }
      case 'cancel': {
        // As RunPod answers: CANCELLED at once; the job's own status follows once A1111 is interrupted.
        const job = this.cancel(this.find(id));
        const view = this.view(job, false);
        return send(res, 200, job.status === 'IN_PROGRESS' ? { ...view, status: 'CANCELLED' } : view);
      }
      case 'health':
        return send(res, 200, this.health());
      case 'purge-queue': {
        const removed = this.queue.splice(0);
        for (const job of removed) this.jobs.delete(job.id);
        return send(res, 200, { removed: removed.length, status: 'completed' });
      }
    }
  }

  private enqueue(body: unknown): LocalJob {
    if (typeof body !== 'object' || body === null || !('input' in body)) {
      throw new HttpError(400, 'the request body must be an object with an "input" key, like {"input": {...}}');
    }
    const request = body as { input: unknown; webhook?: unknown };
    const job: LocalJob = {
      id: `local-${randomUUID()}`,
      input: request.input,
      webhook: typeof request.webhook === 'string' ? request.webhook : undefined,
      status: 'IN_QUEUE',
      createdAt: Date.now(),
      stream: [],
      controller: new AbortController(),
      waiters: [],
    };
    this.jobs.set(job.id, job);
    this.queue.push(job);
    this.forgetOldJobs();
    // Started after the answer to /run is built: the platform answers IN_QUEUE.
    setImmediate(() => this.pump());
    return job;
  }

  private pump(): void {
    while (this.running < this.deps.config.runpod.concurrency && this.queue.length > 0) {
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
    const outcome = await this.deps.runner.run(
      { id: job.id, input: job.input },
      {
        signal: job.controller.signal,
        onProgress: (update) => {
          job.output = progressOutput(update);
          job.stream.push({ output: job.output });
        },
      },
    );
    this.metrics.jobFinished(outcome);
    job.completedAt = Date.now();
    const body = resultBody(outcome, false);
    if (outcome.ok) {
      job.status = 'COMPLETED';
      // The stream holds the progress readings only, as on RunPod, where the result goes to job-done alone.
      job.output = body['output'];
    } else {
      job.status = outcome.failure.code === 'CANCELLED' ? 'CANCELLED' : 'FAILED';
      delete job.output;
      job.error = body['error'] as string;
    }
    for (const wake of job.waiters.splice(0)) wake();
    if (job.webhook) void this.callWebhook(job);
  }

  private cancel(job: LocalJob): LocalJob {
    if (FINAL.includes(job.status)) return job;
    const queued = this.queue.indexOf(job);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      job.status = 'CANCELLED';
      job.completedAt = Date.now();
      for (const wake of job.waiters.splice(0)) wake();
      return job;
    }
    job.controller.abort('cancelled through the local API');
    return job;
  }

  private find(id: string | undefined): LocalJob {
    const job = id ? this.jobs.get(id) : undefined;
    if (!job) throw new HttpError(404, `request does not exist: ${id ?? '(no id)'}`);
    return job;
  }

  private async waitFinal(job: LocalJob, ms: number): Promise<void> {
    if (FINAL.includes(job.status)) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      job.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private view(job: LocalJob, withResult: boolean): Record<string, unknown> {
    const view: Record<string, unknown> = { id: job.id, status: job.status };
    if (job.startedAt !== undefined) view['delayTime'] = job.startedAt - job.createdAt;
    if (job.completedAt !== undefined && job.startedAt !== undefined)
      view['executionTime'] = job.completedAt - job.startedAt;
    if (withResult && job.output !== undefined) view['output'] = job.output;
    if (withResult && job.error !== undefined) view['error'] = job.error;
    return view;
  }

  private health(): Record<string, unknown> {
    const all = [...this.jobs.values()];
    const count = (status: Status) => all.filter((job) => job.status === status).length;
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
      worker: { concurrency: this.deps.config.runpod.concurrency, ...this.metrics.snapshot(this.running) },
    };
  }

  private async callWebhook(job: LocalJob): Promise<void> {
    try {
      await axios.post(job.webhook!, this.view(job, true), { timeout: 10_000 });
    } catch (error) {
      this.deps.log.warn('webhook call failed', { jobId: job.id, ...errorFields(error) });
    }
  }

  private forgetOldJobs(): void {
    if (this.jobs.size <= MAX_KEPT) return;
    for (const [id, job] of this.jobs) {
      if (this.jobs.size <= MAX_KEPT) break;
      if (FINAL.includes(job.status)) this.jobs.delete(id);
    }
  }
}

function clampWait(raw: string | null): number {
  const value = raw === null ? 90_000 : Number(raw);
  return Number.isFinite(value) ? Math.min(300_000, Math.max(1_000, value)) : 90_000;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `the request body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
  } catch {
    throw new HttpError(400, 'the request body is not valid JSON');
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const data = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) });
  res.end(data);
}
