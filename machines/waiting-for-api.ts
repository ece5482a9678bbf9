/**
 * The rules of waiting for A1111, shared by the job machine's `waitingForApi` state and the start-up
 * readiness machine: both probe GET /sdapi/v1/sd-models every poll interval, write a line every Nth
 * failed probe, fail BACKEND_UNAVAILABLE at the readiness deadline, and stop at once for a probe failure
 * that waiting cannot cure. Pure: plain functions the machines' own actions and guards call.
 */
import { ERROR_CODES, type ErrorCode, type JobFailure, type JobPhase, toJobFailure } from '../src/errors.js';
import type { JobSettings } from './job.types.js';

/** The limits the wait runs under (a subset of a job's settings). */
export type WaitSettings = Pick<JobSettings, 'readyTimeoutMs' | 'readyPollIntervalMs' | 'readyLogEvery'>;

export const WAITING_FOR_API_DESCRIPTION =
  'Probes GET /sdapi/v1/sd-models every poll interval until it answers 200 with a JSON array; past the readiness deadline the job fails BACKEND_UNAVAILABLE, and a refusal (401) or a supervised WebUI that exited fails it at once.';

/** setTimeout's ceiling (about 24.8 days): a delay this long stands for "never" (the guard is false anyway). */
export const NEVER_MS = 2_147_483_647;

/** A failure with the code table's retry flag. */
export function failure(
  code: ErrorCode,
  message: string,
  phase: JobPhase | null,
  details: Record<string, unknown>,
): JobFailure {
  return { code, message, phase, retryable: ERROR_CODES[code].retryable, details };
}

/** The code of a classified error an actor failed with. */
export function codeOf(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null ? (error as { code?: string }).code : undefined;
}

/**
 * A probe failure waiting cannot cure: A1111 refused the worker's credentials (--api-auth), or the
 * supervised WebUI is gone for good (the crash policy gave up restarting it). A WebUI being restarted
 * is waited for like any other.
 */
export function isFatalProbeError(error: unknown): boolean {
  const details = (error as { details?: Record<string, unknown> } | null)?.details;
  return codeOf(error) === 'BACKEND_REJECTED' || details?.['backendGone'] === true;
}

/** A failed probe counted: the count, the failure, and whether this one is worth a log line. */
export function countedProbeFailure(
  failures: number,
  error: unknown,
  settings: WaitSettings,
): { failures: number; lastError: JobFailure; logIt: boolean } {
  const count = failures + 1;
  return {
    failures: count,
    lastError: toJobFailure(error, 'waitingForApi'),
    logIt: count % settings.readyLogEvery === 0,
  };
}

/** The failure at the readiness deadline. */
export function readinessTimeout(
  settings: WaitSettings,
  probeFailures: number,
  lastProbeError: JobFailure | null,
): JobFailure {
  return failure(
    'BACKEND_UNAVAILABLE',
    `A1111 did not become ready within ${settings.readyTimeoutMs} ms (${probeFailures} failed probe(s)${
      lastProbeError ? `; last: ${lastProbeError.message}` : ''
    })`,
    'waitingForApi',
    { readyTimeoutMs: settings.readyTimeoutMs, probeFailures },
  );
}
