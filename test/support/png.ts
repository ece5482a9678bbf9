/**
 * Reads PNGs the way a user's tools would: pngjs decodes the pixels, and the text chunks are read
 * straight from the file structure (pngjs skips them).
 */
import { inflateSync } from 'node:zlib';
import { PNG } from 'pngjs';

export interface DecodedPng {
  width: number;
  height: number;
  /** RGBA, 4 bytes per pixel. */
  data: Buffer;
  text: Record<string, string>;
}

function readTextChunks(png: Buffer): Record<string, string> {
  const text: Record<string, string> = {};
  let offset = 8;
  while (offset + 8 <= png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString('latin1', offset + 4, offset + 8);
    const data = png.subarray(offset + 8, offset + 8 + length);
    if (type === 'tEXt') {
      const zero = data.indexOf(0);
      text[data.toString('latin1', 0, zero)] = data.toString('latin1', zero + 1);
    } else if (type === 'iTXt') {
      const zero = data.indexOf(0);
      const keyword = data.toString('latin1', 0, zero);
      const compressed = data[zero + 1] === 1;
      let rest = zero + 3;
      rest = data.indexOf(0, rest) + 1; // language tag
      rest = data.indexOf(0, rest) + 1; // translated keyword
      const body = data.subarray(rest);
      text[keyword] = (compressed ? inflateSync(body) : body).toString('utf8');
    }
    offset += 12 + length;
  }
  return text;
}

export function decodePng(base64OrBuffer: string | Buffer): DecodedPng {
  const buffer = typeof base64OrBuffer === 'string' ? Buffer.from(base64OrBuffer, 'base64') : base64OrBuffer;
  const png = PNG.sync.read(buffer);
  return { width: png.width, height: png.height, data: png.data, text: readTextChunks(buffer) };
}

/** Drops the alpha channel: RGBA → RGB. */
export function rgbOf(decoded: DecodedPng): Buffer {
  const rgb = Buffer.alloc(decoded.width * decoded.height * 3);
  for (let i = 0, j = 0; i < decoded.data.length; i += 4, j += 3) {
    rgb[j] = decoded.data[i]!;
    rgb[j + 1] = decoded.data[i + 1]!;
    rgb[j + 2] = decoded.data[i + 2]!;
  }
  return rgb;
}
