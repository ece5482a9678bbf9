/**
 * A1111's txt2img answer as the bytes it sent, kept beside the parsed object so the worker can post
 * the same bytes to RunPod instead of serializing tens of megabytes of base64 again.
 *
 * The parsed object is the key; whatever object is derived from it for a job's output is registered
 * with the same bytes and the extra keys it adds (see `withExtraKeys`).
 *
 * Answers of 64 KB or more are read into buffers that the production job loop gives back once the
 * result is posted (`releaseRawBody`), so the next answer reuses the memory instead of piling up
 * garbage: tens of megabytes per large job, and for small ones the steady growth of external memory
 * that otherwise makes V8 run a full collection every dozen jobs. A buffer carries a generation number: reading an answer through an object
 * whose buffer was given back and reused throws instead of returning another job's bytes.
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
 * `info`), and one a byte longer than the buffer given back would need a second buffer of its size. The
 * pages of the slack are not touched unless an answer needs them.
 */
function withSlack(length: number): number {
  return Math.ceil((length * 1.0625) / 65_536) * 65_536;
}

function generationOf(bytes: Buffer): number {
  return generations.get(bytes.buffer as ArrayBuffer) ?? 0;
}

interface RawBody {
  bytes: Buffer;
  generation: number;
  /** Keys added to the parsed object, serialized after A1111's own keys. */
  extra: Record<string, unknown>;
}

function checkCurrent(raw: { bytes: Buffer; generation: number }): void {
  if (generationOf(raw.bytes) !== raw.generation) {
    throw new Error('an A1111 answer was read after its buffer was given back for reuse');
  }
}

const bodies = new WeakMap<object, RawBody>();

/** Remembers the bytes `parsed` was read from. */
export function rememberRawBody(parsed: object, bytes: Buffer): void {
  bodies.set(parsed, { bytes, generation: generationOf(bytes), extra: {} });
}

/**
 * Gives the answer's buffer back for the next answer. Only for a job whose result was posted and whose
 * output nothing else keeps (the production job loop); reading it afterwards throws.
 */
export function releaseRawBody(value: unknown): void {
  if (value === null || typeof value !== 'object') return;
  const raw = bodies.get(value);
  if (!raw || generationOf(raw.bytes) !== raw.generation) return;
  const backing = raw.bytes.buffer as ArrayBuffer;
  if (backing.byteLength < POOL_MIN_BYTES || pool.includes(backing)) return;
  generations.set(backing, raw.generation + 1); // old views are stale from now on
  if (pool.length >= POOL_SIZE) pool.shift();
  pool.push(backing);
}

/**
 * `{ ...parsed, ...extra }`, still known to come from the same bytes (when `parsed` does).
 *
 * @example
 * const output = withExtraKeys(response, { worker: report });
 */
export function withExtraKeys<T extends object, E extends Record<string, unknown>>(parsed: T, extra: E): T & E {
  // Copies property descriptors, so lazily decoded images stay undecoded.
  const combined = Object.defineProperties({}, Object.getOwnPropertyDescriptors(parsed)) as T & E;
  Object.assign(combined, extra);
  const spans = imageSpans.get(parsed);
  if (spans) imageSpans.set(combined, spans);
  const raw = bodies.get(parsed);
  if (raw) bodies.set(combined, { ...raw, extra: { ...raw.extra, ...extra } });
  return combined;
}

/**
 * The JSON encoding of `value` as a list of buffers: A1111's own bytes where `value` (or an object
 * under one of its keys) came from them, `JSON.stringify` for the rest. Nothing large is copied.
 */
export function encodeJson(value: unknown): Buffer[] {
  if (value === null || typeof value !== 'object') return [Buffer.from(JSON.stringify(value) ?? 'null')];
  const raw = bodies.get(value);
  if (raw) {
    checkCurrent(raw);
    const end = raw.bytes.lastIndexOf(0x7d); // the closing brace of A1111's object
    const keys = Object.entries(raw.extra).filter(([, v]) => v !== undefined);
    if (end > 0 && keys.length === 0) return [raw.bytes];
    if (end > 0) {
      const tail = keys.map(([k, v]) => `,${JSON.stringify(k)}:${JSON.stringify(v)}`).join('');
      return [raw.bytes.subarray(0, end), Buffer.from(`${tail}}`)];
    }
  }
  if (Array.isArray(value)) return [Buffer.from(JSON.stringify(value))];
  const entries = Object.entries(value).filter(([, v]) => v !== undefined);
  const parts: Buffer[] = [Buffer.from('{')];
  entries.forEach(([key, item], index) => {
    parts.push(Buffer.from(`${index > 0 ? ',' : ''}${JSON.stringify(key)}:`), ...encodeJson(item));
  });
  parts.push(Buffer.from('}'));
  return parts;
}

const IMAGES_KEY = Buffer.from('{"images":[');

interface ImageSpans {
  raw: Buffer;
  generation: number;
  spans: [number, number][];
}

const imageSpans = new WeakMap<object, ImageSpans>();

/** Number and total length (base64 characters) of a txt2img answer's images, without decoding them. */
export function imageStats(response: { images: readonly string[] }): { count: number; chars: number } {
  const known = imageSpans.get(response);
  if (known) return { count: known.spans.length, chars: known.spans.reduce((sum, [a, b]) => sum + b - a, 0) };
  return { count: response.images.length, chars: response.images.reduce((sum, image) => sum + image.length, 0) };
}

/** The base64 lengths of an answer's images while they are still undecoded bytes; undefined otherwise. */
export function undecodedImageLengths(response: object): number[] | undefined {
  return imageSpans.get(response)?.spans.map(([start, end]) => end - start);
}

/** Gives `target` the same lazily decoded images as `source` (see parseTxt2ImgBytes). */
function defineLazyImages(target: object, spans: ImageSpans): void {
  let images: string[] | undefined;
  Object.defineProperty(target, 'images', {
    enumerable: true,
    configurable: true,
    get: () => {
      if (!images) {
        checkCurrent({ bytes: spans.raw, generation: spans.generation });
        images = spans.spans.map(([start, end]) => spans.raw.toString('latin1', start, end));
      }
      return images;
    },
  });
  imageSpans.set(target, spans);
}

/**
 * Parses a txt2img answer. FastAPI writes it compactly with `images` first; then the base64 strings
 * (which contain no escapes) are located in the bytes, only the small rest goes through JSON.parse, and
 * `images` is decoded from the bytes when something first reads it (posting the answer to RunPod does
 * not: it sends the bytes). `lazyImages` says whether that happened. Any other layout is parsed the
 * ordinary way.
 */
export function parseTxt2ImgBytes(raw: Buffer): { value: Record<string, unknown>; lazyImages: boolean } {
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
  defineLazyImages(value, { raw, generation: generationOf(raw), spans });
  return { value, lazyImages: true };
}
