/**
 * How A1111 v1.9.3 reads an image field (`api.py` `decode_base64_to_image`, then PIL's `Image.open`),
 * failures included:
 *
 * - `http://` or `https://` (case-sensitive): fetched by A1111 itself, after a check that refuses any
 *   host that does not resolve to global IPv4 addresses (a port or user info in the URL fails it too):
 *   500 "Request to local resource not allowed"; a fetch error is a 500 ConnectionError, bytes that are
 *   no image "Invalid image url";
 * - `data:image/…`: the part after the first `;` and its first `,` (no `;` or `,`, or a parameter before
 *   `base64`, is a 500 IndexError);
 * - anything else: Python's lax base64 (characters outside the alphabet dropped; bad padding or bytes
 *   that are no image: 500 "Invalid encoded image");
 * - a value that is not a string: a 500 AttributeError (`'int' object has no attribute 'startswith'`).
 *
 * PIL opens PNG, JPEG, WebP, GIF and BMP. The simulator decodes the pixels of PNGs (pngjs) where an
 * operation uses them (the extras); of the other formats it reads the size from the header and stands
 * in a picture derived from the file's bytes. img2img draws from the seed and the init image's bytes.
 */
import { createHash } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { inflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { a1111Error } from './errors.js';

export type PilFormat = 'PNG' | 'JPEG' | 'WEBP' | 'GIF' | 'BMP';

export interface OpenedImage {
  format: PilFormat;
  width: number;
  height: number;
  /** The file as A1111 got it. */
  bytes: Buffer;
  /** PIL's `image.info` string entries: a PNG's text chunks (`parameters`, …). */
  text: Record<string, string>;
  /**
   * 8-bit RGB pixels, row-major, decoded when first asked for (PIL opens lazily too); a stand-in for
   * the formats the simulator does not decode.
   */
  pixels(): Buffer;
}

/** What Python calls the type of a JSON value. */
function pythonType(value: unknown): string {
  if (value === null || value === undefined) return 'NoneType';
  if (typeof value === 'boolean') return 'bool';
  if (typeof value === 'number') return Number.isInteger(value) ? 'int' : 'float';
  if (Array.isArray(value)) return 'list';
  return typeof value === 'object' ? 'dict' : 'str';
}

const ALPHABET = /[A-Za-z0-9+/]/;
const CLEAN_BASE64 = /^[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * `base64.b64decode(s)` without `validate`: characters outside the alphabet are dropped; a group left
 * with one character, or two or three without their padding, is an error.
 */
export function pythonB64decode(text: string): Buffer | null {
  // Clean base64 (the usual case) decodes the same either way; the character loop is for the rest.
  if (text.length % 4 === 0 && CLEAN_BASE64.test(text)) return Buffer.from(text, 'base64');
  const groups: string[] = [];
  let quad = '';
  for (const char of text) {
    if (ALPHABET.test(char)) {
      quad += char;
      if (quad.length === 4) {
        groups.push(quad);
        quad = '';
      }
    } else if (char === '=' && quad.length >= 2) {
      groups.push(quad.padEnd(4, '='));
      quad = '';
    }
  }
  if (quad.length > 0) return null;
  return Buffer.from(groups.join(''), 'base64');
}

function formatOf(bytes: Buffer): PilFormat | null {
  if (bytes.length >= 8 && bytes.readUInt32BE(0) === 0x89504e47 && bytes.readUInt32BE(4) === 0x0d0a1a0a) return 'PNG';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'JPEG';
  if (bytes.length >= 12 && bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.toString('latin1', 8, 12) === 'WEBP')
    return 'WEBP';
  if (bytes.length >= 6 && /^GIF8[79]a$/.test(bytes.toString('latin1', 0, 6))) return 'GIF';
  if (bytes.length >= 26 && bytes.toString('latin1', 0, 2) === 'BM') return 'BMP';
  return null;
}

/** The size a format's header states; null when the header is not whole. */
function headerSize(format: PilFormat, bytes: Buffer): { width: number; height: number } | null {
  switch (format) {
    case 'PNG':
      return bytes.length >= 24 ? { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) } : null;
    case 'GIF':
      return { width: bytes.readUInt16LE(6), height: bytes.readUInt16LE(8) };
    case 'BMP':
      return { width: Math.abs(bytes.readInt32LE(18)), height: Math.abs(bytes.readInt32LE(22)) };
    case 'WEBP': {
      const kind = bytes.toString('latin1', 12, 16);
      if (kind === 'VP8 ' && bytes.length >= 30)
        return { width: bytes.readUInt16LE(26) & 0x3fff, height: bytes.readUInt16LE(28) & 0x3fff };
      if (kind === 'VP8L' && bytes.length >= 25) {
        const bits = bytes.readUInt32LE(21);
        return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
      }
      if (kind === 'VP8X' && bytes.length >= 30)
        return { width: bytes.readUIntLE(24, 3) + 1, height: bytes.readUIntLE(27, 3) + 1 };
      return null;
    }
    case 'JPEG': {
      let at = 2;
      while (at + 9 <= bytes.length && bytes[at] === 0xff) {
        const marker = bytes[at + 1]!;
        if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
          return { height: bytes.readUInt16BE(at + 5), width: bytes.readUInt16BE(at + 7) };
        }
        at += 2 + bytes.readUInt16BE(at + 2);
      }
      return null;
    }
  }
}

/** A PNG's text chunks, as PIL puts them in `image.info` (tEXt, zTXt and iTXt). */
export function pngTextChunks(bytes: Buffer): Record<string, string> {
  const text: Record<string, string> = {};
  let at = 8;
  while (at + 12 <= bytes.length) {
    const length = bytes.readUInt32BE(at);
    const type = bytes.toString('latin1', at + 4, at + 8);
    const data = bytes.subarray(at + 8, at + 8 + length);
    at += 12 + length;
    if (type === 'IEND') break;
    const nul = data.indexOf(0);
    if (nul < 0) continue;
    const keyword = data.toString('latin1', 0, nul);
    try {
      if (type === 'tEXt') text[keyword] = data.toString('latin1', nul + 1);
      else if (type === 'zTXt') text[keyword] = inflateSync(data.subarray(nul + 2)).toString('latin1');
      else if (type === 'iTXt') {
        const compressed = data[nul + 1] === 1;
        const language = data.indexOf(0, nul + 3);
        const translated = data.indexOf(0, language + 1);
        const body = data.subarray(translated + 1);
        text[keyword] = (compressed ? inflateSync(body) : body).toString('utf8');
      }
    } catch {
      // PIL skips a chunk it cannot read.
    }
  }
  return text;
}

/** A picture standing in for the pixels of a format the simulator does not decode: derived from the bytes. */
function standIn(bytes: Buffer, width: number, height: number): Buffer {
  const digest = createHash('sha256').update(bytes).digest();
  const rgb = Buffer.alloc(width * height * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = digest[i % digest.length]! ^ ((i / 3) & 0x0f);
  return rgb;
}

function pngPixels(bytes: Buffer): Buffer {
  const png = PNG.sync.read(bytes);
  const rgb = Buffer.alloc(png.width * png.height * 3);
  for (let i = 0, o = 0; i < png.data.length; i += 4) {
    // Composited over black, as `convert('RGB')` drops the alpha.
    const alpha = png.data[i + 3]! / 255;
    rgb[o++] = Math.round(png.data[i]! * alpha);
    rgb[o++] = Math.round(png.data[i + 1]! * alpha);
    rgb[o++] = Math.round(png.data[i + 2]! * alpha);
  }
  return rgb;
}

/** `images.read(BytesIO(bytes))`: the image, or null when PIL cannot identify it. */
export function openImage(bytes: Buffer): OpenedImage | null {
  const format = formatOf(bytes);
  if (!format) return null;
  const size = headerSize(format, bytes);
  if (!size || size.width === 0 || size.height === 0) return null;
  let rgb: Buffer | null = null;
  const pixels = () => {
    if (rgb) return rgb;
    try {
      rgb = format === 'PNG' ? pngPixels(bytes) : standIn(bytes, size.width, size.height);
    } catch {
      // A damaged PNG fails when its pixels are loaded, as in PIL.
      throw a1111Error(500, 'OSError', '', 'image file is truncated');
    }
    return rgb;
  };
  return { format, ...size, bytes, text: format === 'PNG' ? pngTextChunks(bytes) : {}, pixels };
}

/** `ipaddress.ip_address(x).is_global` for IPv4. */
function isGlobalIpv4(address: string): boolean {
  const [a, b] = address.split('.').map(Number) as [number, number, number, number];
  if (a === 0 || a === 10 || a === 127 || a >= 240) return false;
  if (a === 100 && b >= 64 && b <= 127) return false;
  if (a === 169 && b === 254) return false;
  if (a === 172 && b >= 16 && b <= 31) return false;
  if (a === 192 && (b === 168 || address.startsWith('192.0.0.') || address.startsWith('192.0.2.'))) return false;
  if (a === 198 && (b === 18 || b === 19 || address.startsWith('198.51.100.'))) return false;
  if (address.startsWith('203.0.113.')) return false;
  return true;
}

/** `verify_url`: every IPv4 address of the URL's netloc is global; any error is a no. */
async function verifyUrl(url: string): Promise<boolean> {
  const netloc = /^https?:\/\/([^/?#]*)/.exec(url)?.[1] ?? '';
  if (netloc === '' || /[:@[\]]/.test(netloc)) return false;
  try {
    const addresses = await lookup(netloc, { family: 4, all: true });
    return addresses.length > 0 && addresses.every((entry) => isGlobalIpv4(entry.address));
  } catch {
    return false;
  }
}

async function fromUrl(url: string, options: Record<string, unknown>): Promise<OpenedImage> {
  if (options['api_enable_requests'] === false) throw a1111Error(500, 'HTTPException', 'Requests not allowed');
  if (options['api_forbid_local_requests'] !== false && !(await verifyUrl(url))) {
    throw a1111Error(500, 'HTTPException', 'Request to local resource not allowed');
  }
  let bytes: Buffer;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(30_000) });
    bytes = Buffer.from(await response.arrayBuffer());
  } catch (error) {
    throw a1111Error(500, 'ConnectionError', '', error instanceof Error ? error.message : String(error));
  }
  const image = openImage(bytes);
  if (!image) throw a1111Error(500, 'HTTPException', 'Invalid image url');
  return image;
}

/**
 * `decode_base64_to_image(encoding)` as v1.9.3 runs it.
 *
 * @example
 * const image = await decodeImageField(request['image'], engine.options);
 */
export async function decodeImageField(encoding: unknown, options: Record<string, unknown>): Promise<OpenedImage> {
  if (typeof encoding !== 'string') {
    throw a1111Error(500, 'AttributeError', '', `'${pythonType(encoding)}' object has no attribute 'startswith'`);
  }
  if (encoding.startsWith('http://') || encoding.startsWith('https://')) return fromUrl(encoding, options);
  let data = encoding;
  if (encoding.startsWith('data:image/')) {
    // encoding.split(";")[1].split(",")[1]
    const afterSemicolon = encoding.split(';')[1];
    const base64 = afterSemicolon?.split(',')[1];
    if (afterSemicolon === undefined || base64 === undefined) {
      throw a1111Error(500, 'IndexError', '', 'list index out of range');
    }
    data = base64;
  }
  const bytes = pythonB64decode(data);
  const image = bytes ? openImage(bytes) : null;
  if (!image) throw a1111Error(500, 'HTTPException', 'Invalid encoded image');
  return image;
}
