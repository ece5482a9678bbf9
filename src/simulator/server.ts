/**
 * An A1111 v1.9.3 API SIMULATOR: an HTTP server on loopback that answers like
 * `webui.py --api --nowebui --no-hashing` for every route the worker uses, with real PNGs and no GPU.
 * It is not Stable Diffusion: the pictures are patterns derived from the seed.
 *
 * Besides the API it has fault knobs, used by the tests, the README's demo and the benchmarks:
 * refuse connections for a while after start (slow boot), a route-404 window (WebUI reload in UI mode),
 * the next K calls answered 502/503/504, a crash (every connection dropped, the port closed, optionally
 * reopened) during a generation, slow steps and slow model loads. Every request is recorded in `calls`.
 *
 * It shares no code with the worker: it is a peer written from the API contract.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { LATENT_UPSCALE_MODES, SAMPLERS, SCHEDULERS, UPSCALERS } from './catalog.js';
import { CheckpointRegistry } from './checkpoints.js';
import { WebUiEngine } from './engine.js';
import { HttpFailure, SimulatedCrash } from './errors.js';
import { listings } from './listings.js';
import { NetworkFolders } from './networks.js';
import { pngInfo } from './png-info.js';
import {
  EXTRA_BATCH_MODEL,
  EXTRA_SINGLE_MODEL,
  IMG2IMG_MODEL,
  INTERROGATE_MODEL,
  PNG_INFO_MODEL,
  parseModelBody,
  TXT2IMG_MODEL,
} from './request-model.js';

export interface SimulatorOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Connections are refused for this long after start() (uvicorn not listening yet). */
  bootDelayMs?: number;
  /** Time per sampling step. */
  stepDelayMs?: number;
  /** Time to load a checkpoint; txt2img waits for it while /sd-models already answers. */
  modelLoadMs?: number;
  /** Scanned like `models/Stable-diffusion`. */
  modelsDir?: string;
  /** The `--ckpt` file, listed first. Need not exist. Default `/model.safetensors`; null for none. */
  ckpt?: string | null;
  /** `--api-auth user:password`. */
  apiAuth?: string;
  /** UI mode: the HTTP server answers at once but /sdapi/v1/* is 404 for this long. */
  routesMissingAtStartMs?: number;
  /**
   * Time between a generation's end (the queue lock released, the next one starting) and its answer, as
   * when A1111 serializes a large response outside the lock.
   */
  responseDelayMs?: number;
  /** What a crash does to the process: `drop` closes the port (default); `exit` ends the process. */
  crashMode?: 'drop' | 'exit';
  /** The ControlNet extension is installed (its routes answer); true unless false. */
  controlnet?: boolean;
  /** Each recorded call keeps the answer it got (`answer`), for tests that compare what a client saw. */
  keepAnswers?: boolean;
  /**
   * Answers are written at most this fast, in 64 KiB pieces, as a WebUI's server writes a large body
   * (unlimited when unset).
   */
  answerBytesPerSecond?: number;
  /** Scanned like `models/Lora` (GET /loras, POST /refresh-loras). */
  loraDir?: string;
  /** Scanned like `models/VAE` (GET /sd-vae, POST /refresh-vae). */
  vaeDir?: string;
  /** Scanned like `embeddings` (GET /embeddings, POST /refresh-embeddings). */
  embeddingsDir?: string;
  /** Scanned like the ControlNet extension's `models/ControlNet` at each GET /controlnet/model_list; without it, two stock models. */
  controlnetDir?: string;
}

export interface RecordedCall {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  /** The status answered; -1 when the simulated process died during the call, -2 when the answer was cut. */
  status: number;
  /** For an answer that was cut (status -2): the status its headers carried, which the client did read. */
  cutStatus?: number;
  /** The answer's payload, with the `keepAnswers` option. */
  answer?: unknown;
  at: number;
  /** When the answer's first byte was handed to the socket (`performance.timeOrigin` + `performance.now()`). */
  answerStartedAt?: number;
  /** When the answer's last byte was handed to the socket (`Date.now()`). */
  answeredAt?: number;
}

interface FailureFault {
  remaining: number;
  status: number;
  route: string | undefined;
}

interface CutFault {
  remaining: number;
  route: string | undefined;
}

interface CrashFault {
  atStep: number;
  restartAfterMs: number | undefined;
}

type Handler = (req: IncomingMessage, body: Buffer, url: URL) => Promise<unknown> | unknown;

const API = '/sdapi/v1';
/** The pieces a paced answer is written in (`answerBytesPerSecond`). */
const PACED_PIECE = 65_536;
const STATUS_TEXT: Record<number, string> = { 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout' };

export class A1111Simulator {
  readonly calls: RecordedCall[] = [];
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private engineInstance: WebUiEngine;
  private port: number;
  private readonly host: string;
  private stepDelay: number;
  private modelLoad: number;
  private failures: FailureFault[] = [];
  private routesMissingUntil = 0;
  private routesUnmounted = false;
  private readonly unmountedRoutes = new Set<string>();
  private reloadTriggers: { route: string; windowMs: number }[] = [];
  private crash: CrashFault | null = null;
  private cuts: CutFault[] = [];
  private closed = false;
  /** How many times the simulated process crashed. */
  crashes = 0;
  /** When the simulated process was down after a crash: from the crash to the port open again (or null). */
  readonly downtimes: { from: number; to: number | null }[] = [];

  /** The LoRA and VAE folders (GET /loras, /sd-vae and their refresh routes). */
  readonly networks: NetworkFolders;

  constructor(private readonly options: SimulatorOptions = {}) {
    this.host = options.host ?? '127.0.0.1';
    this.port = options.port ?? 0;
    this.stepDelay = options.stepDelayMs ?? 0;
    this.modelLoad = options.modelLoadMs ?? 0;
    this.engineInstance = this.newEngine();
    this.networks = new NetworkFolders({
      lora: options.loraDir,
      vae: options.vaeDir,
      embeddings: options.embeddingsDir,
      controlnet: options.controlnetDir,
    });
  }

  private newEngine(): WebUiEngine {
    const registry = new CheckpointRegistry(
      this.options.ckpt === undefined ? '/model.safetensors' : this.options.ckpt,
      this.options.modelsDir ?? null,
    );
    return new WebUiEngine(registry, {
      beforeStep: (step) => this.maybeCrash(step),
      stepDelayMs: () => this.stepDelay,
      modelLoadMs: () => this.modelLoad,
    });
  }

  /** The simulated WebUI state (options, checkpoints, generations). */
  get engine(): WebUiEngine {
    return this.engineInstance;
  }

  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  /** Boots: waits `bootDelayMs` with the port closed, scans models, then listens. Resolves with the URL. */
  async start(): Promise<string> {
    if (this.options.bootDelayMs) await sleep(this.options.bootDelayMs);
    await this.engineInstance.boot();
    await Promise.all([this.networks.scanLoras(), this.networks.scanVaes(), this.networks.scanEmbeddings()]);
    if (this.options.routesMissingAtStartMs) this.routesMissingUntil = Date.now() + this.options.routesMissingAtStartMs;
    await this.listen();
    return this.url;
  }

  /**
   * Listens at once (the URL is known immediately) while the API comes up behind it: with a boot delay
   * the port stays closed; use this when a caller needs the address before the simulator is ready.
   */
  async reservePort(): Promise<string> {
    await this.listen();
    await this.closeServer();
    return this.url;
  }

  private listen(): Promise<void> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent && !res.destroyed)
          this.send(req, res, 500, { error: 'Exception', detail: '', body: '', errors: String(error) });
      });
    });
    server.keepAliveTimeout = 30_000; // A1111's --timeout-keep-alive default
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, this.host, () => {
        this.port = (server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  private closeServer(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const socket of this.sockets) socket.destroy();
    if (!server) return Promise.resolve();
    return new Promise((resolve) => server.close(() => resolve()));
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.closeServer();
  }

  // ---- fault knobs -------------------------------------------------------------------------------

  /** The next `count` requests (to `route` under /sdapi/v1 when given) answer `status` from a proxy. */
  failNext(count: number, status: 502 | 503 | 504 = 503, route?: string): void {
    this.failures.push({ remaining: count, status, route });
  }

  /** /sdapi/v1/* answers 404 {"detail":"Not Found"} for the next `ms` milliseconds (a WebUI reload). */
  routesMissingFor(ms: number): void {
    this.routesMissingUntil = Date.now() + ms;
  }

  /** Unmounts or remounts the API routes until told otherwise. */
  setRoutesMounted(mounted: boolean): void {
    this.routesUnmounted = !mounted;
  }

  /** The next request to `route` starts a WebUI reload: /sdapi/v1/* is 404 for `windowMs`, that request included. */
  reloadOnNext(route: string, windowMs: number): void {
    this.reloadTriggers.push({ route, windowMs });
  }

  /** One route answers 404 {"detail":"Not Found"} while the others work (`mounted = false`), or again normally. */
  setRouteMounted(route: string, mounted: boolean): void {
    if (mounted) this.unmountedRoutes.delete(`${API}${route}`);
    else this.unmountedRoutes.add(`${API}${route}`);
  }

  /**
   * txt2img refuses this sampler with A1111's 404 "Sampler not found" although /samplers lists it, as
   * when an extension registers a sampler it cannot run.
   */
  rejectSampler(name: string): void {
    this.engineInstance.rejectedSamplers.add(name);
  }

  /**
   * The next `count` answers (from `route` under /sdapi/v1 when given) stop half-way: the headers and
   * half the body are sent, then the connection is dropped, as when a proxy or the process dies.
   */
  cutNextResponses(count: number, route?: string): void {
    this.cuts.push({ remaining: count, route });
  }

  /** The next generation crashes the process at step `atStep`; `restartAfterMs` brings it back. */
  crashDuringNextGeneration(options: { atStep?: number; restartAfterMs?: number } = {}): void {
    this.crash = { atStep: options.atStep ?? 1, restartAfterMs: options.restartAfterMs };
  }

  /**
   * Disarms every fault still waiting for a request (failures, cut answers, a crash, route reloads and
   * missing routes): what comes next meets a healthy WebUI. A restart already under way still happens.
   */
  clearFaults(): void {
    this.failures = [];
    this.cuts = [];
    this.crash = null;
    this.reloadTriggers = [];
    this.routesMissingUntil = 0;
  }

  setStepDelay(ms: number): void {
    this.stepDelay = ms;
  }

  setModelLoadDelay(ms: number): void {
    this.modelLoad = ms;
  }

  /** Time between a generation's end and its answer, from the next answer on. */
  setResponseDelay(ms: number): void {
    this.options.responseDelayMs = ms;
  }

  /** Recorded calls to one API route, e.g. `callsTo('POST', '/txt2img')`. */
  callsTo(method: string, route: string): RecordedCall[] {
    return this.calls.filter((c) => c.method === method && c.path === `${API}${route}`);
  }

  private maybeCrash(step: number): void {
    const crash = this.crash;
    if (!crash || step < crash.atStep) return;
    this.crash = null;
    this.crashes++;
    const downtime = { from: Date.now(), to: null as number | null };
    this.downtimes.push(downtime);
    if (this.options.crashMode === 'exit') {
      process.stderr.write('A1111 SIMULATOR: simulated crash, exiting\n');
      process.exit(139);
    }
    this.engineInstance.kill();
    void this.closeServer().then(async () => {
      if (crash.restartAfterMs === undefined || this.closed) return;
      await sleep(crash.restartAfterMs);
      if (this.closed) return;
      this.engineInstance = this.newEngine();
      await this.engineInstance.boot();
      await Promise.all([this.networks.scanLoras(), this.networks.scanVaes(), this.networks.scanEmbeddings()]);
      await this.listen();
      downtime.to = Date.now();
    });
    throw new SimulatedCrash('simulated crash');
  }

  // ---- HTTP --------------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://simulator');
    const call: RecordedCall = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.search,
      headers: { ...req.headers },
      body: parseForRecord(body),
      status: 0,
      at: started,
    };
    this.calls.push(call);

    const { status, payload } = await this.route(req, body, url);
    call.status = status;
    if (this.options.keepAnswers) call.answer = payload;
    if (status === -1) return; // the process "died": the socket is already gone
    res.setHeader('X-Process-Time', ((Date.now() - started) / 1000).toFixed(4));
    res.setHeader('Server', 'a1111-v1.9.3-simulator');
    const cut = this.cuts.find((c) => c.remaining > 0 && (!c.route || url.pathname === `${API}${c.route}`));
    if (cut) {
      cut.remaining--;
      this.cuts = this.cuts.filter((c) => c.remaining > 0);
      call.status = -2;
      call.cutStatus = status;
      this.sendHalf(res, status, payload);
      return;
    }
    this.send(req, res, status, payload, call);
  }

  /** The headers and half the body of an answer, then the connection dropped. */
  private sendHalf(res: ServerResponse, status: number, payload: unknown): void {
    const data = Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload ?? null));
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': data.length });
    res.write(data.subarray(0, Math.floor(data.length / 2)), () => res.socket?.destroy());
  }

  private async route(req: IncomingMessage, body: Buffer, url: URL): Promise<{ status: number; payload: unknown }> {
    const path = url.pathname;
    const fault = this.failures.find((f) => f.remaining > 0 && (!f.route || path === `${API}${f.route}`));
    if (fault) {
      fault.remaining--;
      this.failures = this.failures.filter((f) => f.remaining > 0);
      return { status: fault.status, payload: `${fault.status} ${STATUS_TEXT[fault.status]}` };
    }
    const trigger = this.reloadTriggers.find((t) => path === `${API}${t.route}`);
    if (trigger) {
      this.reloadTriggers = this.reloadTriggers.filter((t) => t !== trigger);
      this.routesMissingFor(trigger.windowMs);
    }
    const unmounted = this.routesUnmounted || Date.now() < this.routesMissingUntil || this.unmountedRoutes.has(path);
    if (path.startsWith(`${API}/`) && unmounted) {
      return { status: 404, payload: { detail: 'Not Found' } };
    }
    const routes = this.routes();
    const byMethod = routes[path];
    if (!byMethod) return { status: 404, payload: { detail: 'Not Found' } };
    const handler = byMethod[req.method ?? 'GET'];
    if (!handler) return { status: 405, payload: { detail: 'Method Not Allowed' } };
    if (path.startsWith(`${API}/`) && !this.authorized(req)) {
      const detail = req.headers.authorization?.startsWith('Basic ')
        ? 'Incorrect username or password'
        : 'Not authenticated';
      return { status: 401, payload: { error: 'HTTPException', detail, body: '', errors: '' } };
    }
    try {
      return { status: 200, payload: await handler(req, body, url) };
    } catch (error) {
      if (error instanceof HttpFailure) return { status: error.status, payload: error.body };
      if (error instanceof SimulatedCrash) return { status: -1, payload: null };
      throw error;
    }
  }

  private authorized(req: IncomingMessage): boolean {
    if (!this.options.apiAuth) return true;
    const header = req.headers.authorization ?? '';
    if (!header.startsWith('Basic ')) return false;
    return Buffer.from(header.slice(6), 'base64').toString('utf8') === this.options.apiAuth;
  }

  private send(req: IncomingMessage, res: ServerResponse, status: number, payload: unknown, call?: RecordedCall): void {
    const isText = typeof payload === 'string';
    let data = Buffer.from(isText ? payload : JSON.stringify(payload ?? null));
    res.statusCode = status;
    res.setHeader('Content-Type', isText ? 'text/plain; charset=utf-8' : 'application/json');
    // Starlette's GZipMiddleware(minimum_size=1000), as A1111 installs it.
    if (data.length >= 1000 && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
      data = gzipSync(data);
      res.setHeader('Content-Encoding', 'gzip');
    }
    res.setHeader('Content-Length', data.length);
    res.once('finish', () => {
      if (call) call.answeredAt = Date.now();
    });
    if (call) call.answerStartedAt = performance.timeOrigin + performance.now();
    const rate = this.options.answerBytesPerSecond;
    if (!rate || data.length <= PACED_PIECE) {
      res.end(data);
      return;
    }
    const started = performance.now();
    const due = (offset: number) => started + (offset / rate) * 1000;
    const pieces = (from: number) => {
      if (res.destroyed) return;
      // Every piece that is due goes now: a timer per piece would cap the rate at a piece a millisecond.
      let offset = from;
      while (offset < data.length && due(offset) <= performance.now()) {
        const end = Math.min(offset + PACED_PIECE, data.length);
        if (end === data.length) {
          res.end(data.subarray(offset));
          return;
        }
        res.write(data.subarray(offset, end));
        offset = end;
      }
      setTimeout(() => pieces(offset), Math.max(1, due(offset) - performance.now()));
    };
    pieces(0);
  }

  private routes(): Record<string, Record<string, Handler>> {
    const engine = this.engineInstance;
    return {
      [`${API}/txt2img`]: {
        POST: async (req, body) => this.delayed(await engine.txt2img(this.parseBody(req, body, TXT2IMG_MODEL).values)),
      },
      [`${API}/img2img`]: {
        POST: async (req, body) => this.delayed(await engine.img2img(this.parseBody(req, body, IMG2IMG_MODEL).values)),
      },
      [`${API}/extra-single-image`]: {
        POST: (req, body) => {
          const { values, given } = this.parseBody(req, body, EXTRA_SINGLE_MODEL);
          return engine.extraSingle(values, given);
        },
      },
      [`${API}/extra-batch-images`]: {
        POST: (req, body) => {
          const { values, given } = this.parseBody(req, body, EXTRA_BATCH_MODEL);
          return engine.extraBatch(values, given);
        },
      },
      [`${API}/png-info`]: {
        POST: async (req, body) => pngInfo(this.parseBody(req, body, PNG_INFO_MODEL).values, engine.options),
      },
      [`${API}/interrogate`]: {
        POST: (req, body) => engine.interrogate(this.parseBody(req, body, INTERROGATE_MODEL).values),
      },
      ...listings({
        controlnet: this.options.controlnet !== false,
        controlNetModels: (update) => this.networks.controlNetModels(update),
      }),
      [`${API}/loras`]: { GET: () => this.networks.loras() },
      [`${API}/sd-vae`]: { GET: () => this.networks.vaes() },
      [`${API}/embeddings`]: { GET: () => this.networks.embeddings() },
      [`${API}/sd-models`]: { GET: () => engine.checkpoints.list() },
      [`${API}/samplers`]: { GET: () => SAMPLERS },
      [`${API}/schedulers`]: { GET: () => SCHEDULERS },
      [`${API}/upscalers`]: {
        GET: () => UPSCALERS.map((name) => ({ name, model_name: null, model_path: null, model_url: null, scale: 4 })),
      },
      [`${API}/latent-upscale-modes`]: { GET: () => LATENT_UPSCALE_MODES.map((name) => ({ name })) },
      [`${API}/options`]: {
        GET: () => engine.options,
        POST: async (_req, body) => {
          const update = parseJson(body);
          if (typeof update !== 'object' || update === null || Array.isArray(update)) {
            throw new HttpFailure(422, {
              detail: [{ loc: ['body'], msg: 'value is not a valid dict', type: 'type_error.dict' }],
            });
          }
          await engine.setOptions(update as Record<string, unknown>);
          return null;
        },
      },
      [`${API}/progress`]: { GET: () => engine.progress() },
      [`${API}/interrupt`]: {
        POST: () => {
          engine.interrupt();
          return {};
        },
      },
      [`${API}/skip`]: {
        POST: () => {
          engine.skip();
          return null;
        },
      },
      [`${API}/refresh-checkpoints`]: {
        POST: async () => {
          await engine.refreshCheckpoints();
          return null;
        },
      },
      // refresh-vae and refresh-embeddings rescan under the queue lock; refresh-loras does not.
      [`${API}/refresh-vae`]: { POST: () => engine.lock.run(async () => this.networks.scanVaes().then(() => null)) },
      [`${API}/refresh-embeddings`]: {
        POST: () => engine.lock.run(async () => this.networks.scanEmbeddings().then(() => null)),
      },
      [`${API}/refresh-loras`]: { POST: () => this.networks.scanLoras().then(() => null) },
      [`${API}/cmd-flags`]: {
        GET: () => ({
          api: true,
          nowebui: true,
          no_hashing: true,
          port: this.port,
          api_auth: this.options.apiAuth ?? null,
        }),
      },
      '/openapi.json': {
        GET: () => ({
          openapi: '3.0.2',
          info: { title: 'FastAPI', version: '0.1.0' },
          paths: Object.fromEntries(Object.keys(this.routes()).map((p) => [p, {}])),
        }),
      },
    };
  }

  /**
   * A POST body as FastAPI reads it for a pydantic model: JSON only, 422 with pydantic's error list
   * otherwise. `given` holds the keys the body had.
   */
  private parseBody(
    req: IncomingMessage,
    body: Buffer,
    model: Parameters<typeof parseModelBody>[0],
  ): { values: Record<string, unknown>; given: Set<string> } {
    const isJson = /json/i.test(String(req.headers['content-type'] ?? ''));
    let parsed: unknown;
    if (body.length === 0) parsed = null;
    else if (!isJson) {
      throw new HttpFailure(422, {
        detail: [{ loc: ['body'], msg: 'value is not a valid dict', type: 'type_error.dict' }],
      });
    } else {
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch (error) {
        const doc = body.toString('utf8');
        const pos = jsonErrorPosition(doc, error instanceof Error ? error.message : String(error));
        const lineno = doc.slice(0, pos).split('\n').length;
        const colno = pos - doc.lastIndexOf('\n', pos - 1);
        // Python's json module names the spot as `line L column C (char P)`.
        const msg = 'Expecting value';
        throw new HttpFailure(422, {
          detail: [
            {
              loc: ['body', pos],
              msg: `${msg}: line ${lineno} column ${colno} (char ${pos})`,
              type: 'value_error.jsondecode',
              ctx: { msg, doc, pos, lineno, colno },
            },
          ],
        });
      }
    }
    const request = parseModelBody(model, parsed);
    if (!request.ok) throw new HttpFailure(422, { detail: request.errors });
    const given = new Set(typeof parsed === 'object' && parsed !== null ? Object.keys(parsed) : []);
    return { values: request.value, given };
  }

  /** A generation's answer, after the configured delay outside the queue lock. */
  private async delayed(response: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.options.responseDelayMs) await sleep(this.options.responseDelayMs);
    return response;
  }
}

function parseJson(body: Buffer): unknown {
  if (body.length === 0) return null;
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

function parseForRecord(body: Buffer): unknown {
  if (body.length === 0) return null;
  const parsed = parseJson(body);
  return parsed === undefined ? body.toString('utf8') : parsed;
}

/** Where JSON.parse gave up, from its message: a stated position, the end, or the unexpected token. */
function jsonErrorPosition(doc: string, message: string): number {
  const stated = /at position (\d+)/.exec(message);
  if (stated) return Number(stated[1]);
  if (/end of JSON input/.test(message)) return doc.length;
  const token = /Unexpected token '(.)'/.exec(message)?.[1];
  const index = token === undefined ? -1 : doc.indexOf(token);
  return Math.max(index, 0);
}
