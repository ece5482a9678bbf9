/**
 * The A1111 API client: one axios instance per worker with keep-alive sockets and axios-retry, and the
 * operations' POSTs (txt2img, on every job's path, among them) on node:http over the same sockets
 * (direct-post.ts), their answers checked per operation (answers.ts). Both
 * follow one retry policy (retry-policy.ts). Every failure leaves this module as a classified
 * {@link WorkerError}.
 */
import http from 'node:http';
import https from 'node:https';
import axios, { type AxiosInstance, type AxiosRequestConfig, isAxiosError } from 'axios';
import axiosRetry, { type IAxiosRetryConfig } from 'axios-retry';
import type { z } from 'zod';
import type { A1111Settings } from '../config/index.js';
import { WorkerError } from '../errors.js';
import type { Logger } from '../log/index.js';
import type { AnswerTap } from './answer-tap.js';
import { readAnswer } from './answers.js';
import { type A1111Call, classifyA1111Error, pathOf } from './classify.js';
import { DirectPostFailure, postWithRetries } from './direct-post.js';
import { type Operation, TXT2IMG } from './operations.js';
import type { BackendLiveness } from './process.js';
import type { A1111Request, Txt2ImgRequest } from './request-fields.js';
import { axiosRetryOptions, retryPolicy } from './retry-policy.js';
import {
  ControlNetModelListSchema,
  type Embeddings,
  EmbeddingsSchema,
  type Lora,
  LoraListSchema,
  type Options,
  OptionsSchema,
  type Progress,
  ProgressSchema,
  type Sampler,
  SamplerListSchema,
  type Scheduler,
  SchedulerListSchema,
  type ScriptsList,
  ScriptsListSchema,
  type SdModel,
  SdModelListSchema,
  type SdVae,
  SdVaeListSchema,
  type Txt2ImgResponse,
  type Upscaler,
  UpscalerListSchema,
} from './schemas.js';

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
  listUpscalers(signal?: AbortSignal): Promise<Upscaler[]>;
  listLoras(signal?: AbortSignal): Promise<Lora[]>;
  listVaes(signal?: AbortSignal): Promise<SdVae[]>;
  listScripts(signal?: AbortSignal): Promise<ScriptsList>;
  listEmbeddings(signal?: AbortSignal): Promise<Embeddings>;
  /** GET /controlnet/model_list: the ControlNet extension's models, its folders rescanned first with `update`. */
  listControlNetModels(update: boolean, signal?: AbortSignal): Promise<string[]>;
  /** POST /refresh-loras, /refresh-vae or /refresh-embeddings: A1111 scans its folder again. */
  refreshNetworks(kind: 'loras' | 'vae' | 'embeddings', signal?: AbortSignal): Promise<void>;
  /** Sends a request of any operation of the allow-list; resolves with its checked answer (answers.ts). */
  send(operation: Operation, request: A1111Request, signal?: AbortSignal, tap?: AnswerTap): Promise<unknown>;
  txt2img(request: Txt2ImgRequest, signal?: AbortSignal): Promise<Txt2ImgResponse>;
  interrupt(signal?: AbortSignal): Promise<void>;
  refreshCheckpoints(signal?: AbortSignal): Promise<void>;
  /** Whether POST /txt2img is routed: a GET there answers 405 when mounted, 404 when not. */
  isTxt2ImgRouteMounted(signal?: AbortSignal): Promise<boolean>;
  /** Whether an operation's route is mounted (a GET on a POST route answers 405 when it is). */
  isRouteMounted(operation: Operation, signal?: AbortSignal): Promise<boolean>;
  /** The API root, `<A1111_BASE_URL>/sdapi/v1`. */
  readonly apiUrl: string;
  /** Closes idle keep-alive sockets. */
  close(): void;
}

/**
 * Creates the client. Tests pass a short backoff through the config; production uses the defaults.
 *
 * @example
 * const a1111 = createA1111Client(loadConfig().a1111, log);
 * const models = await a1111.listModels();
 */
export function createA1111Client(config: A1111Settings, log: Logger, backend?: BackendLiveness): A1111Client {
  const apiUrl = `${config.baseUrl}/sdapi/v1`;
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
    ...(config.auth ? { auth: config.auth } : {}),
  });
  const policy = retryPolicy(config, log, backend);
  axiosRetry(instance, axiosRetryOptions(policy));

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

  const postHeaders: Record<string, string> = {
    'Content-Type': 'application/json',
    Accept: 'application/json',
    'Accept-Encoding': 'identity',
    ...(config.auth
      ? {
          Authorization: `Basic ${Buffer.from(`${config.auth.username}:${config.auth.password}`).toString('base64')}`,
        }
      : {}),
  };

  /** A connection failure once the supervised WebUI has exited is that exit, said plainly. */
  function afterExit(error: WorkerError, target: A1111Call): WorkerError {
    const exit = backend?.describeExit();
    if (!exit || !['BACKEND_UNAVAILABLE', 'BACKEND_CRASHED', 'BACKEND_TIMEOUT'].includes(error.code)) return error;
    const code = target.route === '/sd-models' && target.method === 'GET' ? 'BACKEND_UNAVAILABLE' : 'BACKEND_CRASHED';
    return new WorkerError(code, `${exit.split('\n')[0]} (during ${target.method} ${pathOf(target)})`, {
      details: {
        ...error.details,
        backendExited: true,
        ...(backend?.isGone ? { backendGone: true } : {}),
        backendLog: exit,
      },
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
    async send(operation, request, signal, tap) {
      const route = operation.path.startsWith('/sdapi/v1/') ? operation.path.slice('/sdapi/v1'.length) : operation.path;
      const target: A1111Call = { method: operation.method, route, path: operation.path };
      try {
        let raw: Buffer;
        if (operation.method === 'GET') {
          const params =
            operation.name === 'progress' && typeof request['skip_current_image'] === 'boolean'
              ? { skip_current_image: request['skip_current_image'] }
              : {};
          const response = await instance.get<ArrayBuffer>(`${config.baseUrl}${operation.path}`, {
            params,
            responseType: 'arraybuffer',
            ...(signal ? { signal } : {}),
          });
          raw = Buffer.from(response.data);
        } else {
          const url = `${config.baseUrl}${operation.path}`;
          raw = await postWithRetries({
            url,
            route,
            body: JSON.stringify(request),
            headers: postHeaders,
            agent: url.startsWith('https:') ? httpsAgent : httpAgent,
            timeoutMs: config.requestTimeoutMs,
            policy,
            ...(signal ? { signal } : {}),
            ...(tap ? { tap } : {}),
          });
        }
        const answer = readAnswer(operation, request, raw);
        if (operation.name.startsWith('refresh-')) lastModels = null; // a list may have changed
        lastOkAt = Date.now();
        return answer;
      } catch (error) {
        lastOkAt = 0;
        lastModels = null;
        const classified =
          error instanceof DirectPostFailure
            ? classifyA1111Error(error.failure, target, error.attempts)
            : classifyA1111Error(error, target);
        throw afterExit(classified, target);
      }
    },
    async txt2img(request, signal) {
      return (await this.send(TXT2IMG, request, signal)) as Txt2ImgResponse;
    },
    listUpscalers(signal) {
      const { target, options } = get('/upscalers', signal);
      return call(UpscalerListSchema, target, options);
    },
    listLoras(signal) {
      const { target, options } = get('/loras', signal);
      return call(LoraListSchema, target, options);
    },
    listVaes(signal) {
      const { target, options } = get('/sd-vae', signal);
      return call(SdVaeListSchema, target, options);
    },
    listEmbeddings(signal) {
      const { target, options } = get('/embeddings', signal);
      return call(EmbeddingsSchema, target, options);
    },
    async listControlNetModels(update, signal) {
      const path = '/controlnet/model_list';
      const answer = await call(
        ControlNetModelListSchema,
        { method: 'GET', route: path, path },
        { url: `${config.baseUrl}${path}`, params: { update }, ...(signal ? { signal } : {}) },
      );
      return answer.model_list;
    },
    listScripts(signal) {
      const { target, options } = get('/scripts', signal);
      return call(ScriptsListSchema, target, options);
    },
    async refreshNetworks(kind, signal) {
      const route = `/refresh-${kind}`;
      await instance
        .post(route, undefined, signal ? { signal } : {})
        .catch((error: unknown) => Promise.reject(classifyA1111Error(error, { method: 'POST', route })));
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
    isTxt2ImgRouteMounted(signal) {
      return this.isRouteMounted(TXT2IMG, signal);
    },
    async isRouteMounted(operation, signal) {
      const route = operation.path.startsWith('/sdapi/v1/') ? operation.path.slice('/sdapi/v1'.length) : operation.path;
      try {
        await instance.get(`${config.baseUrl}${operation.path}`, {
          ...(signal ? { signal } : {}),
          'axios-retry': { retries: 0 },
        });
        return true;
      } catch (error) {
        if (isAxiosError(error) && error.response?.status === 405) return true;
        const classified = classifyA1111Error(error, { method: 'GET', route, path: operation.path });
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
