/**
 * Buffers for large answers, given back once their job's result is posted so the next answer reuses
 * the memory instead of piling up garbage: tens of megabytes per large job, and for small ones the
 * steady growth of external memory that otherwise makes V8 run a full collection every dozen jobs.
 *
 * A buffer carries a generation number: whoever keeps a view of a buffer that was given back and reused
 * can tell (`generationOf` no longer matches) instead of reading another job's bytes.
 */

const POOL_MIN_BYTES = 1 << 16;
const POOL_SIZE = 2;
const pool: ArrayBuffer[] = [];
const generations = new WeakMap<ArrayBuffer, number>();

/** A buffer for an answer of `length` bytes: a given-back one when it fits, a new one otherwise. */
export function takeBuffer(length: number): Buffer {
  if (length >= POOL_MIN_BYTES) {
    const index = pool.findIndex((b) => b.byteLength >= length && b.byteLength <= length * 2);
    if (index >= 0) {
      const [backing] = pool.splice(index, 1);
      generations.set(backing!, (generations.get(backing!) ?? 0) + 1);
      return Buffer.from(backing!, 0, length);
    }
  }
  const fresh = Buffer.allocUnsafeSlow(length >= POOL_MIN_BYTES ? withSlack(length) : length).subarray(0, length);
  generations.set(fresh.buffer as ArrayBuffer, 0);
  return fresh;
}

/**
 * Room for the next answers of about the same size: they differ by a few bytes (the seed's digits in
 * A1111's `info`), and one a byte longer than the buffer given back would need a second buffer of its
 * size. The pages of the slack are not touched unless an answer needs them.
 */
function withSlack(length: number): number {
  return Math.ceil((length * 1.0625) / 65_536) * 65_536;
}

/** The generation of the buffer `bytes` is a view of. */
export function generationOf(bytes: Buffer): number {
  return generations.get(bytes.buffer as ArrayBuffer) ?? 0;
}

/**
 * Gives the buffer behind `bytes` back for reuse, if it is still in `generation` and large enough to
 * be worth pooling; every view of it is stale from now on.
 */
export function giveBack(bytes: Buffer, generation: number): void {
  if (generationOf(bytes) !== generation) return;
  const backing = bytes.buffer as ArrayBuffer;
  if (backing.byteLength < POOL_MIN_BYTES || pool.includes(backing)) return;
  generations.set(backing, generation + 1);
  if (pool.length >= POOL_SIZE) pool.shift();
  pool.push(backing);
}
