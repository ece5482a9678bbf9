/**
 * Every body the worker sends to RunPod, shaped here and nowhere else.
 *
 * - The final result: `{"output": ...}` on success; on failure `{"error": "<the failure as a JSON
 *   string>"}` (RunPod wants a string: an object under `error` leaves the job COMPLETED without
 *   output, runpod-python#299); `"stopPod": true` when the worker asks to be replaced.
 * - A progress post to job-done: `{"status": "IN_PROGRESS", "output": {...}}`. Progress goes there
 *   only, once per reading, as runpod-python posts it for a handler that is not a generator (its
 *   stream URL serves generators' partial outputs, which this worker has none of).
 * - The failures the runtime itself reports: a handler defect (INTERNAL), a result RunPod refused
 *   (RESULT_REJECTED).
 */
import { ERROR_CODES } from '../errors.js';
import { encodeJson } from '../json/source-bytes.js';
import type { HandlerOutcome, JobFailureBody, ProgressOutput } from './handler.js';

export type ResultBody = { output: unknown; stopPod?: true } | { error: string; stopPod?: true };

/**
 * The job-done body for a finished job; `stopPod` asks RunPod for a fresh worker.
 *
 * @example
 * resultBody({ ok: false, jobId, failure, stats, backend: 'gone' }, { stopPod: true });
 * // { error: '{"code":"BACKEND_UNAVAILABLE",...}', stopPod: true }
 */
export function resultBody(outcome: HandlerOutcome, options: { stopPod: boolean }): ResultBody {
  const body: ResultBody = outcome.ok ? { output: outcome.output } : { error: JSON.stringify(outcome.failure) };
  if (options.stopPod) body.stopPod = true;
  return body;
}

/** A result body as the bytes posted: A1111's own bytes where the output came from them. */
export function encodeResult(body: ResultBody | { error: string }): Buffer[] {
  return encodeJson(body);
}

/** The job-done body of a progress reading. */
export function progressBody(progress: ProgressOutput): string {
  return JSON.stringify({ status: 'IN_PROGRESS', output: progress });
}

function runtimeFailure(
  code: 'INTERNAL' | 'RESULT_REJECTED',
  message: string,
  details: Record<string, unknown>,
): JobFailureBody {
  return { code, message, phase: null, retryable: ERROR_CODES[code].retryable, details };
}

/** A handler that threw instead of reporting an outcome: a defect, answered all the same. */
export function internalFailure(error: unknown, details: Record<string, unknown> = {}): JobFailureBody {
  return runtimeFailure(
    'INTERNAL',
    `internal error: ${error instanceof Error ? error.message : String(error)}`,
    details,
  );
}

/** A result that could not be written as JSON. */
export function unencodableFailure(error: unknown): JobFailureBody {
  return runtimeFailure(
    'INTERNAL',
    `the worker could not encode the job's result: ${error instanceof Error ? error.message : String(error)}`,
    {},
  );
}

/** RunPod refused the result itself (most often over its size limit). */
export function rejectedResultFailure(status: number, bytes: number): JobFailureBody {
  const sizeAdvice =
    status === 400 || status === 413
      ? "; results over RunPod's size limit are refused: lower batch_size, n_iter or the image size"
      : '';
  return runtimeFailure(
    'RESULT_REJECTED',
    `RunPod refused the job's result (${status}) at ${bytes} bytes${sizeAdvice}`,
    { status, bytes },
  );
}

/** The body of a failure the runtime reports itself. */
export function failureBody(failure: JobFailureBody): { error: string } {
  return { error: JSON.stringify(failure) };
}
