/**
 * The text a PNG carries under a keyword (`parameters`, where A1111 keeps an image's generation
 * parameters): a `tEXt` (Latin-1), `zTXt` or `iTXt` (UTF-8) chunk, read from the chunk list without
 * decoding the picture.
 */
import { inflateSync } from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The text under `keyword`, or null when the PNG has none (or is no PNG). */
export function pngText(png: Buffer, keyword: string): string | null {
  if (!png.subarray(0, 8).equals(SIGNATURE)) return null;
  for (let at = 8; at + 12 <= png.length; ) {
    const length = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    const data = png.subarray(at + 8, Math.min(png.length, at + 8 + length));
    if (type === 'IEND') return null;
    const nul = data.indexOf(0);
    if (nul > 0 && data.toString('latin1', 0, nul) === keyword) {
      if (type === 'tEXt') return data.toString('latin1', nul + 1);
      if (type === 'zTXt') return inflateSync(data.subarray(nul + 2)).toString('latin1');
      if (type === 'iTXt') {
        const compressed = data[nul + 1] === 1;
        // keyword\0 flag method language\0 translated\0 text
        const language = data.indexOf(0, nul + 3);
        const translated = language < 0 ? -1 : data.indexOf(0, language + 1);
        if (translated < 0) return null;
        const text = data.subarray(translated + 1);
        return (compressed ? inflateSync(text) : text).toString('utf8');
      }
    }
    at += 12 + length;
  }
  return null;
}
