/**
 * Uploading a job's images to the bucket, several at a time, and leaving nothing behind when that fails
 * or the job stops.
 */
import type { UploadedImage } from '../../machines/job.types.js';
import { WorkerError } from '../errors.js';
import type { Logger } from '../log/index.js';
import type { ResultBucket } from './bucket.js';

/**
 * Runs `task` for 0..count-1, at most `limit` at once. The first failure stops the ones not started
 * (`onFailure` can stop the running ones), and is the one thrown once every running task has ended.
 */
export async function eachLimited<T>(
  count: number,
  limit: number,
  task: (index: number) => Promise<T>,
  onFailure: (error: unknown) => void = () => undefined,
): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  let first: { error: unknown } | null = null;
  const worker = async () => {
    while (!first && next < count) {
      const index = next++;
      try {
        results[index] = await task(index);
      } catch (error) {
        if (!first) {
          first = { error };
          onFailure(error);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  if (first) throw (first as { error: unknown }).error;
  return results;
}

/** An S3 or network error as a person reads it: its name, message and HTTP status. */
export function describeCause(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { Code?: unknown }).Code ?? (error as { code?: unknown }).code;
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  const name = error.name && error.name !== 'Error' ? error.name : typeof code === 'string' ? code : '';
  return [name, error.message, status ? `(HTTP ${status})` : '']
    .filter(Boolean)
    .join(': ')
    .replace(/: \(HTTP/, ' (HTTP');
}

/**
 * Buffers images are decoded into for their upload, kept from one job to the next: a batch's pictures
 * decoded into fresh buffers would leave several megabytes of garbage per image until V8 collects it,
 * tens of megabytes per job (docs/performance.md).
 */
class DecodeBuffers {
  private readonly kept: Buffer[] = [];

  /** A buffer of at least `bytes`: a kept one when one is large enough. */
  take(bytes: number): Buffer {
    const index = this.kept.findIndex((buffer) => buffer.length >= bytes);
    if (index >= 0) return this.kept.splice(index, 1)[0]!;
    return Buffer.allocUnsafeSlow(bytes);
  }

  /** Keeps a buffer no request uses any more, for the next image. */
  give(buffer: Buffer): void {
    this.kept.push(buffer);
  }

  /**
   * After a job's uploads: at most `count` buffers are kept, none more than twice `bytes` (a batch of
   * much larger pictures does not keep its memory for the life of the worker).
   */
  trim(count: number, bytes: number): void {
    const useful = this.kept.filter((buffer) => buffer.length <= bytes * 2).sort((a, b) => a.length - b.length);
    this.kept.splice(0, this.kept.length, ...useful.slice(0, count));
  }
}

/** The buffers images are decoded into for their uploads, shared by the worker's jobs. */
export const decodeBuffers = new DecodeBuffers();

/**
 * Uploads every image, `concurrency` at a time. On a failure or an abort no further upload starts; once
 * every request already sent has ended (stored or not), the job's objects are deleted, and what its
 * prefix still lists is deleted too, so a failed, cancelled or timed-out job leaves nothing behind.
 */
export async function uploadAll(
  bucket: ResultBucket,
  name: string,
  jobId: string,
  count: number,
  objectOf: (index: number) => { key: string; body: Buffer; contentType: string; done?: () => void },
  concurrency: number,
  signal: AbortSignal,
  log: Logger,
): Promise<UploadedImage[]> {
  const started: string[] = [];
  let stopped = false;
  const stop = () => {
    stopped = true;
  };
  signal.addEventListener('abort', stop, { once: true });
  // Runs after every request has ended; a cancelled job does not wait for it.
  const cleanUp = async (): Promise<{ deleted: number; failed: string[] }> => {
    const first = await bucket.remove(name, started);
    // What the prefix still lists: an object a request stored after all, or one a delete missed.
    const left = await bucket.keysBelow(name, `${jobId}/`).catch(() => first.failed);
    const failed = left.length > 0 ? (await bucket.remove(name, left)).failed : [];
    if (failed.length > 0) log.warn('objects of a failed upload left in the bucket', { bucket: name, keys: failed });
    return { deleted: started.length - failed.length, failed };
  };
  try {
    const stored = await eachLimited(
      count,
      concurrency,
      async (index) => {
        if (stopped) throw signal.reason ?? new Error('the job stopped');
        const object = objectOf(index);
        started.push(object.key);
        try {
          return await bucket.put(name, object);
        } finally {
          // The request has ended: its body's memory may serve the next image.
          object.done?.();
        }
      },
      stop,
    );
    if (!signal.aborted) return stored;
    void cleanUp().catch(() => undefined);
    throw signal.reason;
  } catch (error) {
    if (signal.aborted) {
      void cleanUp().catch(() => undefined);
      throw error;
    }
    const { failed } = await cleanUp();
    throw new WorkerError(
      'UPLOAD_FAILED',
      `uploading the job's images to bucket "${name}" at ${bucket.endpoint} failed: ${describeCause(error)}${failed.length > 0 ? ` (${failed.length} stored object(s) could not be deleted)` : ''}`,
      { cause: error, details: { bucket: name, objects: count, deleted: started.length - failed.length } },
    );
  } finally {
    signal.removeEventListener('abort', stop);
  }
}
