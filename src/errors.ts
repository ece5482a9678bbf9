/**
 * The worker's failure vocabulary: one table of codes, one error class, one normalizer.
 *
 * Every failure a job can end with carries a code from {@link ERROR_CODES}. The table says whether a
 * client may retry the same job and whether the failure means the worker itself is broken ("crash
 * class"), which the RunPod runtime turns into `stopPod` so the platform replaces the worker.
 */

export const ERROR_CODES = {
  /** The job input breaks a rule (wrong type, out of range, unknown sampler). Fix the input. */
  INVALID_INPUT: { retryable: false, crashClass: false },
  /** A1111 did not answer in time (readiness deadline, connection refused after all retries, 502/503/504). */
  BACKEND_UNAVAILABLE: { retryable: true, crashClass: true },
  /** A1111 refused the request as invalid (422, an application 404 such as "Sampler not found", other 4xx). */
  BACKEND_REJECTED: { retryable: false, crashClass: false },
  /** A1111's API routes stayed unmounted (404 {"detail":"Not Found"}) after every recovery attempt. */
  BACKEND_ROUTE_MISSING: { retryable: true, crashClass: false },
  /** A1111 failed while processing (500 with an exception body, or a response of the wrong shape). */
  BACKEND_ERROR: { retryable: false, crashClass: false },
  /** The job's deadline or a request timeout passed; A1111 was told to interrupt. */
  BACKEND_TIMEOUT: { retryable: true, crashClass: false },
  /** A1111 dropped the connection in the middle of a request: the process died or was killed. */
  BACKEND_CRASHED: { retryable: true, crashClass: true },
  /** The checkpoint the job names is not one A1111 lists. */
  MODEL_NOT_FOUND: { retryable: false, crashClass: false },
  /** A checkpoint could not be downloaded (network, status, checksum, size, disk). */
  MODEL_DOWNLOAD_FAILED: { retryable: true, crashClass: false },
  /** An image URL of the job could not be fetched (its server failed, answered an error, or too slowly). */
  IMAGE_FETCH_FAILED: { retryable: true, crashClass: false },
  /** The result would pass RESULT_INLINE_MAX_BYTES and no bucket is set (or the job asked for inline). */
  RESULT_TOO_LARGE: { retryable: false, crashClass: false },
  /** Uploading the job's images to the bucket failed (after the SDK's retries); its objects were deleted. */
  UPLOAD_FAILED: { retryable: true, crashClass: false },
  /** Re-encoding the job's images in the format it asked for failed. */
  ENCODE_FAILED: { retryable: false, crashClass: false },
  /** RunPod refused the job's result (a 4xx from job-done, most often a result over its size limit). */
  RESULT_REJECTED: { retryable: false, crashClass: false },
  /** The job was cancelled; A1111 was told to interrupt. */
  CANCELLED: { retryable: false, crashClass: false },
  /** A defect in the worker itself. */
  INTERNAL: { retryable: false, crashClass: false },
} as const satisfies Record<string, { retryable: boolean; crashClass: boolean }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** The lifecycle phase a failure happened in; the job machine's state names. */
export type JobPhase =
  | 'booting'
  | 'fetchingImages'
  | 'waitingForApi'
  | 'verifyingModels'
  | 'postDownloadStabilizing'
  | 'ready'
  | 'inferring'
  | 'recovering'
  | 'delivering'
  | 'interrupting';

/** The JSON a failed job reports (as a string under `error`, the way RunPod expects it). */
export interface JobFailure {
  code: ErrorCode;
  message: string;
  phase: JobPhase | null;
  retryable: boolean;
  details: Record<string, unknown>;
}

export interface WorkerErrorOptions {
  details?: Record<string, unknown>;
  cause?: unknown;
  phase?: JobPhase;
}

/**
 * The single error type the worker throws on purpose.
 *
 * @example
 * throw new WorkerError('INVALID_INPUT', 'steps: 0 is not allowed: must be a whole number ≥ 1', {
 *   details: { field: 'steps', value: 0, rule: 'whole number ≥ 1' },
 * });
 */
export class WorkerError extends Error {
  override readonly name = 'WorkerError';
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;
  readonly phase: JobPhase | undefined;

  constructor(code: ErrorCode, message: string, options: WorkerErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
    this.phase = options.phase;
  }

  get retryable(): boolean {
    return ERROR_CODES[this.code].retryable;
  }

  /** The failure body for a given phase (the error's own phase wins when it has one). */
  toFailure(phase: JobPhase | null = null): JobFailure {
    return {
      code: this.code,
      message: this.message,
      phase: this.phase ?? phase,
      retryable: this.retryable,
      details: this.details,
    };
  }
}

/** Duck-typed check that survives errors crossing module copies or structured clones (journals). */
export function isWorkerError(value: unknown): value is WorkerError {
  return (
    value instanceof WorkerError ||
    (typeof value === 'object' &&
      value !== null &&
      (value as { name?: unknown }).name === 'WorkerError' &&
      typeof (value as { code?: unknown }).code === 'string' &&
      (value as { code: string }).code in ERROR_CODES)
  );
}

/**
 * Normalizes anything thrown into a {@link JobFailure}. Unclassified errors become INTERNAL with their
 * message kept, so a defect is reported rather than swallowed.
 */
export function toJobFailure(value: unknown, phase: JobPhase | null): JobFailure {
  if (value instanceof WorkerError) return value.toFailure(phase);
  if (isWorkerError(value)) {
    return new WorkerError(value.code, value.message, {
      details: value.details ?? {},
      ...(value.phase ? { phase: value.phase } : {}),
    }).toFailure(phase);
  }
  const message = value instanceof Error ? value.message : String(value);
  return {
    code: 'INTERNAL',
    message: `internal error: ${message}`,
    phase,
    retryable: false,
    details: value instanceof Error ? { name: value.name } : {},
  };
}

/** A mistake in how the command was called (a flag, a file); reported without a stack. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Flattens an error for a log line (winston drops nested Error objects). */
export function errorFields(value: unknown): Record<string, unknown> {
  if (isWorkerError(value)) return { errorCode: value.code, errorMessage: value.message };
  if (value instanceof Error) return { errorName: value.name, errorMessage: value.message };
  return { errorMessage: String(value) };
}
