/**
 * The images of an A1111 answer, read the way delivering needs them: one at a time, decoded straight
 * from the answer's bytes, in the format the bytes say; and the answer with its images replaced.
 */
import { operationOf } from '../a1111/operations.js';
import { lazyStrings, releaseWith } from '../json/source-bytes.js';

/** The images of an answer, decoded one at a time. */
export interface AnswerImages {
  key: 'images' | 'image';
  count: number;
  /** Base64 characters of all of them. */
  chars: number;
  /** The most bytes one of them decodes to. */
  maxBytes: number;
  /** Decodes image `index`, into `into` when it is large enough (a view of it is returned). */
  decode(index: number, into?: Buffer): Buffer;
}

const decodedBytes = (chars: number) => Math.floor((chars * 3) / 4);

/** Base64 text decoded into `into` when it fits, into a buffer of its own otherwise. */
function decodeText(text: string, into?: Buffer): Buffer {
  if (!into || into.length < decodedBytes(text.length)) return Buffer.from(text, 'base64');
  return into.subarray(0, into.write(text, 'base64'));
}

export function answerImages(operation: string, response: unknown): AnswerImages | null {
  const answer = operationOf(operation).answer;
  if (typeof response !== 'object' || response === null) return null;
  if (answer === 'extra-single') {
    const image = (response as { image?: unknown }).image;
    if (typeof image !== 'string') return null;
    return {
      key: 'image',
      count: 1,
      chars: image.length,
      maxBytes: decodedBytes(image.length),
      decode: (_index, into) => decodeText(image, into),
    };
  }
  if (answer !== 'images' && answer !== 'extra-batch') return null;
  const lazy = lazyStrings(response, 'images');
  if (lazy) {
    const { raw, spans } = lazy;
    return {
      key: 'images',
      count: spans.length,
      chars: spans.reduce((sum, [start, end]) => sum + end - start, 0),
      maxBytes: Math.max(0, ...spans.map(([start, end]) => decodedBytes(end - start))),
      decode: (index, into) => decodeBase64Span(raw, spans[index]![0], spans[index]![1], into),
    };
  }
  const images = (response as { images?: unknown }).images;
  if (!Array.isArray(images) || !images.every((image) => typeof image === 'string')) return null;
  return {
    key: 'images',
    count: images.length,
    chars: images.reduce((sum: number, image: string) => sum + image.length, 0),
    maxBytes: Math.max(0, ...images.map((image: string) => decodedBytes(image.length))),
    decode: (index, into) => decodeText(images[index] as string, into),
  };
}

/**
 * Base64 characters decoded at a time: a multiple of 4, so every piece decodes on its own, and small
 * enough for V8's young generation (a string over 128 KB lives in the old one until a full collection,
 * and eight images of a batch would leave 28 MB of such strings per job).
 */
const DECODE_CHARS = 1 << 16;

/**
 * The bytes of the base64 text at `raw[start..end)`, decoded piece by piece into one buffer (`into`
 * when it is large enough), so no string of the whole image is made.
 */
function decodeBase64Span(raw: Buffer, start: number, end: number, into?: Buffer): Buffer {
  let padding = 0;
  while (padding < 2 && end - padding > start && raw[end - 1 - padding] === 0x3d) padding++;
  const length = decodedBytes(end - start) - padding;
  const out = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
  let written = 0;
  for (let at = start; at < end; at += DECODE_CHARS) {
    written += out.write(raw.toString('latin1', at, Math.min(end, at + DECODE_CHARS)), written, 'base64');
  }
  return written === out.length ? out : out.subarray(0, written);
}

/** The format a picture's bytes say it is in (A1111 answers in PNG, JPEG or WebP); PNG when unsure. */
export function formatOf(bytes: Buffer): 'png' | 'jpeg' | 'webp' {
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.toString('latin1', 8, 12) === 'WEBP') return 'webp';
  return 'png';
}

/** A1111's infotext of each image (txt2img and img2img `info.infotexts`), for re-encoded images. */
export function infotexts(response: unknown): string[] {
  const info = (response as { info?: unknown }).info;
  if (typeof info !== 'string') return [];
  try {
    const parsed = JSON.parse(info) as { infotexts?: unknown };
    return Array.isArray(parsed.infotexts)
      ? parsed.infotexts.map((text) => (typeof text === 'string' ? text : ''))
      : [];
  } catch {
    return [];
  }
}

/** `response` with `key` holding `values` (a list, or the single image), the rest of it unchanged. */
export function withImages(response: unknown, key: 'images' | 'image', values: string[]): unknown {
  const descriptors = Object.getOwnPropertyDescriptors(response as object);
  delete descriptors[key];
  const copy = Object.defineProperties({}, descriptors) as Record<string, unknown>;
  copy[key] = key === 'image' ? values[0] : values;
  // The answer's bytes go back to their pool when the copy's result has been posted.
  releaseWith(copy, response as object);
  return copy;
}
