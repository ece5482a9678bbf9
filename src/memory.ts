/**
 * Giving back the memory of A1111 answers at the moments the worker knows it is garbage.
 *
 * An answer arrives as socket reads of 64 KB, each copied into the answer's buffer and garbage from
 * then on; V8 collects them only when its own heuristics say so, typically after the whole answer (and
 * sometimes the next one) has piled up. So:
 * - while a large answer is read, a young-generation collection every few megabytes (a fraction of a
 *   millisecond each) frees the reads already copied, keeping the pile to a few megabytes;
 * - after a large result is posted, a full collection lets the next job start from the same footprint;
 * - after any other result of several reads is posted, a young-generation collection frees its reads
 *   while the worker waits for its next job. Left to V8, a dozen answers' reads piled up until its
 *   next full collection freed them at once, glibc then gave the memory back to the system, and the
 *   next answers' reads faulted it in again page by page: 0.6 ms more per megabyte-sized answer, for
 *   a dozen jobs at a time. Freed one answer at a time, the reads stay within the 2 MB the image lets
 *   glibc keep (`MALLOC_TOP_PAD_` in the Dockerfile) and the next answer reuses them.
 * V8's `gc` is enabled at run time for this; without it all three are no-ops.
 */

import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Answers and results at least this large get the treatment above. */
export const LARGE_RESULT_BYTES = 8 * 1024 * 1024;
/** Results at least this large were read from A1111 in more than one socket read. */
export const CHUNKED_RESULT_BYTES = 64 * 1024;
/** While a large answer is read, a young-generation collection after every this many bytes. */
export const READ_COLLECT_EVERY_BYTES = 4 * 1024 * 1024;

export type Collector = (options?: { type: 'minor' | 'major' }) => void;
let collect: Collector | null | undefined;

function collector(): Collector | null {
  if (collect !== undefined) return collect;
  try {
    v8.setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as Collector;
  } catch {
    collect = null;
  }
  return collect;
}

/**
 * Frees what a posted result left behind: at once (a full collection) for a large one; for one of
 * several reads, a young-generation collection once the work queued now has run (the next job-take
 * goes out first); nothing for a small one.
 */
export function afterResult(bytes: number, gc: Collector | null = collector()): void {
  if (!gc || bytes < CHUNKED_RESULT_BYTES) return;
  if (bytes >= LARGE_RESULT_BYTES) gc();
  else setImmediate(() => gc({ type: 'minor' }));
}

/**
 * For a body of `length` bytes being read: call `read(n)` with the bytes read so far after each chunk,
 * and it collects the young generation every READ_COLLECT_EVERY_BYTES of a large body. Small bodies
 * get a no-op.
 */
export function collectWhileReading(length: number, gc: Collector | null = collector()): (bytesRead: number) => void {
  if (length < LARGE_RESULT_BYTES || !gc) return () => undefined;
  let next = READ_COLLECT_EVERY_BYTES;
  return (bytesRead) => {
    if (bytesRead < next) return;
    next = bytesRead + READ_COLLECT_EVERY_BYTES;
    gc({ type: 'minor' });
  };
}
