/**
 * Whether a base64 string A1111 sent as an image is one: a cheap look at its ends, not a decode.
 * A1111 encodes its answers' images as padded base64 of PNG (the default), JPEG or WebP files. The
 * check reads the first and last few dozen characters (their alphabet, the file's signature, a PNG's
 * closing IEND chunk, a JPEG's end-of-image marker, a WebP's RIFF length), so a truncated, garbled or
 * foreign string is caught in constant time, however large the image; damage in the middle is not.
 */

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * The problem with an image given by its first and last characters (at least 64 of each when it is
 * that long) and its length; null when it looks like a whole PNG, JPEG or WebP file.
 *
 * @example
 * pictureProblem(png.slice(0, 64), png.slice(-64), png.length); // null
 */
export function pictureProblem(head: string, tail: string, length: number): string | null {
  if (length === 0) return 'it is empty';
  if (length % 4 !== 0) return `its length (${length}) is not that of padded base64`;
  if (!BASE64.test(head) || !BASE64.test(tail.replace(/=+$/, ''))) return 'it is not base64';
  const start = Buffer.from(head.slice(0, 32), 'base64');
  const endChars = tail.slice(-16);
  const end = Buffer.from(endChars, 'base64');
  if (start.subarray(0, 8).equals(PNG_SIGNATURE)) {
    if (start.toString('latin1', 12, 16) !== 'IHDR') return 'a PNG without its header chunk';
    return end.toString('latin1', end.length - 8, end.length - 4) === 'IEND' ? null : 'a PNG cut short (no IEND chunk)';
  }
  if (start[0] === 0xff && start[1] === 0xd8 && start[2] === 0xff) {
    return end[end.length - 2] === 0xff && end[end.length - 1] === 0xd9 ? null : 'a JPEG cut short (no end marker)';
  }
  if (start.toString('latin1', 0, 4) === 'RIFF' && start.toString('latin1', 8, 12) === 'WEBP') {
    const padding = endChars.endsWith('==') ? 2 : endChars.endsWith('=') ? 1 : 0;
    const bytes = (length / 4) * 3 - padding;
    return start.readUInt32LE(4) + 8 === bytes ? null : 'a WebP whose length does not match its RIFF header';
  }
  return 'not a PNG, JPEG or WebP file';
}

/** The problem with an image given as a string; null when it looks whole. */
export function pictureProblemOf(image: string): string | null {
  return pictureProblem(image.slice(0, 64), image.slice(-64), image.length);
}

/** The problem with an image given as a span of bytes (base64 text, undecoded). */
export function pictureProblemIn(raw: Buffer, start: number, end: number): string | null {
  const headEnd = Math.min(end, start + 64);
  const tailStart = Math.max(start, end - 64);
  return pictureProblem(raw.toString('latin1', start, headEnd), raw.toString('latin1', tailStart, end), end - start);
}
