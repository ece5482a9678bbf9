/**
 * JSON values that remember the bytes they were parsed from, so a large answer can be passed on as
 * those bytes instead of being serialized again (tens of megabytes of base64 for a batch of images).
 *
 * - `rememberSourceBytes(value, bytes)` ties a parsed object to its bytes; `withExtraKeys` derives an
 *   object with more keys that is still tied to them (the keys are serialized after the source's own);
 * - `defineLazyStrings` gives an object a list of strings that stay undecoded bytes until something
 *   reads them (`encodeJson` never does);
 * - `encodeJson` writes a value as buffers, the source bytes themselves where a value has them;
 * - `releaseSourceBytes` gives the bytes back to the buffer pool once nothing needs the value any more;
 *   reading the value afterwards throws rather than returning another answer's bytes.
 */
import { generationOf, giveBack } from './buffer-pool.js';

interface SourceBytes {
  bytes: Buffer;
  generation: number;
  /** Keys added to the parsed object, serialized after its own keys. */
  extra: Record<string, unknown>;
}

interface LazyStrings {
  key: string;
  raw: Buffer;
  generation: number;
  spans: [number, number][];
}

const sources = new WeakMap<object, SourceBytes>();
const lazyLists = new WeakMap<object, LazyStrings>();
/** Values made from another one that no longer use its bytes, but whose release gives them back. */
const releasedWith = new WeakMap<object, object>();

function checkCurrent(bytes: Buffer, generation: number): void {
  if (generationOf(bytes) !== generation) {
    throw new Error('an answer was read after its buffer was given back for reuse');
  }
}

/** Remembers the bytes `parsed` was read from. */
export function rememberSourceBytes(parsed: object, bytes: Buffer): void {
  sources.set(parsed, { bytes, generation: generationOf(bytes), extra: {} });
}

/**
 * Gives a value's source bytes back for the next answer. Only for a value whose result was posted and
 * that nothing else keeps; reading it afterwards throws.
 */
export function releaseSourceBytes(value: unknown): void {
  if (value === null || typeof value !== 'object') return;
  const source = sources.get(value);
  if (source) giveBack(source.bytes, source.generation);
  const original = releasedWith.get(value);
  if (original) releaseSourceBytes(original);
}

/**
 * Ties `derived` (a copy of `original` that does not read its bytes: images replaced by their URLs) to
 * `original`, so that releasing `derived` once its result is posted gives `original`'s bytes back too.
 */
export function releaseWith(derived: object, original: object): void {
  releasedWith.set(derived, original);
}

/**
 * `{ ...parsed, ...extra }`, still known to come from the same bytes (when `parsed` does).
 *
 * @example
 * const output = withExtraKeys(response, { worker: report });
 */
export function withExtraKeys<T extends object, E extends Record<string, unknown>>(parsed: T, extra: E): T & E {
  // Copies property descriptors, so lazily decoded strings stay undecoded.
  const combined = Object.defineProperties({}, Object.getOwnPropertyDescriptors(parsed)) as T & E;
  Object.assign(combined, extra);
  const lazy = lazyLists.get(parsed);
  if (lazy) lazyLists.set(combined, lazy);
  const source = sources.get(parsed);
  if (source) sources.set(combined, { ...source, extra: { ...source.extra, ...extra } });
  const original = releasedWith.get(parsed);
  if (original) releasedWith.set(combined, original);
  return combined;
}

/**
 * The JSON encoding of `value` as a list of buffers: the source bytes where `value` (or an object
 * under one of its keys) came from them, `JSON.stringify` for the rest. Nothing large is copied.
 */
export function encodeJson(value: unknown): Buffer[] {
  if (value === null || typeof value !== 'object') return [Buffer.from(JSON.stringify(value) ?? 'null')];
  const source = sources.get(value);
  if (source) {
    checkCurrent(source.bytes, source.generation);
    const end = source.bytes.lastIndexOf(0x7d); // the closing brace of the source object
    const keys = Object.entries(source.extra).filter(([, v]) => v !== undefined);
    if (end > 0 && keys.length === 0) return [source.bytes];
    if (end > 0) {
      // An empty source object (`{}`, or `{ }`) takes the first key without a comma.
      let before = end - 1;
      while (before > 0 && isJsonSpace(source.bytes[before]!)) before--;
      const empty = source.bytes[before] === 0x7b;
      const tail = keys
        .map(([k, v], i) => `${empty && i === 0 ? '' : ','}${JSON.stringify(k)}:${JSON.stringify(v)}`)
        .join('');
      return [source.bytes.subarray(0, end), Buffer.from(`${tail}}`)];
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

/**
 * Gives `target[key]` a list of strings that are the byte ranges `spans` of `raw` (Latin-1, as base64
 * is), decoded when something first reads it.
 */
export function defineLazyStrings(target: object, key: string, raw: Buffer, spans: [number, number][]): void {
  const lazy: LazyStrings = { key, raw, generation: generationOf(raw), spans };
  let strings: string[] | undefined;
  Object.defineProperty(target, key, {
    enumerable: true,
    configurable: true,
    get: () => {
      if (!strings) {
        checkCurrent(lazy.raw, lazy.generation);
        strings = lazy.spans.map(([start, end]) => lazy.raw.toString('latin1', start, end));
      }
      return strings;
    },
  });
  lazyLists.set(target, lazy);
}

/** The bytes and spans of `value[key]`'s strings while they are still undecoded; undefined otherwise. */
export function lazyStrings(
  value: object,
  key: string,
): { raw: Buffer; spans: readonly [number, number][] } | undefined {
  const lazy = lazyLists.get(value);
  if (!lazy || lazy.key !== key) return undefined;
  checkCurrent(lazy.raw, lazy.generation);
  return { raw: lazy.raw, spans: lazy.spans };
}

/** The length of the bytes `value` was parsed from, its extra keys not counted; undefined when it has none. */
export function sourceByteLength(value: unknown): number | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  return sources.get(value)?.bytes.length;
}

/** The lengths of `value[key]`'s strings while they are still undecoded bytes; undefined otherwise. */
export function lazyStringLengths(value: object, key: string): number[] | undefined {
  const lazy = lazyLists.get(value);
  return lazy && lazy.key === key ? lazy.spans.map(([start, end]) => end - start) : undefined;
}

function isJsonSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}
