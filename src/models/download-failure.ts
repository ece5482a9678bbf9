/** The one error a model download fails with: MODEL_DOWNLOAD_FAILED, `details.reason` saying why. */
import { WorkerError } from '../errors.js';

/**
 * @example
 * throw failed('size', `${file} is larger than MODEL_DOWNLOAD_MAX_BYTES (${max})`, { file, maxBytes: max });
 */
export function failed(
  reason: string,
  message: string,
  details: Record<string, unknown>,
  cause?: unknown,
): WorkerError {
  return new WorkerError('MODEL_DOWNLOAD_FAILED', `model download failed: ${message}`, {
    details: { reason, ...details },
    ...(cause === undefined ? {} : { cause }),
  });
}

export function mismatch(file: string, expected: string, actual: string, onDisk: boolean): WorkerError {
  return failed(
    'checksum',
    onDisk
      ? `${file} is already in MODELS_DIR with sha256 ${actual}, not the expected ${expected}; it was left alone (remove it, or correct model.sha256)`
      : `${file} has sha256 ${actual}, not the expected ${expected}`,
    { file, expected, actual, onDisk },
  );
}
