/**
 * When a call to A1111 is tried again, and how long the worker waits first: one policy, used by axios
 * (through axios-retry) and by the direct POST transport (direct-post.ts).
 *
 * - 502/503/504 and connection failures that happen before A1111 could process the request (refused,
 *   unreachable) are retried, for every method, generation POSTs included: against the local API they
 *   mean the request was not processed.
 * - A connection reset is retried for idempotent calls only: a reset generation means A1111 died while
 *   generating, which is BACKEND_CRASHED, not something to send again.
 * - Timeouts are never retried, and nothing is retried once the supervised WebUI has exited.
 * - The waits grow exponentially from the base delay to the ceiling, with up to 20 % jitter.
 */
import type { AxiosError } from 'axios';
import type { IAxiosRetryConfig } from 'axios-retry';
import type { A1111Settings } from '../config/index.js';
import type { Logger } from '../log/index.js';
import { isConnectFailure, isConnectionReset } from './classify.js';
import type { BackendLiveness } from './process.js';

const RETRY_STATUSES = new Set([502, 503, 504]);

/** Whether a call may be sent twice: a generation may not once A1111 could have started it. */
export type CallKind = 'idempotent' | 'generation';

export interface RetryPolicy {
  readonly retries: number;
  /** Whether the failure of a call of this kind is worth another try. */
  shouldRetry(error: AxiosError, kind: CallKind): boolean;
  /** The wait before retry number `retryNumber` (1 for the first). */
  delayMs(retryNumber: number): number;
  /** The debug line every retry writes. */
  logRetry(call: { method: string | undefined; route: string | undefined }, retry: number, error: AxiosError): void;
}

/** Exponential backoff from the base delay, capped, with up to 20 % jitter. */
export function backoffDelay(retryNumber: number, baseMs: number, maxMs: number): number {
  const delay = Math.min(maxMs, baseMs * 2 ** Math.max(0, retryNumber - 1));
  return Math.round(delay * (1 + 0.2 * Math.random()));
}

export function retryPolicy(
  settings: Pick<A1111Settings, 'httpRetries' | 'retryBaseDelayMs' | 'retryMaxDelayMs'>,
  log: Logger,
  backend?: BackendLiveness,
): RetryPolicy {
  return {
    retries: settings.httpRetries,
    shouldRetry(error, kind) {
      if (!(backend?.alive ?? true)) return false;
      if (error.response !== undefined) return RETRY_STATUSES.has(error.response.status);
      return isConnectFailure(error.code) || (kind === 'idempotent' && isConnectionReset(error.code));
    },
    delayMs: (retryNumber) => backoffDelay(retryNumber, settings.retryBaseDelayMs, settings.retryMaxDelayMs),
    logRetry(call, retry, error) {
      log.debug('retrying A1111 request', {
        method: call.method?.toUpperCase(),
        route: call.route,
        retry,
        status: error.response?.status,
        code: error.code,
      });
    },
  };
}

/** The policy as axios-retry takes it, for the calls axios makes (all of them idempotent). */
export function axiosRetryOptions(policy: RetryPolicy): IAxiosRetryConfig {
  return {
    retries: policy.retries,
    retryCondition: (error) => policy.shouldRetry(error, 'idempotent'),
    retryDelay: (retryNumber) => policy.delayMs(retryNumber),
    shouldResetTimeout: true,
    onRetry: (retryNumber, error, config) =>
      policy.logRetry({ method: config.method, route: config.url }, retryNumber, error),
  };
}
