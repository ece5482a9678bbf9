/**
 * The local API (`--rp_serve_api`): RunPod's serverless endpoint API on your machine, served by the
 * worker itself, so the official JS client (npm `runpod-sdk`, `baseUrl` pointed here) works unchanged.
 *
 * Paths and shapes are the platform's, under any prefix: `<base>/<endpointId>/run`, `runsync?wait=`,
 * `status/{id}`, `status-sync/{id}?wait=`, `stream/{id}`, `cancel/{id}`, `health`, `purge-queue`. The
 * jobs themselves are kept by local-jobs.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorFields } from '../errors.js';
import type { Logger } from '../log/index.js';
import type { JobHandler } from './handler.js';
import { type LocalJob, LocalJobs } from './local-jobs.js';

const MAX_BODY_BYTES = 20 * 1024 * 1024;
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
  handler: JobHandler;
  concurrency: number;
  log: Logger;
}

export class LocalApi {
  private server: Server | null = null;
  private readonly jobs: LocalJobs;

  constructor(private readonly deps: LocalApiDeps) {
    this.jobs = new LocalJobs(deps.handler, deps.concurrency, deps.log);
  }

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
    this.jobs.cancelAll('the local API stopped');
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
    const jobs = this.jobs;

    switch (action) {
      case 'run':
        return send(res, 200, jobs.view(this.enqueue(await readJson(req)), false));
      case 'runsync': {
        const job = this.enqueue(await readJson(req));
        await jobs.waitFinal(job, waitMs);
        return send(res, 200, jobs.view(job, true));
      }
      case 'status':
      case 'status-sync': {
        const job = this.find(id);
        if (action === 'status-sync') await jobs.waitFinal(job, waitMs);
        return send(res, 200, jobs.view(job, true));
      }
      case 'stream': {
        const job = this.find(id);
        await jobs.waitForStream(job, url.searchParams.has('wait') ? waitMs : STREAM_HOLD_MS);
        const stream = job.stream.splice(0);
        return send(res, 200, { id: job.id, status: job.status, stream });
      }
      case 'cancel': {
        // As RunPod answers: CANCELLED at once; the job's own status follows once it is interrupted.
        const job = jobs.cancel(this.find(id));
        const view = jobs.view(job, false);
        return send(res, 200, job.status === 'IN_PROGRESS' ? { ...view, status: 'CANCELLED' } : view);
      }
      case 'health':
        return send(res, 200, jobs.health());
      case 'purge-queue':
        return send(res, 200, { removed: jobs.purge(), status: 'completed' });
    }
  }

  private enqueue(body: unknown): LocalJob {
    if (typeof body !== 'object' || body === null || !('input' in body)) {
      throw new HttpError(400, 'the request body must be an object with an "input" key, like {"input": {...}}');
    }
    const request = body as { input: unknown; webhook?: unknown };
    return this.jobs.add(request.input, typeof request.webhook === 'string' ? request.webhook : undefined);
  }

  private find(id: string | undefined): LocalJob {
    const job = this.jobs.get(id);
    if (!job) throw new HttpError(404, `request does not exist: ${id ?? '(no id)'}`);
    return job;
  }
}

/** How long `/stream` holds a request open without news when it gives no `wait`. */
const STREAM_HOLD_MS = 10_000;

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
