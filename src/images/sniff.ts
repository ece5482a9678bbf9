/**
 * What an image is, read from its first bytes, never from a URL or a content type: its format (PNG,
 * JPEG, WebP, GIF or BMP, what A1111's PIL opens) and its pixel size, from the file's header, so a
 * picture too large to decode (a decompression bomb) is refused before anything decodes it.
 *
 * The size is read as PIL reads it, so a file cannot show one size here and another to A1111: a JPEG's
 * markers are walked the way PIL walks them (junk between them skipped) up to the start of the scan,
 * and the largest frame header counts; a WebP's chunks are walked to the one that holds the size; a
 * GIF's frames are walked to its end, as PIL grows the picture to the largest frame. A size that cannot
 * be read from the bytes given is null, and an image whose size cannot be read at all is refused.
 */

export type ImageFormat = 'png' | 'jpeg' | 'webp' | 'gif' | 'bmp';

export interface SniffedImage {
  format: ImageFormat;
  /** Null when the bytes given do not hold the whole header (a JPEG with a long preamble, a GIF cut short). */
  width: number | null;
  height: number | null;
}

interface Size {
  width: number;
  height: number;
}

const larger = (a: Size | null, b: Size): Size => (a && a.width * a.height >= b.width * b.height ? a : b);

/** Every frame header (SOFn) up to the start of the scan; null unless the scan's start is in the bytes. */
function jpegSize(bytes: Buffer): Size | null {
  let size: Size | null = null;
  let offset = 2;
  while (offset + 1 < bytes.length) {
    if (bytes[offset] !== 0xff) {
      offset++; // junk between markers, which PIL skips
      continue;
    }
    const marker = bytes[offset + 1]!;
    // Fill bytes (FF FF), a stuffed zero (FF 00), and markers without a length (TEM, RSTn).
    if (marker === 0xff) {
      offset++;
      continue;
    }
    if (marker === 0x00 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      offset += 2;
      continue;
    }
    if (marker === 0xda) return size; // start of scan: the header is over
    if (marker === 0xd9) return null; // end of image before any scan
    if (offset + 4 > bytes.length) return null;
    const length = bytes.readUInt16BE(offset + 2);
    // Start of frame: every SOFn but DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (offset + 9 > bytes.length) return null;
      size = larger(size, { height: bytes.readUInt16BE(offset + 5), width: bytes.readUInt16BE(offset + 7) });
    }
    offset += 2 + length;
  }
  return null;
}

/** The chunk that states the canvas: VP8X, or the first VP8 or VP8L frame. */
function webpSize(bytes: Buffer): Size | null {
  let offset = 12;
  while (offset + 8 <= bytes.length) {
    const chunk = bytes.toString('latin1', offset, offset + 4);
    const length = bytes.readUInt32LE(offset + 4);
    const data = offset + 8;
    if (chunk === 'VP8X') {
      if (data + 10 > bytes.length) return null;
      return { width: bytes.readUIntLE(data + 4, 3) + 1, height: bytes.readUIntLE(data + 7, 3) + 1 };
    }
    if (chunk === 'VP8 ') {
      if (data + 10 > bytes.length) return null;
      return { width: bytes.readUInt16LE(data + 6) & 0x3fff, height: bytes.readUInt16LE(data + 8) & 0x3fff };
    }
    if (chunk === 'VP8L') {
      if (data + 5 > bytes.length) return null;
      const bits = bytes.readUInt32LE(data + 1);
      return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
    }
    offset = data + length + (length % 2);
  }
  return null;
}

/** Skips a run of GIF sub-blocks; the offset after its terminator, or -1 when it runs past the bytes. */
function skipSubBlocks(bytes: Buffer, offset: number): number {
  let at = offset;
  while (at < bytes.length) {
    const length = bytes[at]!;
    if (length === 0) return at + 1;
    at += 1 + length;
  }
  return -1;
}

/** The logical screen grown to every frame's extent; null unless the walk reaches the trailer. */
function gifSize(bytes: Buffer): Size | null {
  let width = bytes.readUInt16LE(6);
  let height = bytes.readUInt16LE(8);
  const packed = bytes[10]!;
  let offset = 13 + (packed & 0x80 ? 3 * 2 ** ((packed & 0x07) + 1) : 0);
  while (offset < bytes.length) {
    const block = bytes[offset]!;
    if (block === 0x3b) return { width, height };
    if (block === 0x21) {
      offset = skipSubBlocks(bytes, offset + 2);
    } else if (block === 0x2c) {
      if (offset + 10 > bytes.length) return null;
      width = Math.max(width, bytes.readUInt16LE(offset + 1) + bytes.readUInt16LE(offset + 5));
      height = Math.max(height, bytes.readUInt16LE(offset + 3) + bytes.readUInt16LE(offset + 7));
      const local = bytes[offset + 9]!;
      offset = skipSubBlocks(bytes, offset + 10 + (local & 0x80 ? 3 * 2 ** ((local & 0x07) + 1) : 0) + 1);
    } else {
      return { width, height }; // PIL stops at anything else, with what it has read
    }
    if (offset < 0) return null;
  }
  return null;
}

/**
 * @example
 * sniffImage(pngBytes); // { format: 'png', width: 512, height: 512 }
 */
export function sniffImage(bytes: Buffer): SniffedImage | null {
  if (bytes.length >= 24 && bytes.readUInt32BE(0) === 0x89504e47 && bytes.readUInt32BE(4) === 0x0d0a1a0a) {
    if (bytes.toString('latin1', 12, 16) !== 'IHDR') return null;
    return { format: 'png', width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
  }
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    const size = jpegSize(bytes);
    return { format: 'jpeg', width: size?.width ?? null, height: size?.height ?? null };
  }
  if (bytes.length >= 16 && bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.toString('latin1', 8, 12) === 'WEBP') {
    const size = webpSize(bytes);
    return { format: 'webp', width: size?.width ?? null, height: size?.height ?? null };
  }
  if (bytes.length >= 10 && /^GIF8[79]a$/.test(bytes.toString('latin1', 0, 6))) {
    const size = gifSize(bytes);
    return { format: 'gif', width: size?.width ?? null, height: size?.height ?? null };
  }
  if (bytes.length >= 26 && bytes.toString('latin1', 0, 2) === 'BM') {
    return { format: 'bmp', width: Math.abs(bytes.readInt32LE(18)), height: Math.abs(bytes.readInt32LE(22)) };
  }
  return null;
}

/**
 * Why an image may not go to A1111, or null: it must be one of the formats A1111 opens, with a size
 * its header states, no larger than `maxPixels`. Give it what was sniffed from all of the image's bytes.
 */
export function imageProblem(sniffed: SniffedImage | null, maxPixels: number): string | null {
  if (!sniffed) return 'it is not a PNG, JPEG, WebP, GIF or BMP image';
  const { width, height } = sniffed;
  if (width === null || height === null) return 'its pixel size cannot be read from its header';
  if (width === 0 || height === 0) return `its header says it is ${width}×${height} pixels`;
  if (width * height > maxPixels) {
    return `its header says it is ${width}×${height} pixels, more than IMAGE_MAX_PIXELS (${maxPixels})`;
  }
  return null;
}
