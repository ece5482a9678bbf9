/**
 * A1111's PNGs re-encoded as WebP or JPEG with sharp (libvips, prebuilt for each platform from npm),
 * the way A1111 itself writes those formats: transparency dropped (A1111 converts RGBA to RGB), the
 * generation parameters in EXIF (exif.ts), the quality the job asks for.
 */
import { jpegWithExif, userCommentExif, webpWithExif } from './exif.js';
import { pngText } from './png-text.js';

export type LossyFormat = 'webp' | 'jpeg';

export const CONTENT_TYPES = { png: 'image/png', webp: 'image/webp', jpeg: 'image/jpeg' } as const;
export const EXTENSIONS = { png: 'png', webp: 'webp', jpeg: 'jpg' } as const;

/**
 * The picture in `format`. `parameters` is what to store when the PNG carries none of its own (A1111's
 * `info.infotexts[i]`); a PNG's own `parameters` text wins, as in A1111.
 *
 * @example
 * const webp = await reencode(png, 'webp', 90, infotext);
 */
export async function reencode(
  png: Buffer,
  format: LossyFormat,
  quality: number,
  parameters: string | null,
): Promise<Buffer> {
  const text = pngText(png, 'parameters') ?? parameters ?? '';
  // Loaded on the first re-encoding: libvips costs 30 MB and a twentieth of a second at start-up.
  const { default: sharp } = await import('sharp');
  const picture = sharp(png, { failOn: 'error' }).removeAlpha();
  const { data, info } =
    format === 'webp'
      ? await picture.webp({ quality }).toBuffer({ resolveWithObject: true })
      : await picture.jpeg({ quality }).toBuffer({ resolveWithObject: true });
  const exif = userCommentExif(text);
  // A JPEG's APP1 segment starts with the `Exif\0\0` header; a WebP's EXIF chunk holds the TIFF data
  // alone (the container spec; Pillow strips the header there too).
  return format === 'webp' ? webpWithExif(data, exif.subarray(6), info) : jpegWithExif(data, exif);
}
