/**
 * Generation parameters in a JPEG or WebP the way A1111 v1.9.3 writes them for those formats
 * (`modules/api/api.py` encode_pil_to_base64): an EXIF block whose Exif IFD holds one UserComment,
 * `UNICODE\0` followed by the text in UTF-16 big-endian (piexif's "unicode" encoding), in a
 * big-endian TIFF structure behind the `Exif\0\0` header. PNG info readers (A1111's own, and the
 * tools that imitate it) read it back from there.
 */

const EXIF_HEADER = Buffer.from('Exif\0\0', 'latin1');
const UNICODE_PREFIX = Buffer.from('UNICODE\0', 'latin1');
const EXIF_IFD_POINTER = 0x8769;
const USER_COMMENT = 0x9286;
const LONG = 4;
const UNDEFINED = 7;
/** A JPEG segment holds at most 65,533 bytes after its length. */
const JPEG_SEGMENT_MAX = 65_533;

/** UTF-16 big-endian bytes of a text. */
function utf16be(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf16le');
  bytes.swap16();
  return bytes;
}

/**
 * `Exif\0\0` and a TIFF structure holding the text as the Exif IFD's UserComment. Parameters longer than
 * a JPEG segment allows are cut to fit (A1111's own infotexts are a few hundred characters).
 */
export function userCommentExif(text: string): Buffer {
  const room = Math.floor((JPEG_SEGMENT_MAX - EXIF_HEADER.length - 44 - UNICODE_PREFIX.length) / 2);
  // Cut in characters, never between the two halves of a surrogate pair.
  let cut = Math.min(text.length, room);
  if (cut < text.length && /[\uD800-\uDBFF]/.test(text[cut - 1] ?? '')) cut--;
  const comment = utf16be(text.slice(0, cut));
  const value = Buffer.concat([UNICODE_PREFIX, comment]);
  const tiff = Buffer.alloc(44 + value.length);
  tiff.write('MM', 0, 'latin1');
  tiff.writeUInt16BE(42, 2);
  tiff.writeUInt32BE(8, 4); // IFD0
  tiff.writeUInt16BE(1, 8);
  tiff.writeUInt16BE(EXIF_IFD_POINTER, 10);
  tiff.writeUInt16BE(LONG, 12);
  tiff.writeUInt32BE(1, 14);
  tiff.writeUInt32BE(26, 18); // the Exif IFD
  tiff.writeUInt32BE(0, 22); // no IFD1
  tiff.writeUInt16BE(1, 26);
  tiff.writeUInt16BE(USER_COMMENT, 28);
  tiff.writeUInt16BE(UNDEFINED, 30);
  tiff.writeUInt32BE(value.length, 32);
  tiff.writeUInt32BE(44, 36); // the value, after this IFD
  tiff.writeUInt32BE(0, 40);
  value.copy(tiff, 44);
  return Buffer.concat([EXIF_HEADER, tiff]);
}

/** A JPEG with an APP1 segment holding `exif`, right after its SOI marker (and a JFIF APP0, if any). */
export function jpegWithExif(jpeg: Buffer, exif: Buffer): Buffer {
  if (jpeg[0] !== 0xff || jpeg[1] !== 0xd8) throw new Error('not a JPEG');
  let at = 2;
  if (jpeg[2] === 0xff && jpeg[3] === 0xe0) at = 4 + jpeg.readUInt16BE(4);
  const segment = Buffer.alloc(4);
  segment.writeUInt16BE(0xffe1, 0);
  segment.writeUInt16BE(exif.length + 2, 2);
  return Buffer.concat([jpeg.subarray(0, at), segment, exif, jpeg.subarray(at)]);
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.write(type, 0, 'latin1');
  head.writeUInt32LE(data.length, 4);
  return Buffer.concat(data.length % 2 === 1 ? [head, data, Buffer.alloc(1)] : [head, data]);
}

/**
 * A WebP with an EXIF chunk holding `tiff` (the EXIF data from its TIFF header on, without the JPEG's
 * `Exif\0\0`), in the extended format: a VP8X chunk first, flagging EXIF and, for a lossless picture
 * with transparency, alpha.
 */
export function webpWithExif(webp: Buffer, tiff: Buffer, size: { width: number; height: number }): Buffer {
  if (webp.toString('latin1', 0, 4) !== 'RIFF' || webp.toString('latin1', 8, 12) !== 'WEBP') {
    throw new Error('not a WebP');
  }
  const chunks: Buffer[] = [];
  let flags = 0x08;
  for (let at = 12; at + 8 <= webp.length; ) {
    const type = webp.toString('latin1', at, at + 4);
    const length = webp.readUInt32LE(at + 4);
    const end = at + 8 + length + (length % 2);
    if (type === 'VP8X') flags |= webp[at + 8]! & ~0x08;
    else if (type !== 'EXIF') chunks.push(webp.subarray(at, end));
    if (type === 'ALPH') flags |= 0x10;
    if (type === 'VP8L' && (webp[at + 8 + 4]! & 0x10) !== 0) flags |= 0x10;
    at = end;
  }
  const vp8x = Buffer.alloc(10);
  vp8x[0] = flags;
  vp8x.writeUIntLE(size.width - 1, 4, 3);
  vp8x.writeUIntLE(size.height - 1, 7, 3);
  const body = Buffer.concat([Buffer.from('WEBP', 'latin1'), chunk('VP8X', vp8x), ...chunks, chunk('EXIF', tiff)]);
  const head = Buffer.alloc(8);
  head.write('RIFF', 0, 'latin1');
  head.writeUInt32LE(body.length, 4);
  return Buffer.concat([head, body]);
}
