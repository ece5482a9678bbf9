import { describe, expect, it } from 'vitest';
import { restAfterPrefix } from '../../src/json/prefix.js';

const text = (parts: Buffer[] | null) => parts?.map((part) => part.toString()).join('|') ?? null;

describe('restAfterPrefix', () => {
  const answer = Buffer.from('{"images":["aGk="],"info":"{}"}');
  const body = [
    Buffer.from('{'),
    Buffer.from('"output":'),
    answer.subarray(0, answer.length - 1),
    Buffer.from(',"worker":{}}'),
    Buffer.from('}'),
  ];

  it('gives what follows the written bytes, across parts and chunks of any size', () => {
    const written = [Buffer.from('{"output":'), answer.subarray(0, 5), answer.subarray(5, 20)];
    expect(text(restAfterPrefix(body, written))).toBe(`${answer.subarray(20, answer.length - 1)}|,"worker":{}}|}`);
    expect(text(restAfterPrefix(body, [Buffer.from('{"output":')]))).toBe(
      `${answer.subarray(0, answer.length - 1)}|,"worker":{}}|}`,
    );
    expect(text(restAfterPrefix(body, []))).toBe(text(body));
  });

  it('is null when the body begins otherwise, or is shorter than what was written', () => {
    expect(restAfterPrefix(body, [Buffer.from('{"error":')])).toBeNull();
    expect(restAfterPrefix(body, [Buffer.from('{"output":'), Buffer.from('{"images":["aGX')])).toBeNull();
    expect(restAfterPrefix([Buffer.from('{"output":{}')], [Buffer.from('{"output":{}}')])).toBeNull();
  });

  it('matches views of the same memory without reading them, and the same bytes elsewhere by content', () => {
    const copy = Buffer.from(answer.subarray(0, 12));
    expect(text(restAfterPrefix(body, [Buffer.from('{"output":'), copy]))).toBe(
      `${answer.subarray(12, answer.length - 1)}|,"worker":{}}|}`,
    );
  });
});
