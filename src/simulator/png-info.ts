/**
 * POST /sdapi/v1/png-info (`pnginfoapi`): the image's infotext (`parameters`), its other text entries,
 * and the infotext parsed. Answered at once, outside the queue lock.
 */
import { decodeImageField } from './images.js';
import { parseGenerationParameters } from './infotext.js';

/** Entries of PIL's `image.info` that `read_info_from_image` leaves out. */
const IGNORED = new Set([
  'jfif',
  'jfif_version',
  'jfif_unit',
  'jfif_density',
  'dpi',
  'exif',
  'loop',
  'background',
  'timestamp',
  'duration',
  'progressive',
  'progression',
  'icc_profile',
  'chromaticity',
  'photoshop',
]);

export async function pngInfo(values: Record<string, unknown>, options: Record<string, unknown>): Promise<unknown> {
  const image = await decodeImageField(String(values['image']).trim(), options);
  const items: Record<string, string> = {};
  for (const [key, value] of Object.entries(image.text)) if (!IGNORED.has(key)) items[key] = value;
  const info = items['parameters'] ?? '';
  delete items['parameters'];
  return { info, items, parameters: parseGenerationParameters(info) };
}
