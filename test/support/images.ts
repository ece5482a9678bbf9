/**
 * Real image files for tests, made here: PNG (pngjs), JPEG (jpeg-js), a lossless WebP, a GIF and a
 * BMP of one colour, a noisy PNG of about a given size, and "bombs": small files whose headers claim
 * a picture far too large to decode.
 */
import { crc32, deflateSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';

/** A PNG whose pixels follow `seed`: different seeds, different pictures. */
export function pngImage(width: number, height: number, seed = 1): Buffer {
  const png = new PNG({ width, height });
  for (let i = 0; i < width * height; i++) {
    png.data[i * 4] = (i * 31 + seed * 97) & 0xff;
    png.data[i * 4 + 1] = (i * 17 + seed * 13) & 0xff;
    png.data[i * 4 + 2] = (seed * 53) & 0xff;
    png.data[i * 4 + 3] = 255;
  }
  return PNG.sync.write(png);
}

/** A PNG of noise, stored uncompressed: about `bytes` bytes. */
export function noisyPng(bytes: number, seed = 1): Buffer {
  const side = Math.ceil(Math.sqrt(bytes / 4));
  const png = new PNG({ width: side, height: side });
  let state = seed >>> 0 || 1;
  for (let i = 0; i < png.data.length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    png.data[i] = (i & 3) === 3 ? 255 : state & 0xff;
  }
  return PNG.sync.write(png, { deflateLevel: 0 });
}

/** A JPEG frame header (SOF0) stating a size, three components. */
export function jpegFrameHeader(width: number, height: number): Buffer {
  const segment = Buffer.from([0xff, 0xc0, 0x00, 0x11, 0x08, 0, 0, 0, 0, 0x03, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
  segment.writeUInt16BE(height, 5);
  segment.writeUInt16BE(width, 7);
  return segment;
}

/**
 * A small JPEG with a second frame header that claims `width` × `height`, hidden behind junk bytes
 * after its first segment (PIL skips them, and takes the size of the last frame header it reads).
 */
export function jpegBomb(width: number, height: number): Buffer {
  const jpeg = jpegImage(40, 30);
  const firstEnd = 4 + jpeg.readUInt16BE(4);
  return Buffer.concat([
    jpeg.subarray(0, firstEnd),
    Buffer.from([0x00, 0x13]),
    jpegFrameHeader(width, height),
    jpeg.subarray(firstEnd),
  ]);
}

export function jpegImage(width: number, height: number): Buffer {
  const data = Buffer.alloc(width * height * 4);
  for (let i = 0; i < width * height; i++) data.writeUInt32BE((((i * 2654435761) & 0xffffff00) | 0xff) >>> 0, i * 4);
  return jpeg.encode({ width, height, data }, 90).data;
}

/** Bits written least significant first, as VP8L and GIF's LZW read them. */
class BitWriter {
  private readonly bytes: number[] = [];
  private current = 0;
  private used = 0;

  write(value: number, bits: number): void {
    for (let i = 0; i < bits; i++) {
      this.current |= ((value >>> i) & 1) << this.used;
      if (++this.used === 8) {
        this.bytes.push(this.current);
        this.current = 0;
        this.used = 0;
      }
    }
  }

  finish(): Buffer {
    return Buffer.from(this.used > 0 ? [...this.bytes, this.current] : this.bytes);
  }
}

/**
 * A lossless WebP of one colour: a VP8L stream without transforms whose five prefix codes each have
 * a single symbol, so every pixel takes no bits at all.
 */
export function webpImage(width: number, height: number, [r, g, b] = [200, 80, 40]): Buffer {
  const bits = new BitWriter();
  bits.write(0x2f, 8);
  bits.write(width - 1, 14);
  bits.write(height - 1, 14);
  bits.write(0, 1); // no alpha
  bits.write(0, 3); // version 0
  bits.write(0, 1); // no transform
  bits.write(0, 1); // no colour cache
  bits.write(0, 1); // no meta prefix codes
  for (const symbol of [g, r, b, 255, 0]) {
    bits.write(1, 1); // simple code
    bits.write(0, 1); // one symbol
    bits.write(1, 1); // of 8 bits
    bits.write(symbol, 8);
  }
  const data = bits.finish();
  const padded = data.length % 2 === 1 ? Buffer.concat([data, Buffer.alloc(1)]) : data;
  const chunk = Buffer.alloc(8);
  chunk.write('VP8L', 0, 'latin1');
  chunk.writeUInt32LE(data.length, 4);
  const header = Buffer.alloc(12);
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(4 + 8 + padded.length, 4);
  header.write('WEBP', 8, 'latin1');
  return Buffer.concat([header, chunk, padded]);
}

/** A GIF of one colour: LZW codes of 3 bits, a clear code before each pixel keeps them that size. */
export function gifImage(width: number, height: number): Buffer {
  const screen = Buffer.alloc(13);
  screen.write('GIF89a', 0, 'latin1');
  screen.writeUInt16LE(width, 6);
  screen.writeUInt16LE(height, 8);
  screen[10] = 0x80; // a global colour table of 2 entries
  const palette = Buffer.from([30, 120, 200, 0, 0, 0]);
  const descriptor = Buffer.alloc(10);
  descriptor[0] = 0x2c;
  descriptor.writeUInt16LE(width, 5);
  descriptor.writeUInt16LE(height, 7);
  const codes = new BitWriter();
  for (let i = 0; i < width * height; i++) {
    codes.write(4, 3); // clear
    codes.write(0, 3); // colour 0
  }
  codes.write(5, 3); // end of information
  const lzw = codes.finish();
  const blocks: Buffer[] = [Buffer.from([2])];
  for (let at = 0; at < lzw.length; at += 255) {
    const part = lzw.subarray(at, at + 255);
    blocks.push(Buffer.from([part.length]), part);
  }
  blocks.push(Buffer.from([0]));
  return Buffer.concat([screen, palette, descriptor, ...blocks, Buffer.from([0x3b])]);
}

/** A 24-bit BMP of one colour. */
export function bmpImage(width: number, height: number): Buffer {
  const row = Math.ceil((width * 3) / 4) * 4;
  const file = Buffer.alloc(54 + row * height);
  file.write('BM', 0, 'latin1');
  file.writeUInt32LE(file.length, 2);
  file.writeUInt32LE(54, 10);
  file.writeUInt32LE(40, 14);
  file.writeInt32LE(width, 18);
  file.writeInt32LE(height, 22);
  file.writeUInt16LE(1, 26);
  file.writeUInt16LE(24, 28);
  file.writeUInt32LE(row * height, 34);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) file.set([40, 160, 90], 54 + y * row + x * 3);
  return file;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** A PNG of a few hundred bytes whose header says it is `width` × `height`. */
export function bombPng(width = 60_000, height = 60_000): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([
    signature,
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(Buffer.alloc(4096))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}
