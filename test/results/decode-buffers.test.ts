import { describe, expect, it } from 'vitest';
import { decodeBuffers } from '../../src/results/upload.js';

describe('the buffers images are decoded into', () => {
  it('are reused when large enough, and a job of much smaller pictures does not keep the large ones', () => {
    const large = decodeBuffers.take(4_000_000);
    decodeBuffers.give(large);
    expect(decodeBuffers.take(3_000_000)).toBe(large);
    decodeBuffers.give(large);

    // After a job of 100 kB pictures, one at a time: the 4 MB buffer is let go.
    decodeBuffers.trim(1, 100_000);
    const small = decodeBuffers.take(100_000);
    expect(small).not.toBe(large);
    expect(small.length).toBe(100_000);
    decodeBuffers.give(small);
    decodeBuffers.trim(1, 100_000);
    expect(decodeBuffers.take(90_000)).toBe(small);
  });
});
