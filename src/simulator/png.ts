/**
 * Deterministic images as real PNG files: an RGB picture derived only from (seed, width, height), with
 * A1111's `parameters` text chunk holding the infotext, as PIL writes it. pngjs encodes and decodes the
 * pixels; it neither writes nor reads text chunks, so those are spliced in and read out here.
 */
import { crc32 } from 'node:zlib';
import { PNG } from 'pngjs';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

function isLatin1(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0xff) return false;
  return true;
}

/** A text chunk: tEXt when the text is Latin-1, iTXt (UTF-8) otherwise, as PIL's PngInfo.add_text does. */
function textChunk(keyword: string, text: string): Buffer {
  if (isLatin1(text))
    return chunk('tEXt', Buffer.concat([Buffer.from(`${keyword}\0`, 'latin1'), Buffer.from(text, 'latin1')]));
  const header = Buffer.from(`${keyword}\0\0\0\0\0`, 'latin1');
  return chunk('iTXt', Buffer.concat([header, Buffer.from(text, 'utf8')]));
}

/** Encodes 8-bit RGB pixels (row-major, 3 bytes each) as a PNG with the given text chunks after IHDR. */
export function encodePng(width: number, height: number, rgb: Buffer, text: Record<string, string> = {}): Buffer {
  const png = PNG.sync.write({ width, height, data: rgb } as PNG, {
    colorType: 2,
    inputColorType: 2,
    inputHasAlpha: false,
    filterType: 0,
    deflateLevel: 6,
  });
  const texts = Object.entries(text).map(([keyword, value]) => textChunk(keyword, value));
  if (texts.length === 0) return png;
  // The signature (8 bytes) and IHDR (25 bytes) come first; the text chunks go right after, as PIL puts them.
  const afterHeader = SIGNATURE.length + 25;
  return Buffer.concat([png.subarray(0, afterHeader), ...texts, png.subarray(afterHeader)]);
}

/** mulberry32: a small, fast, seedable PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/**
 * The picture for a seed: a smooth colour field chosen by the seed with fine grain on top, so that PNG
 * sizes resemble real renders (a 512×512 image is a few hundred KB). Same inputs, same bytes.
 */
export function renderPixels(seed: number, width: number, height: number): Buffer {
  const next = prng(Math.floor(seed) ^ Math.floor(seed / 2 ** 32) ^ (width * 7919) ^ (height * 104729));
  const [r0, g0, b0, r1, g1, b1] = [next(), next(), next(), next(), next(), next()].map((v) => v & 0xff) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const rgb = Buffer.alloc(width * height * 3);
  let offset = 0;
  for (let y = 0; y < height; y++) {
    const ty = y / Math.max(1, height - 1);
    for (let x = 0; x < width; x++) {
      const t = (x / Math.max(1, width - 1) + ty) / 2;
      const grain = next();
      rgb[offset++] = Math.min(255, r0 + (r1 - r0) * t + (grain & 0x1f));
      rgb[offset++] = Math.min(255, g0 + (g1 - g0) * t + ((grain >>> 8) & 0x1f));
      rgb[offset++] = Math.min(255, b0 + (b1 - b0) * t + ((grain >>> 16) & 0x1f));
    }
  }
  return rgb;
}
