/**
 * Turns whatever an A1111 call threw into a {@link WorkerError} with a code from the table in
 * `src/errors.ts`. This is the one place that knows what A1111's statuses and bodies mean:
 *
 * | what came back                                   | code                  |
 * |--------------------------------------------------|-----------------------|
 * | 404 `{"detail":"Not Found"}` (routes not mounted) | BACKEND_ROUTE_MISSING |
 * | 404 with A1111's `{"error": ...}` body           | BACKEND_REJECTED      |
 * | 422, 401, other 4xx                              | BACKEND_REJECTED      |
 * | 502/503/504 after every retry                    | BACKEND_UNAVAILABLE   |
 * | 500 and other 5xx                                | BACKEND_ERROR         |
 * | connection refused / unreachable                 | BACKEND_UNAVAILABLE   |
 * | connection reset during the request              | BACKEND_CRASHED       |
 * | request timeout                                  | BACKEND_TIMEOUT       |
 * | 200 with a body of the wrong shape               | BACKEND_ERROR         |
 */
import { isAxiosError } from 'axios';
import { z } from 'zod';
import { isWorkerError, WorkerError } from '../errors.js';
import { A1111ErrorSchema, FastApiErrorSchema } from './schemas.js';

/** Which call failed, for messages: `POST /txt2img` (under /sdapi/v1), or a full `path` outside it. */
export interface A1111Call {
  method: string;
  route: string;
  path?: string;
}

/** The full path of a call, for messages. */
export function pathOf(call: A1111Call): string {
  return call.path ?? `/sdapi/v1${call.route}`;
}

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE']);
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
const TIMEOUT_CODES = new Set(['ECONNABORTED', 'ETIMEDOUT']);

/** True for a transport failure that happened before A1111 could have processed the request. */
export function isConnectFailure(code: string | undefined): boolean {
  return code !== undefined && UNREACHABLE_CODES.has(code);
}

/** True for a connection A1111 dropped after the request was sent. */
export function isConnectionReset(code: string | undefined): boolean {
  return code !== undefined && RESET_CODES.has(code);
}

function bodyExcerpt(body: unknown): unknown {
  if (typeof body === 'string') return body.length > 2000 ? `${body.slice(0, 2000)}…` : body;
  return body;
}

function attemptsOf(error: unknown): number {
  const config = isAxiosError(error) ? (error.config as Record<string, unknown> | undefined) : undefined;
  const state = config?.['axios-retry'] as { retryCount?: number } | undefined;
  return (state?.retryCount ?? 0) + 1;
}

function describe422(detail: unknown): { text: string; validation: unknown[] } {
  const parsed = FastApiErrorSchema.safeParse({ detail });
  if (parsed.success && Array.isArray(parsed.data.detail)) {
    const validation = parsed.data.detail.map((item) => ({
      field: item.loc.filter((part) => part !== 'body').join('.') || '(body)',
      msg: item.msg,
      type: item.type,
    }));
    return { text: validation.map((v) => `${v.field}: ${v.msg}`).join('; '), validation };
  }
  return { text: typeof detail === 'string' ? detail : JSON.stringify(detail), validation: [] };
}

/** A body read as bytes (txt2img answers are) is decoded, and parsed when it is JSON. */
function decodeBody(body: unknown): unknown {
  if (!Buffer.isBuffer(body) && !(body instanceof ArrayBuffer)) return body;
  const text = Buffer.from(body as Buffer).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function classifyResponse(status: number, raw: unknown, call: A1111Call, attempts: number): WorkerError {
  const body = decodeBody(raw);
  const where = `${call.method} ${pathOf(call)}`;
  const a1111 = A1111ErrorSchema.safeParse(body);
  const details: Record<string, unknown> = { status, method: call.method, route: call.route, attempts };

  if (a1111.success) {
    const { error, detail, errors } = a1111.data;
    const reason = [detail, errors].filter((part) => typeof part === 'string' && part !== '').join(': ');
    Object.assign(details, { a1111Error: error, detail: bodyExcerpt(detail), errors: bodyExcerpt(errors) });
    if (status >= 500) {
      const oom = /out of memory/i.test(reason);
      if (oom) details['outOfMemory'] = true;
      const hint = oom ? ' (the GPU ran out of memory: lower width, height or batch_size)' : '';
      return new WorkerError(
        'BACKEND_ERROR',
        `A1111 failed on ${where}: ${error}: ${reason || '(no message)'}${hint}`,
        {
          details,
        },
      );
    }
    if (status === 401 || status === 403) {
      return new WorkerError(
        'BACKEND_REJECTED',
        `A1111 refused the credentials on ${where} (${status} ${reason}): set A1111_API_AUTH to the user:password given to --api-auth`,
        { details },
      );
    }
    return new WorkerError('BACKEND_REJECTED', `A1111 rejected ${where} with ${status}: ${reason || error}`, {
      details,
    });
  }

  const fastApi = FastApiErrorSchema.safeParse(body);
  if (status === 404 && (!fastApi.success || fastApi.data.detail === 'Not Found')) {
    details['body'] = bodyExcerpt(body);
    // A route outside /sdapi/ belongs to an extension (ControlNet's /controlnet/...).
    const why = pathOf(call).startsWith('/sdapi/')
      ? 'its API routes are not mounted (the WebUI is starting or reloading, or runs without --api)'
      : 'the extension that serves it is not installed, or the WebUI is reloading';
    return new WorkerError('BACKEND_ROUTE_MISSING', `A1111 answered 404 Not Found for ${where}: ${why}`, { details });
  }
  if (status === 422) {
    const { text, validation } = describe422(fastApi.success ? fastApi.data.detail : body);
    details['validation'] = validation;
    return new WorkerError('BACKEND_REJECTED', `A1111 rejected ${where} as invalid (422): ${text}`, { details });
  }
  details['body'] = bodyExcerpt(body);
  if (status === 502 || status === 503 || status === 504) {
    return new WorkerError(
      'BACKEND_UNAVAILABLE',
      `A1111 answered ${status} to ${where} on each of ${attempts} attempt(s)`,
      { details },
    );
  }
  if (status >= 500) {
    return new WorkerError('BACKEND_ERROR', `A1111 failed on ${where} with ${status}`, { details });
  }
  const text = fastApi.success && typeof fastApi.data.detail === 'string' ? `: ${fastApi.data.detail}` : '';
  return new WorkerError('BACKEND_REJECTED', `A1111 rejected ${where} with ${status}${text}`, { details });
}

/**
 * Classifies a failed A1111 call.
 *
 * @example
 * try { await http.post('/txt2img', body); }
 * catch (err) { throw classifyA1111Error(err, { method: 'POST', route: '/txt2img' }); }
 */
export function classifyA1111Error(error: unknown, call: A1111Call, attempts = attemptsOf(error)): WorkerError {
  if (isWorkerError(error)) return error as WorkerError;
  const where = `${call.method} ${pathOf(call)}`;

  if (error instanceof SyntaxError) {
    return new WorkerError('BACKEND_ERROR', `A1111 answered ${where} with a body that is not JSON (${error.message})`, {
      details: { method: call.method, route: call.route },
      cause: error,
    });
  }
  if (error instanceof z.ZodError) {
    return new WorkerError('BACKEND_ERROR', `A1111 answered ${where} with a body of an unexpected shape`, {
      details: { method: call.method, route: call.route, issues: error.issues.slice(0, 5) },
      cause: error,
    });
  }
  if (!isAxiosError(error)) {
    const message = error instanceof Error ? error.message : String(error);
    return new WorkerError('INTERNAL', `calling ${where} failed: ${message}`, { cause: error });
  }

  if (error.response) return classifyResponse(error.response.status, error.response.data, call, attempts);

  const code = error.code;
  const details = { method: call.method, route: call.route, code, attempts };
  if (code === 'ERR_CANCELED') {
    return new WorkerError('CANCELLED', `${where} was aborted`, { details, cause: error });
  }
  if (code !== undefined && TIMEOUT_CODES.has(code)) {
    return new WorkerError('BACKEND_TIMEOUT', `A1111 did not answer ${where} in time (${error.message})`, {
      details,
      cause: error,
    });
  }
  if (isConnectionReset(code) || /socket hang up/i.test(error.message)) {
    return new WorkerError(
      'BACKEND_CRASHED',
      `A1111 dropped the connection during ${where} (${code ?? error.message}): the WebUI process died or was killed`,
      { details, cause: error },
    );
  }
  return new WorkerError(
    'BACKEND_UNAVAILABLE',
    `A1111 is not reachable for ${where} (${code ?? error.message}) after ${attempts} attempt(s)`,
    { details, cause: error },
  );
}
