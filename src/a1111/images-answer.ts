/**
 * Reading an A1111 answer whose first key is `images` (txt2img and img2img) without copying its
 * base64: FastAPI writes such answers compactly with `images` first, so the strings (which contain no
 * escapes) are located in the bytes, only the small rest goes through JSON.parse, and `images` is
 * decoded from the bytes when something first reads it. Posting the answer on to RunPod does not: it
 * sends the bytes (src/json/source-bytes.ts).
 */
import { defineLazyStrings, lazyStringLengths, lazyStrings } from '../json/source-bytes.js';
import { pictureProblemIn, pictureProblemOf } from './picture-check.js';

const IMAGES_KEY = Buffer.from('{"images":[');

/**
 * Parses an answer. `lazyImages` says whether its images were located in the bytes; any other layout
 * is parsed the ordinary way.
 */
export function parseImagesAnswer(raw: Buffer): { value: Record<string, unknown>; lazyImages: boolean } {
  const plain = () => ({ value: JSON.parse(raw.toString('utf8')) as Record<string, unknown>, lazyImages: false });
  if (!raw.subarray(0, IMAGES_KEY.length).equals(IMAGES_KEY)) return plain();
  const spans: [number, number][] = [];
  let pos = IMAGES_KEY.length;
  while (raw[pos] === 0x22) {
    const end = raw.indexOf(0x22, pos + 1);
    if (end < 0 || raw.subarray(pos + 1, end).includes(0x5c)) return plain();
    spans.push([pos + 1, end]);
    pos = end + 1;
    if (raw[pos] !== 0x2c) break;
    pos++;
  }
  if (raw[pos] !== 0x5d) return plain();
  const value = JSON.parse(`{"images":[]${raw.toString('utf8', pos + 1)}`) as Record<string, unknown>;
  defineLazyStrings(value, 'images', raw, spans);
  return { value, lazyImages: true };
}

/** Number and total length (base64 characters) of an answer's images, without decoding them. */
export function imageStats(response: { images: readonly string[] }): { count: number; chars: number } {
  const lengths = lazyStringLengths(response, 'images');
  if (lengths) return { count: lengths.length, chars: lengths.reduce((sum, n) => sum + n, 0) };
  return { count: response.images.length, chars: response.images.reduce((sum, image) => sum + image.length, 0) };
}

/**
 * The first image of an answer that is not a whole picture, as `images[i] is …`; null when every one
 * looks whole (picture-check.ts), without decoding them.
 */
export function badImage(response: { images: readonly string[] }): string | null {
  const lazy = lazyStrings(response, 'images');
  if (lazy) {
    for (const [index, [start, end]] of lazy.spans.entries()) {
      const problem = pictureProblemIn(lazy.raw, start, end);
      if (problem) return `images[${index}] is ${problem}`;
    }
    return null;
  }
  for (const [index, image] of response.images.entries()) {
    const problem = pictureProblemOf(image);
    if (problem) return `images[${index}] is ${problem}`;
  }
  return null;
}
