import { describe, expect, it } from 'vitest';
import { collectWhileReading, LARGE_RESULT_BYTES, READ_COLLECT_EVERY_BYTES } from '../src/memory.js';

/** Feeds `length` bytes in 64 KB reads; returns the kinds of collection asked for. */
function read(length: number): string[] {
  const asked: string[] = [];
  const progress = collectWhileReading(length, (options) => asked.push(options?.type ?? 'full'));
  for (let offset = 0; offset < length; ) {
    offset = Math.min(length, offset + 65_536);
    progress(offset);
  }
  return asked;
}

describe('collections while a large answer is read', () => {
  it('ask for a young-generation collection every few megabytes of a large answer', () => {
    const length = 27 * 1024 * 1024;
    expect(read(length)).toEqual(Array(Math.floor(length / READ_COLLECT_EVERY_BYTES)).fill('minor'));
  });

  it('leave small answers alone', () => {
    expect(read(LARGE_RESULT_BYTES - 1)).toEqual([]);
    expect(read(900_000)).toEqual([]);
  });

  it('are a no-op where V8 will not hand out its collector', () => {
    const progress = collectWhileReading(LARGE_RESULT_BYTES * 4, null);
    expect(() => progress(LARGE_RESULT_BYTES * 4)).not.toThrow();
  });
});
