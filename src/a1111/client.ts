/**
 * The A1111 API client: one axios instance per worker with keep-alive sockets and axios-retry, and
 * txt2img, the call on every job's path, on node:http over the same sockets (post-stream.ts) with the
 * same retry policy applied by the client itself.
 *
 * Retry policy (for every method, txt2img POSTs included): 502/503/504 and connection failures that
 * happen before A1111 could process the request (refused, unreachable) are retried with exponential
 * backoff. A connection reset is retried for idempotent calls only: a reset txt2img means A1111 died
 * while generating, which is BACKEND_CRASHED, not something to send again. Timeouts are never retried.
 * Every failure leaves this module as a classified {@link WorkerError}.
 */
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import axios, { AxiosError, type AxiosInstance, type AxiosRequestConfig, CanceledError, isAxiosError } from 'axios';
import axiosRetry, { type IAxiosRetryConfig } from 'axios-retry';
import type { z } from 'zod';
import type { Config } from '../config.js';
import { WorkerError } from '../errors.js';
import type { Logger } from '../log.js';
import { collectWhileReading } from '../memory.js';
import { type A1111Call, classifyA1111Error, isConnectFailure, isConnectionReset } from './classify.js';
import { postForStream, statusError } from './post-stream.js';
import type { BackendLiveness } from './process.js';
import { parseTxt2ImgBytes, rememberRawBody, takeBuffer } from './raw-body.js';
import {
  type Options,
  OptionsSchema,
  type Progress,
  ProgressSchema,
  type Sampler,
  SamplerListSchema,
  type Scheduler,
  SchedulerListSchema,
  type SdModel,
  SdModelListSchema,
  type Txt2ImgRequest,
  type Txt2ImgResponse,
  Txt2ImgResponseSchema,
  Txt2ImgRestSchema,
} from './schemas.js';

export type A1111ClientConfig = Pick<
  Config,
  | 'a1111BaseUrl'
  | 'a1111Auth'
  | 'requestTimeoutMs'
  | 'httpRetries'
  | 'retryBaseDelayMs'
  | 'retryMaxDelayMs'
  | 'readyProbeTimeoutMs'
>;

/** Everything the worker asks of A1111. Each method rejects with a classified WorkerError. */
export interface A1111Client {
  /**
   * One readiness probe: GET /sd-models must answer 200 with a JSON array. No retries. When A1111
   * answered a request successfully less than a second ago, its last model list is the answer.
   */
  probe(signal?: AbortSignal): Promise<SdModel[]>;
  listModels(signal?: AbortSignal): Promise<SdModel[]>;
  listSamplers(signal?: AbortSignal): Promise<Sampler[]>;
  /** `null` when this A1111 has no /schedulers route (before 1.9.1). */
  listSchedulers(signal?: AbortSignal): Promise<Scheduler[] | null>;
  getOptions(signal?: AbortSignal): Promise<Options>;
  getProgress(signal?: AbortSignal): Promise<Progress>;
  txt2img(request: Txt2ImgRequest, signal?: AbortSignal): Promise<Txt2ImgResponse>;
  interrupt(signal?: AbortSignal): Promise<void>;
  refreshCheckpoints(signal?: AbortSignal): Promise<void>;
  /** Whether POST /txt2img is routed: a GET there answers 405 when mounted, 404 when not. */
  isTxt2ImgRouteMounted(signal?: AbortSignal): Promise<boolean>;
  /** The API root, `<A1111_BASE_URL>/sdapi/v1`. */
  readonly apiUrl: string;
  /** Closes idle keep-alive sockets. */
  close(): void;
}

const RETRY_STATUSES = new Set([502, 503, 504]);

function retryableStatus(error: AxiosError): boolean {
  return error.response !== undefined && RETRY_STATUSES.has(error.response.status);
}

/** Retry condition for calls that are safe to repeat even after a connection reset. */
function retryIdempotent(error: AxiosError): boolean {
  if (retryableStatus(error)) return true;
  return !error.response && (isConnectFailure(error.code) || isConnectionReset(error.code));
}

/** Retry condition for txt2img: only when A1111 cannot have started the generation. */
function retryNotStarted(error: AxiosError): boolean {
  if (retryableStatus(error)) return true;
  return !error.response && isConnectFailure(error.code);
}

/**
 * Reads an answer's body into a single buffer: allocated once at its announced length (a large answer
 * is tens of megabytes, and collecting pieces then joining them would hold it twice), with the socket
 * reads already copied freed as it goes (memory.ts).
 */
async function readBody(stream: Readable, length: number | undefined): Promise<Buffer> {
  if (length !== undefined && length > 0) {
    const out = takeBuffer(length);
    const collect = collectWhileReading(length);
    let offset = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      // The HTTP parser stops a body at its Content-Length; this only guards the buffer.
      if (offset + chunk.length > length) throw new Error('the answer is longer than its Content-Length');
      offset += chunk.copy(out, offset);
      collect(offset);
    }
    return offset === length ? out : out.subarray(0, offset);
  }
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/**
 * A failure while reading an answer, in the terms of every other failure: a body cut short fails with
 * Node's own error (ECONNRESET, "aborted"), classified like any reset; one that could not be
 * decompressed is A1111's (or a proxy's) broken answer.
 */
function transportError(error: unknown): unknown {
  if (isAxiosError(error) || !(error instanceof Error)) return error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code?.startsWith('Z_')) {
    return new WorkerError(
      'BACKEND_ERROR',
      `A1111's answer to POST /sdapi/v1/txt2img was compressed and could not be decompressed (${error.message})`,
      { details: { method: 'POST', route: '/txt2img', code }, cause: error },
    );
  }
  return code && (isConnectionReset(code) || isConnectFailure(code)) ? AxiosError.from(error, code) : error;
}

/** The last txt2img attempt's error, and how many attempts were made. */
class Txt2ImgFailure {
  constructor(
    readonly failure: unknown,
    readonly attempts: number,
  ) {}
}

/** Exponential backoff from the base delay, capped, with up to 20 % jitter. */
export function backoffDelay(retryNumber: number, baseMs: number, maxMs: number): number {
  const delay = Math.min(maxMs, baseMs * 2 ** Math.max(0, retryNumber - 1));
  return Math.round(delay * (1 + 0.2 * Math.random()));
}

/**
 * Creates the client. Tests pass a short backoff through the config; production uses the defaults.
 *
 * @example
 * const a1111 = createA1111Client(loadConfig(), log);
 * const models = await a1111.listModels();
 */
export function createA1111Client(config: A1111ClientConfig, log: Logger, backend?: BackendLiveness): A1111Client {
  const apiUrl = `${config.a1111BaseUrl}/sdapi/v1`;
  // Idle sockets are closed before uvicorn's keep-alive timeout (5 s by default) can close them under
  // us: a request written to a socket the server is closing would be reset and look like a crash.
  const httpAgent = new http.Agent({ keepAlive: true, timeout: 4_000 });
  const httpsAgent = new https.Agent({ keepAlive: true, timeout: 4_000 });
  const instance: AxiosInstance = axios.create({
    baseURL: apiUrl,
    timeout: config.requestTimeoutMs,
    httpAgent,
    httpsAgent,
    // No size limits, and -1 (not Infinity) says so: any other value makes axios pipe every body
    // through a counting stream, about 0.1 ms per megabyte-sized answer.
    maxContentLength: -1,
    maxBodyLength: -1,
    // The WebUI gzips bodies over 1000 bytes when asked; on loopback that only burns CPU on both sides
    // for base64 PNGs that barely compress, so the worker asks for the body as is.
    headers: { Accept: 'application/json', 'Accept-Encoding': 'identity' },
    // A1111 does not redirect; following redirects would also make axios keep a copy of each body.
    maxRedirects: 0,
    // Straight to the WebUI: an HTTP(S)_PROXY in the environment (for the WebUI's downloads, say)
    // would otherwise carry every call to 127.0.0.1 through the proxy, unless NO_PROXY names it.
    proxy: false,
    ...(config.a1111Auth ? { auth: config.a1111Auth } : {}),
  });
  // Nothing is worth retrying once the supervised WebUI has exited.
  const living =
    (condition: (error: AxiosError) => boolean) =>
    (error: AxiosError): boolean =>
      (backend?.alive ?? true) && condition(error);
  axiosRetry(instance, {
    retries: config.httpRetries,
    retryCondition: living(retryIdempotent),
    retryDelay: (retryNumber) => backoffDelay(retryNumber, config.retryBaseDelayMs, config.retryMaxDelayMs),
    shouldResetTimeout: true,
    onRetry: (retryNumber, error, requestConfig) => {
      log.debug('retrying A1111 request', {
        method: requestConfig.method?.toUpperCase(),
        route: requestConfig.url,
        retry: retryNumber,
        status: error.response?.status,
        code: error.code,
      });
    },
  });

  // When A1111 last answered a request successfully, and the model list it last gave: a readiness probe
  // within a second of that is answered from here. Any failure forgets both.
  let lastOkAt = 0;
  let lastModels: SdModel[] | null = null;
  const FRESH_MS = 1_000;

  async function call<S extends z.ZodType>(
    schema: S,
    target: A1111Call,
    options: AxiosRequestConfig & { 'axios-retry'?: IAxiosRetryConfig } = {},
  ): Promise<z.infer<S>> {
    try {
      const response = await instance.request({ method: target.method, url: target.route, ...options });
      const parsed = schema.parse(response.data);
      lastOkAt = Date.now();
      return parsed;
    } catch (error) {
      lastOkAt = 0;
      lastModels = null;
      throw afterExit(classifyA1111Error(error, target), target);
    }
  }

  const txt2imgUrl = `${apiUrl}/txt2img`;
  const txt2imgHeaders: Record<string, string> = {
    'Content-Type': 'application/json',
    Accept: 'application/json',
    'Accept-Encoding': 'identity',
    ...(config.a1111Auth
      ? {
          Authorization: `Basic ${Buffer.from(`${config.a1111Auth.username}:${config.a1111Auth.password}`).toString('base64')}`,
        }
      : {}),
  };

  /**
   * POST /txt2img (post-stream.ts) with the policy axios-retry applies to it: 502/503/504 and refused
   * connections are tried again with the same backoff, never a reset (A1111 may have been generating).
   * Resolves with the bytes of a 2xx answer; rejects with the last attempt's error and the attempts made.
   */
  async function postTxt2Img(request: Txt2ImgRequest, signal?: AbortSignal): Promise<Buffer> {
    const body = JSON.stringify(request);
    const agent = txt2imgUrl.startsWith('https:') ? httpsAgent : httpAgent;
    for (let attempt = 1; ; attempt++) {
      let failure: unknown;
      try {
        const answer = await postForStream({
          url: txt2imgUrl,
          body,
          headers: txt2imgHeaders,
          agent,
          timeoutMs: config.requestTimeoutMs,
          ...(signal ? { signal } : {}),
        });
        if (answer.status >= 200 && answer.status < 300) return await readBody(answer.body, answer.length);
        // An error answer is classified by its status even when its body cannot be read in full.
        const bytes = await readBody(answer.body, undefined).catch((error: unknown) => {
          if (error instanceof CanceledError) throw error;
          return Buffer.alloc(0);
        });
        failure = statusError(txt2imgUrl, answer, bytes);
      } catch (error) {
        failure = transportError(error);
      }
      const retrying =
        isAxiosError(failure) && attempt <= config.httpRetries && retryNotStarted(failure) && (backend?.alive ?? true)
          ? failure
          : null;
      if (!retrying) throw new Txt2ImgFailure(failure, attempt);
      log.debug('retrying A1111 request', {
        method: 'POST',
        route: '/txt2img',
        retry: attempt,
        status: retrying.response?.status,
        code: retrying.code,
      });
      await sleep(
        backoffDelay(attempt, config.retryBaseDelayMs, config.retryMaxDelayMs),
        undefined,
        signal ? { signal } : {},
      ).catch(() => {
        throw new Txt2ImgFailure(new CanceledError(), attempt);
      });
    }
  }

  /** A connection failure once the supervised WebUI has exited is that exit, said plainly. */
  function afterExit(error: WorkerError, target: A1111Call): WorkerError {
    const exit = backend?.describeExit();
    if (!exit || !['BACKEND_UNAVAILABLE', 'BACKEND_CRASHED', 'BACKEND_TIMEOUT'].includes(error.code)) return error;
    const code = target.route === '/sd-models' && target.method === 'GET' ? 'BACKEND_UNAVAILABLE' : 'BACKEND_CRASHED';
    return new WorkerError(code, `${exit.split('\n')[0]} (during ${target.method} /sdapi/v1${target.route})`, {
      details: { ...error.details, backendExited: true, backendLog: exit },
      cause: error,
    });
  }

  const get = (route: string, signal?: AbortSignal) => ({
    target: { method: 'GET', route },
    options: signal ? { signal } : {},
  });

  return {
    apiUrl,
    async probe(signal) {
      if (lastModels && Date.now() - lastOkAt < FRESH_MS && (backend?.alive ?? true)) return lastModels;
      const { target, options } = get('/sd-models', signal);
      lastModels = await call(SdModelListSchema, target, {
        ...options,
        timeout: config.readyProbeTimeoutMs,
        'axios-retry': { retries: 0 },
      });
      return lastModels;
    },
    async listModels(signal) {
      const { target, options } = get('/sd-models', signal);
      lastModels = await call(SdModelListSchema, target, options);
      return lastModels;
    },
    listSamplers(signal) {
      const { target, options } = get('/samplers', signal);
      return call(SamplerListSchema, target, options);
    },
    async listSchedulers(signal) {
      const { target, options } = get('/schedulers', signal);
      try {
        return await call(SchedulerListSchema, target, options);
      } catch (error) {
        // A1111 before 1.9.1 has no /schedulers; there the scheduler is part of the sampler name.
        if ((error as { code?: string }).code === 'BACKEND_ROUTE_MISSING') return null;
        throw error;
      }
    },
    getOptions(signal) {
      const { target, options } = get('/options', signal);
      return call(OptionsSchema, target, options);
    },
    getProgress(signal) {
      const { target, options } = get('/progress', signal);
      return call(ProgressSchema, target, { ...options, params: { skip_current_image: true } });
    },
    async txt2img(request, signal) {
      const target = { method: 'POST', route: '/txt2img' };
      try {
        const raw = await postTxt2Img(request, signal);
        const { value, lazyImages } = parseTxt2ImgBytes(raw);
        // With lazily decoded images, the images were checked while locating them; the rest is checked
        // here without reading them, and the object itself is kept (zod would copy it, decoding them).
        let parsed: Txt2ImgResponse;
        if (lazyImages) {
          Txt2ImgRestSchema.parse({ parameters: value['parameters'], info: value['info'] });
          parsed = value as Txt2ImgResponse;
        } else parsed = Txt2ImgResponseSchema.parse(value);
        // The answer's bytes are posted to RunPod as they are (raw-body.ts).
        rememberRawBody(parsed, raw);
        lastOkAt = Date.now();
        return parsed;
      } catch (error) {
        lastOkAt = 0;
        lastModels = null;
        const classified =
          error instanceof Txt2ImgFailure
            ? classifyA1111Error(error.failure, target, error.attempts)
            : classifyA1111Error(error, target);
        throw afterExit(classified, target);
      }
    },
    async interrupt(signal) {
      await instance
        .post('/interrupt', undefined, signal ? { signal } : {})
        .catch((error: unknown) => Promise.reject(classifyA1111Error(error, { method: 'POST', route: '/interrupt' })));
    },
    async refreshCheckpoints(signal) {
      lastModels = null; // the list is about to change
      await instance
        .post('/refresh-checkpoints', undefined, signal ? { signal } : {})
        .catch((error: unknown) =>
          Promise.reject(classifyA1111Error(error, { method: 'POST', route: '/refresh-checkpoints' })),
        );
    },
    async isTxt2ImgRouteMounted(signal) {
      try {
        await instance.get('/txt2img', { ...(signal ? { signal } : {}), 'axios-retry': { retries: 0 } });
        return true;
      } catch (error) {
        if (isAxiosError(error) && error.response?.status === 405) return true;
        const classified = classifyA1111Error(error, { method: 'GET', route: '/txt2img' });
        if (classified.code === 'BACKEND_ROUTE_MISSING') return false;
        throw classified;
      }
    },
    close() {
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}
