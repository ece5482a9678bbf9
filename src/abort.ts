/**
 * Stopping waiting for something shared when one job no longer wants it: the job's wait ends with a
 * CANCELLED failure at once, while the work itself goes on for whoever else waits for it (a catalog
 * load, a download, a generation A1111 has queued).
 */
import { WorkerError } from './errors.js';

/**
 * `promise`, unless `signal` aborts first: then a rejection with WorkerError CANCELLED and `message`
 * (and `onAbort` is called once). Nothing is done to what `promise` stands for.
 *
 * @example
 * const lists = await stopWaitingOnAbort(catalog.load(), signal, 'the job stopped waiting');
 */
export function stopWaitingOnAbort<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  message: string,
  onAbort?: () => void,
): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) {
    onAbort?.();
    return Promise.reject(new WorkerError('CANCELLED', message));
  }
  return new Promise<T>((resolve, reject) => {
    const abort = () => {
      onAbort?.();
      reject(new WorkerError('CANCELLED', message));
    };
    signal.addEventListener('abort', abort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}
