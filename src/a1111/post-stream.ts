/**
 * One POST whose answer is read as a stream, on node:http: the txt2img call's transport.
 *
 * axios serves every other A1111 call. txt2img is the one on every job's path, and axios's request
 * pipeline (merging configs, interceptors, header objects, a chain of promises) cost about 0.15 ms of
 * it on a warm worker, most of what the worker added to a small job besides the job machine
 * (docs/performance.md). The failures come out as axios's own error types with the codes axios gives
 * them, so `classifyA1111Error` and the retry policy treat them exactly like any other call's.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { pipeline, type Readable } from 'node:stream';
import zlib from 'node:zlib';
import { AxiosError, AxiosHeaders, CanceledError, type InternalAxiosRequestConfig } from 'axios';

export interface StreamPostOptions {
  url: string;
  body: string;
  headers: Record<string, string>;
  agent: http.Agent | https.Agent;
  /** Like axios's `timeout`: the socket may stay silent this long (0 = no limit). */
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface StreamAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The answer's body, decompressed if the server compressed it although it was asked not to. */
  body: Readable;
  /** Its length in bytes when it is known before reading (an uncompressed body with Content-Length). */
  length: number | undefined;
}

/**
 * A decompressor for a body compressed although the request asked for none (a proxy may), as lenient
 * as axios's: gzip and zlib-wrapped deflate, a truncated end flushed rather than refused. Null for a
 * body sent as is, or one that cannot carry content (204, 304, a HEAD).
 */
function decompressorFor(response: IncomingMessage): zlib.Unzip | zlib.BrotliDecompress | null {
  const encoding = String(response.headers['content-encoding'] ?? 'identity').toLowerCase();
  if (response.statusCode === 204 || response.statusCode === 304 || response.headers['content-length'] === '0') {
    return null;
  }
  const lenient = { flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH };
  if (encoding === 'gzip' || encoding === 'x-gzip' || encoding === 'deflate') return zlib.createUnzip(lenient);
  if (encoding === 'br') {
    return zlib.createBrotliDecompress({
      flush: zlib.constants.BROTLI_OPERATION_FLUSH,
      finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH,
    });
  }
  return null;
}

/** What axios's errors carry as their config: enough for messages and `isAxiosError`. */
function errorConfig(url: string, timeoutMs?: number): InternalAxiosRequestConfig {
  return {
    method: 'post',
    url,
    headers: new AxiosHeaders(),
    ...(timeoutMs !== undefined ? { timeout: timeoutMs } : {}),
  };
}

/** An answer of another status than 2xx, its body read, as the AxiosError axios would have rejected it with. */
export function statusError(url: string, answer: StreamAnswer, body: Buffer): AxiosError {
  const config = errorConfig(url);
  return new AxiosError(
    `Request failed with status code ${answer.status}`,
    answer.status >= 500 ? AxiosError.ERR_BAD_RESPONSE : AxiosError.ERR_BAD_REQUEST,
    config,
    undefined,
    { status: answer.status, statusText: '', headers: answer.headers as Record<string, string>, data: body, config },
  );
}

/**
 * Sends the POST and resolves with the answer once its headers are in, whatever its status.
 * Rejects with a `CanceledError` (code ERR_CANCELED) when `signal` aborts before then, an `AxiosError`
 * with code ECONNABORTED when the socket stays silent past the timeout, and an `AxiosError` carrying
 * the system error's code (ECONNREFUSED, ECONNRESET…) when the connection fails.
 */
export function postForStream(options: StreamPostOptions): Promise<StreamAnswer> {
  return new Promise<StreamAnswer>((resolve, reject) => {
    const { signal } = options;
    if (signal?.aborted) {
      reject(new CanceledError(undefined, errorConfig(options.url, options.timeoutMs)));
      return;
    }
    const send = options.url.startsWith('https:') ? https.request : http.request;
    const request = send(options.url, {
      method: 'POST',
      agent: options.agent,
      headers: { ...options.headers, 'Content-Length': Buffer.byteLength(options.body) },
    });
    let settled = false;
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      reject(error);
    };
    const onAbort = () => {
      fail(new CanceledError(undefined, errorConfig(options.url, options.timeoutMs), request));
      request.destroy();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    request.on('error', (error: NodeJS.ErrnoException) =>
      fail(AxiosError.from(error, error.code, errorConfig(options.url, options.timeoutMs), request)),
    );
    // Once the answer has come, the same silence stops its body's read.
    let answer: IncomingMessage | undefined;
    if (options.timeoutMs > 0) {
      request.setTimeout(options.timeoutMs, () => {
        const error = new AxiosError(
          `timeout of ${options.timeoutMs}ms exceeded`,
          AxiosError.ECONNABORTED,
          errorConfig(options.url, options.timeoutMs),
          request,
        );
        if (answer) answer.destroy(error);
        else fail(error);
        request.destroy();
      });
    }
    request.on('response', (response: IncomingMessage) => {
      if (settled) {
        response.destroy();
        return;
      }
      settled = true;
      answer = response;
      // Whoever reads the body sees its errors; this keeps one nobody reads from taking the process down.
      response.on('error', () => undefined);
      // From here on the caller reads the body, and an abort or a silent socket stops that read.
      signal?.removeEventListener('abort', onAbort);
      const stopReading = () =>
        response.destroy(new CanceledError(undefined, errorConfig(options.url, options.timeoutMs), request));
      signal?.addEventListener('abort', stopReading, { once: true });
      response.once('close', () => signal?.removeEventListener('abort', stopReading));
      const inflate = decompressorFor(response);
      const declared = Number(response.headers['content-length']);
      resolve({
        status: response.statusCode ?? 0,
        headers: response.headers,
        body: inflate ? pipeline(response, inflate, () => undefined) : response,
        length: !inflate && Number.isSafeInteger(declared) && declared >= 0 ? declared : undefined,
      });
    });
    request.end(options.body);
  });
}
