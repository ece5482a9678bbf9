import { describe, expect, it } from 'vitest';
import { imageStats, parseImagesAnswer } from '../../src/a1111/images-answer.js';
import { summarizePayloads } from '../../src/journal/payloads.js';
import { takeBuffer } from '../../src/json/buffer-pool.js';
import {
  encodeJson,
  releaseSourceBytes,
  releaseWith,
  rememberSourceBytes,
  withExtraKeys,
} from '../../src/json/source-bytes.js';

const image = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 256)).toString('base64');
const answer = {
  images: [image, `${image}AB==`],
  parameters: { prompt: 'un phare à l’aube — 灯台', steps: 20 },
  info: JSON.stringify({ prompt: 'un phare à l’aube — 灯台', all_seeds: [1, 2] }),
};

describe('txt2img answers as bytes', () => {
  it('parse to exactly what JSON.parse gives, non-ASCII text included', () => {
    const bytes = Buffer.from(JSON.stringify(answer));
    const { value, lazyImages } = parseImagesAnswer(bytes);
    expect(lazyImages).toBe(true);
    expect(imageStats(value as typeof answer)).toEqual({ count: 2, chars: image.length * 2 + 4 });
    expect(value).toEqual(JSON.parse(bytes.toString('utf8')));
    expect(parseImagesAnswer(Buffer.from(JSON.stringify({ ...answer, images: [] }))).value).toEqual({
      ...answer,
      images: [],
    });
  });

  it('fall back to JSON.parse for any other layout', () => {
    for (const text of [
      JSON.stringify(answer, null, 1),
      JSON.stringify({ info: 'x', images: [image] }),
      '{"images":["a\\"b"],"info":""}',
    ]) {
      expect(parseImagesAnswer(Buffer.from(text))).toEqual({ value: JSON.parse(text), lazyImages: false });
    }
  });

  it('are posted as the same bytes, with the worker’s keys appended, and decode to the same object', () => {
    const bytes = Buffer.from(JSON.stringify(answer));
    const parsed = parseImagesAnswer(bytes).value as typeof answer;
    rememberSourceBytes(parsed, bytes);
    const output = withExtraKeys(parsed, { worker: { timings_ms: { total: 5 } } });
    const body = { output, stopPod: true };

    const parts = encodeJson(body);

    expect(parts.some((part) => part.buffer === bytes.buffer)).toBe(true); // A1111's bytes, not a copy
    expect(Object.getOwnPropertyDescriptor(output, 'images')?.get).toBeDefined(); // still not decoded
    expect(JSON.parse(Buffer.concat(parts).toString('utf8'))).toEqual(JSON.parse(JSON.stringify(body)));
  });

  it('take the worker’s keys on an empty object answer too, as valid JSON', () => {
    for (const raw of ['{}', '{ }', '{\n}']) {
      const bytes = Buffer.from(raw);
      const parsed = JSON.parse(raw) as Record<string, unknown>;
      rememberSourceBytes(parsed, bytes);
      const output = withExtraKeys(parsed, { worker: { notes: [] } });

      expect(JSON.parse(Buffer.concat(encodeJson({ output })).toString()), raw).toEqual({
        output: { worker: { notes: [] } },
      });
    }
  });

  it('encode objects of unknown origin like JSON.stringify', () => {
    const value = { error: 'x', nested: { a: [1, 'b', null], skipped: undefined }, n: 1.5 };
    expect(Buffer.concat(encodeJson(value)).toString()).toBe(JSON.stringify(value));
  });
});

describe('answers summarized for the inspector and journals', () => {
  function countingReads(value: Record<string, unknown>) {
    const original = Object.getOwnPropertyDescriptor(value, 'images')!.get!;
    let reads = 0;
    Object.defineProperty(value, 'images', {
      enumerable: true,
      configurable: true,
      get: () => {
        reads++;
        return original();
      },
    });
    return () => reads;
  }

  it('describe undecoded images by length without decoding them, and hash them only when asked', () => {
    const { value } = parseImagesAnswer(Buffer.from(JSON.stringify(answer)));
    const reads = countingReads(value);

    const cheap = summarizePayloads({ output: value }, { hash: false }) as {
      output: { images: string[]; info: string };
    };

    expect(reads()).toBe(0);
    expect(cheap.output.images).toEqual([`<base64 ${image.length} chars>`, `<base64 ${image.length + 4} chars>`]);
    expect(cheap.output.info).toBe(answer.info);
    const hashed = summarizePayloads({ output: value }) as { output: { images: string[] } };
    expect(reads()).toBe(1);
    expect(hashed.output.images[0]).toMatch(/^<base64 3000 bytes sha256:[0-9a-f]{64}>$/);
  });
});

describe('answer buffers given back for reuse', () => {
  it('serve the next answer of a similar size, and refuse to be read through the old answer', () => {
    const text = JSON.stringify({
      images: [Buffer.alloc(1_500_000, 7).toString('base64')],
      parameters: {},
      info: '{}',
    });
    const first = takeBuffer(Buffer.byteLength(text));
    first.write(text);
    const { value } = parseImagesAnswer(first);
    rememberSourceBytes(value, first);
    const output = withExtraKeys(value, { worker: {} });

    releaseSourceBytes(output);
    const second = takeBuffer(Buffer.byteLength(text));

    expect(second.buffer).toBe(first.buffer);
    expect(() => output['images']).toThrow('read after its buffer was given back');
    expect(() => encodeJson({ output })).toThrow('read after its buffer was given back');
    expect(takeBuffer(Buffer.byteLength(text)).buffer).not.toBe(first.buffer); // it is in use again
  });

  it('are given back through a copy whose images were replaced, once that copy is released', () => {
    const text = JSON.stringify({
      images: [Buffer.alloc(1_400_000, 9).toString('base64')],
      parameters: {},
      info: '{}',
    });
    const first = takeBuffer(Buffer.byteLength(text));
    first.write(text);
    const { value } = parseImagesAnswer(first);
    rememberSourceBytes(value, first);
    const uploaded = { ...value, images: ['https://bucket/job/image-0.png'] };
    releaseWith(uploaded, value);
    const output = withExtraKeys(uploaded, { worker: {} });

    expect(Buffer.concat(encodeJson(output)).toString()).toBe(
      '{"images":["https://bucket/job/image-0.png"],"parameters":{},"info":"{}","worker":{}}',
    );
    releaseSourceBytes(output);

    expect(takeBuffer(Buffer.byteLength(text)).buffer).toBe(first.buffer);
  });

  it('serve a small image’s answer too, so small jobs do not grow external memory', () => {
    const first = takeBuffer(900_000);
    const { value } = parseImagesAnswer(Buffer.from('{"images":[],"parameters":{},"info":""}'));
    rememberSourceBytes(value, first);
    releaseSourceBytes(value);
    expect(takeBuffer(880_000).buffer).toBe(first.buffer);
  });

  it('serve the next answer a few bytes longer (another seed’s digits) without a second buffer', () => {
    const first = takeBuffer(2_000_000);
    expect(first.length).toBe(2_000_000);
    const { value } = parseImagesAnswer(Buffer.from('{"images":[],"parameters":{},"info":""}'));
    rememberSourceBytes(value, first);
    releaseSourceBytes(value);
    const longer = takeBuffer(2_000_003);
    expect(longer.buffer).toBe(first.buffer);
    expect(longer.length).toBe(2_000_003);
  });

  it('keep answers under 64 KB out of the pool', () => {
    const small = takeBuffer(60_000);
    const { value } = parseImagesAnswer(Buffer.from('{"images":[],"parameters":{},"info":""}'));
    rememberSourceBytes(value, small);
    releaseSourceBytes(value);
    expect(takeBuffer(60_000).buffer).not.toBe(small.buffer);
  });
});
