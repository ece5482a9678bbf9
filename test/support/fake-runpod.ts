/**
 * A fake RunPod control plane on 127.0.0.1 for tests and benchmarks: it hands out jobs on job-take
 * (long-polling while it has none), takes job-done, stream and ping requests, serves the stop channel,
 * and records every request it receives. Answers can be scripted (statuses for job-take, failures or
 * dropped connections for job-done).
 */
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface PlaneRequest {
  kind: 'job-take' | 'job-take-batch' | 'job-done' | 'job-stream' | 'job-stop' | 'ping' | 'other';
  method: string;
  url: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: string;
  /** The job id in the path (job-done, job-stream). */
  jobId: string | undefined;
  /** When its headers came (the post began), when half its body had come, and when its last byte came. */
  began: number;
  halfAt: number;
  at: number;
  /** When the fake answered it (job-done only). */
  answeredAt?: number;
  /** The status it answered (job-done only; undefined when it dropped the connection). */
  answeredStatus?: number;
}

/**
 * A status; `drop`: the connection closed once the body is in; `{ early }`: that status answered as
 * soon as the body's first bytes arrive, the rest still read if the sender goes on, as a proxy in
 * front of RunPod refuses a body it will not take.
 */
type DoneAnswer = number | 'drop' | { early: number };

/** When the chunks that came at `arrivals` held half the body. */
function halfWay(chunks: readonly Buffer[], arrivals: readonly number[]): number | undefined {
  const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  let seen = 0;
  for (let i = 0; i < chunks.length; i++) {
    seen += chunks[i]!.length;
    if (seen * 2 >= total) return arrivals[i];
  }
  return undefined;
}

export interface FakeJob {
  id?: unknown;
  input?: unknown;
  [key: string]: unknown;
}

export class FakeRunPod {
  readonly requests: PlaneRequest[] = [];
  /**
   * Posts whose sender closed the connection before the body's end: the path and the bytes that came;
   * for one answered early, its status and how many bytes the sender still sent after the answer.
   */
  readonly unfinished: { path: string; body: string; answeredStatus?: number; bytesAfterAnswer?: number }[] = [];
  private readonly events = new EventEmitter();
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly jobs: FakeJob[] = [];
  private readonly stops: string[] = [];
  private readonly waitingTakes: { res: ServerResponse; count: number; timer: NodeJS.Timeout }[] = [];
  private readonly waitingStops: { res: ServerResponse; timer: NodeJS.Timeout }[] = [];
  private takeScript: { status: number; body?: string; contentType?: string }[] = [];
  private readonly doneScript = new Map<string, DoneAnswer[]>();
  /** Answers for the next job-done posts of any job, before the per-job scripts. */
  private readonly anyDone: { answer: DoneAnswer; delayMs: number }[] = [];
  url = '';
  /** When each job was handed out (the job-take answer written), by job id. */
  readonly handedOutAt = new Map<string, number>();

  constructor(
    private readonly options: {
      endpointId?: string;
      longPollMs?: number;
      /** Progress posts (IN_PROGRESS job-done) are answered this late, as by a slow control plane. */
      progressAnswerDelayMs?: number;
      /** Job-done bodies are read at most this fast, as across a network to RunPod (unlimited when unset). */
      jobDoneBytesPerSecond?: number;
    } = {},
  ) {
    this.events.setMaxListeners(0); // the benchmark waits for hundreds of jobs at once
  }

  get endpointId(): string {
    return this.options.endpointId ?? 'test-ep';
  }

  async start(): Promise<string> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.url;
  }

  async close(): Promise<void> {
    for (const waiting of this.waitingTakes.splice(0)) this.answerEmpty(waiting.res, waiting.timer);
    for (const waiting of this.waitingStops.splice(0)) this.answerEmpty(waiting.res, waiting.timer);
    for (const socket of this.sockets) socket.destroy();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The environment RunPod gives a worker pointed at this plane. */
  env(overrides: Record<string, string> = {}): Record<string, string> {
    const base = `${this.url}/v2/${this.endpointId}`;
    return {
      RUNPOD_WEBHOOK_GET_JOB: `${base}/job-take/$RUNPOD_POD_ID?gpu=NVIDIA+TEST`,
      RUNPOD_WEBHOOK_POST_OUTPUT: `${base}/job-done/$RUNPOD_POD_ID/$ID?gpu=NVIDIA+TEST`,
      RUNPOD_WEBHOOK_POST_STREAM: `${base}/job-stream/$RUNPOD_POD_ID/$ID?gpu=NVIDIA+TEST`,
      RUNPOD_WEBHOOK_PING: `${base}/ping/$RUNPOD_POD_ID?gpu=NVIDIA+TEST`,
      RUNPOD_AI_API_KEY: 'test-api-key',
      RUNPOD_POD_ID: 'pod-1',
      RUNPOD_ENDPOINT_ID: this.endpointId,
      RUNPOD_PING_INTERVAL: '200',
      ...overrides,
    };
  }

  /** Resolves once a post whose path contains `path` has delivered at least `bytes` of its body. */
  bodyBytes(path: string, bytes: number, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.events.off('body-bytes', listener);
        reject(new Error(`no ${bytes} body bytes to ${path} within ${timeoutMs} ms`));
      }, timeoutMs);
      const listener = (arrived: { path: string; received: number }) => {
        if (!arrived.path.includes(path) || arrived.received < bytes) return;
        clearTimeout(timer);
        this.events.off('body-bytes', listener);
        resolve();
      };
      this.events.on('body-bytes', listener);
    });
  }

  /** Queues jobs for job-take; a waiting long-poll gets them at once. */
  enqueue(...jobs: FakeJob[]): void {
    this.jobs.push(...jobs);
    this.serveWaitingTakes();
  }

  /**
   * The next job-takes answer these statuses (and bodies) before jobs are handed out; a job-take
   * already waiting gets the first at once.
   */
  scriptTake(...answers: { status: number; body?: string; contentType?: string }[]): void {
    this.takeScript.push(...answers);
    while (this.takeScript.length > 0 && this.waitingTakes.length > 0) {
      const waiting = this.waitingTakes.shift()!;
      clearTimeout(waiting.timer);
      this.take(waiting.res, waiting.count);
    }
  }

  /** The next job-done posts for `jobId` answer these statuses, or drop the connection. */
  scriptDone(jobId: string, ...answers: DoneAnswer[]): void {
    this.doneScript.set(jobId, [...(this.doneScript.get(jobId) ?? []), ...answers]);
  }

  /**
   * The next `count` job-done posts, whatever their job, answer `answer` (a status, or `drop`: the
   * connection closed once the body is in), `delayMs` late.
   */
  faultNextDone(count: number, answer: DoneAnswer, delayMs = 0): void {
    for (let i = 0; i < count; i++) this.anyDone.push({ answer, delayMs });
  }

  /** Forgets the scripted answers not yet given (job-take statuses, job-done failures): RunPod behaves again. */
  clearFaults(): void {
    this.takeScript = [];
    this.anyDone.length = 0;
    this.doneScript.clear();
  }

  /** Puts job ids on the stop channel. */
  stop(...jobIds: string[]): void {
    this.stops.push(...jobIds);
    const waiting = this.waitingStops.shift();
    if (waiting) {
      clearTimeout(waiting.timer);
      this.answerJson(waiting.res, 200, { jobsToStop: this.stops.splice(0) });
    }
  }

  of(kind: PlaneRequest['kind'], jobId?: string): PlaneRequest[] {
    return this.requests.filter((r) => r.kind === kind && (jobId === undefined || r.jobId === jobId));
  }

  /** The final (non-progress) job-done posts of a job. */
  results(jobId: string): PlaneRequest[] {
    return this.of('job-done', jobId).filter((r) => !r.body.startsWith('{"status":"IN_PROGRESS"'));
  }

  /** Resolves with the first recorded request (past or future) matching `predicate`. */
  waitFor(predicate: (request: PlaneRequest) => boolean, timeoutMs = 30_000): Promise<PlaneRequest> {
    const seen = this.requests.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.events.off('request', listener);
        reject(new Error(`no matching request within ${timeoutMs} ms`));
      }, timeoutMs);
      const listener = (request: PlaneRequest) => {
        if (!predicate(request)) return;
        clearTimeout(timer);
        this.events.off('request', listener);
        resolve(request);
      };
      this.events.on('request', listener);
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    const began = performance.timeOrigin + performance.now();
    const rate = req.url?.includes('/job-done/') ? this.options.jobDoneBytesPerSecond : undefined;
    let received = 0;
    const arrivals: number[] = [];
    const early = this.earlyAnswer(req.url ?? '/');
    let socketBytesAtAnswer = 0;
    const complete = await new Promise<boolean>((resolve) => {
      // Once an early answer is out, node discards the rest of the body and the request emits nothing
      // more: the socket's close says whether the body had ended. (Only then: a keep-alive socket
      // carries many requests, and a listener per request would hold every body.)
      const onSocketClose = () => done(req.complete);
      const done = (value: boolean) => {
        req.socket?.off('close', onSocketClose);
        resolve(value);
      };
      req.on('data', (chunk: Buffer) => {
        if (early !== undefined && chunks.length === 0) {
          socketBytesAtAnswer = req.socket.bytesRead;
          req.socket.once('close', onSocketClose);
          this.answerJson(res, early, { error: 'refused early' });
        }
        chunks.push(chunk);
        received += chunk.length;
        arrivals.push(performance.timeOrigin + performance.now());
        this.events.emit('body-bytes', { path: req.url ?? '/', received });
        // Not reading is what a slow link does: TCP holds the sender back.
        const due = rate ? began + (received / rate) * 1000 - (performance.timeOrigin + performance.now()) : 0;
        if (due > 1) {
          req.pause();
          setTimeout(() => req.resume(), due);
        }
      });
      req.once('end', () => done(true));
      req.once('close', () => done(req.complete));
      req.once('error', () => done(false));
    });
    if (!complete) {
      // A body that stops short is no request RunPod acts on.
      this.unfinished.push({
        path: req.url ?? '/',
        body: Buffer.concat(chunks).toString('utf8'),
        ...(early !== undefined
          ? { answeredStatus: early, bytesAfterAnswer: req.socket.bytesRead - socketBytesAtAnswer }
          : {}),
      });
      this.events.emit('unfinished');
      return;
    }
    // Taken when the last byte has arrived, before this server spends time decoding the body.
    const at = performance.timeOrigin + performance.now();
    const url = new URL(req.url ?? '/', this.url);
    const segments = url.pathname.split('/').filter(Boolean);
    const kindSegment = segments[2] ?? '';
    const kind = (
      ['job-take', 'job-take-batch', 'job-done', 'job-stream', 'job-stop', 'ping'].includes(kindSegment)
        ? kindSegment
        : 'other'
    ) as PlaneRequest['kind'];
    const request: PlaneRequest = {
      kind,
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      body: Buffer.concat(chunks).toString('utf8'),
      jobId: kind === 'job-done' || kind === 'job-stream' ? segments[4] : undefined,
      began,
      halfAt: halfWay(chunks, arrivals) ?? at,
      at,
    };
    if (early !== undefined) {
      // Answered already; the sender went on to the body's end.
      request.answeredStatus = early;
      this.requests.push(request);
      this.events.emit('request', request);
      return;
    }
    this.requests.push(request);
    this.events.emit('request', request);

    switch (kind) {
      case 'job-take':
      case 'job-take-batch':
        return this.take(res, kind === 'job-take' ? 1 : Number(url.searchParams.get('batch_size') ?? '1'));
      case 'job-done': {
        const fault = this.anyDone.shift();
        const answer = fault ? fault.answer : this.doneScript.get(request.jobId ?? '')?.shift();
        if (answer === 'drop') {
          req.socket.destroy();
          return;
        }
        // (An early answer was given while the body came: earlyAnswer.)
        const status = typeof answer === 'number' ? answer : 200;
        const reply = () => {
          request.answeredAt = performance.timeOrigin + performance.now();
          request.answeredStatus = status;
          this.answerJson(res, status, {});
        };
        const progress = request.body.startsWith('{"status":"IN_PROGRESS"');
        const delay = (progress ? (this.options.progressAnswerDelayMs ?? 0) : 0) + (fault?.delayMs ?? 0);
        if (delay > 0) setTimeout(reply, delay);
        else reply();
        return;
      }
      case 'job-stop': {
        if (this.stops.length > 0) return this.answerJson(res, 200, { jobsToStop: this.stops.splice(0) });
        const timer = setTimeout(() => {
          const index = this.waitingStops.findIndex((w) => w.res === res);
          if (index >= 0) this.waitingStops.splice(index, 1);
          this.answerEmpty(res, timer);
        }, this.options.longPollMs ?? 500);
        this.waitingStops.push({ res, timer });
        return;
      }
      case 'ping':
        return this.answerJson(res, 200, { status: 'pong' });
      default:
        return this.answerJson(res, 200, {});
    }
  }

  private take(res: ServerResponse, count: number): void {
    const scripted = this.takeScript.shift();
    if (scripted) {
      res.writeHead(scripted.status, { 'Content-Type': scripted.contentType ?? 'application/json' });
      res.end(scripted.body ?? '');
      return;
    }
    if (this.jobs.length > 0) {
      this.handOut(res, count);
      return;
    }
    const timer = setTimeout(() => {
      const index = this.waitingTakes.findIndex((w) => w.res === res);
      if (index >= 0) this.waitingTakes.splice(index, 1);
      this.answerEmpty(res, timer);
    }, this.options.longPollMs ?? 500);
    this.waitingTakes.push({ res, count, timer });
  }

  private serveWaitingTakes(): void {
    while (this.jobs.length > 0 && this.waitingTakes.length > 0) {
      const waiting = this.waitingTakes.shift()!;
      clearTimeout(waiting.timer);
      this.handOut(waiting.res, waiting.count);
    }
  }

  private handOut(res: ServerResponse, count: number): void {
    const jobs = count <= 1 ? this.jobs.slice(0, 1) : this.jobs.slice(0, count);
    this.jobs.splice(0, jobs.length);
    this.answerJson(res, 200, count <= 1 ? jobs[0] : jobs);
    const at = performance.timeOrigin + performance.now();
    for (const job of jobs) if (typeof job.id === 'string') this.handedOutAt.set(job.id, at);
  }

  private answerEmpty(res: ServerResponse, timer: NodeJS.Timeout): void {
    clearTimeout(timer);
    if (res.headersSent || res.destroyed) return;
    res.writeHead(204);
    res.end();
  }

  /** Takes the job-done post's scripted answer when it is an early one. */
  private earlyAnswer(url: string): number | undefined {
    const segments = new URL(url, 'http://x').pathname.split('/').filter(Boolean);
    if (segments[2] !== 'job-done') return undefined;
    const next = this.anyDone[0]?.answer ?? this.doneScript.get(segments[4] ?? '')?.[0];
    if (typeof next !== 'object') return undefined;
    if (this.anyDone.length > 0) this.anyDone.shift();
    else this.doneScript.get(segments[4] ?? '')?.shift();
    return next.early;
  }

  private answerJson(res: ServerResponse, status: number, body: unknown): void {
    if (res.headersSent || res.destroyed) return;
    const data = JSON.stringify(body ?? null);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) });
    res.end(data);
  }
}
