/**
 * Returning the memory of a large result once it is posted.
 *
 * A 25 MB answer arrives as some four hundred socket reads of 64 KB; they are garbage once copied into
 * the answer's buffer, but V8 collects them only when its own heuristics say so, by which time the next
 * large answer may be arriving. After a large result is posted, the worker asks for a collection
 * (through V8's `gc`, enabled at run time), so the next job starts from the same footprint.
 */

import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Results at least this large are followed by a collection. */
export const LARGE_RESULT_BYTES = 8 * 1024 * 1024;

let collect: (() => void) | null | undefined;

function collector(): (() => void) | null {
  if (collect !== undefined) return collect;
  try {
    v8.setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as () => void;
  } catch {
    collect = null;
  }
  return collect;
}

/** Frees what a large, posted result left behind; a no-op for small ones. */
export function afterLargeResult(bytes: number): void {
  if (bytes < LARGE_RESULT_BYTES) return;
  collector()?.();
}
