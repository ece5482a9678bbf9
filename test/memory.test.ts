import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import {
  afterResult,
  CHUNKED_RESULT_BYTES,
  collectWhileReading,
  LARGE_RESULT_BYTES,
  READ_COLLECT_EVERY_BYTES,
} from '../src/memory.js';

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

describe('collections after a result is posted', () => {
  /** The collections asked for after a result of `bytes`: at once, and once queued work has run. */
  async function collectionsAfter(bytes: number): Promise<{ atOnce: string[]; later: string[] }> {
    const asked: string[] = [];
    afterResult(bytes, (options) => asked.push(options?.type ?? 'full'));
    const atOnce = [...asked];
    await nextTurn();
    return { atOnce, later: asked.slice(atOnce.length) };
  }

  it('collect everything at once after a large result', async () => {
    expect(await collectionsAfter(LARGE_RESULT_BYTES)).toEqual({ atOnce: ['full'], later: [] });
  });

  it('collect the young generation after a result read in several socket reads, once queued work has run', async () => {
    expect(await collectionsAfter(CHUNKED_RESULT_BYTES)).toEqual({ atOnce: [], later: ['minor'] });
    expect(await collectionsAfter(900_000)).toEqual({ atOnce: [], later: ['minor'] });
  });

  it('leave results of one read alone', async () => {
    expect(await collectionsAfter(CHUNKED_RESULT_BYTES - 1)).toEqual({ atOnce: [], later: [] });
    expect(await collectionsAfter(2_000)).toEqual({ atOnce: [], later: [] });
  });

  it('are a no-op where V8 will not hand out its collector', () => {
    expect(() => afterResult(LARGE_RESULT_BYTES, null)).not.toThrow();
  });
});
