/**
 * The images a job gives A1111, wherever A1111 takes one: img2img's `init_images[]` and `mask`, the
 * extras' `image` and `imageList[].data`, png-info's and interrogate's `image`, and the images of
 * ControlNet-style units in `alwayson_scripts` (`image`, `input_image`, `mask`, `mask_image`, and
 * `image: {image, mask}`). Each may be raw base64, a data URL of any form, or an http(s) URL; A1111 gets
 * raw base64 only:
 *
 * - a data URL loses its header (v1.9.3 fails with a 500 on `data:image/png;charset=utf-8;base64,…`);
 * - an http(s) URL is fetched by the worker (fetch-image.ts) and replaced by the image's base64;
 * - every image is checked from its bytes: a format A1111 opens, no larger than IMAGE_MAX_PIXELS;
 * - an empty `mask` (v1.9.3 crashes on `""`) or empty unit image is dropped, with a debug line.
 *
 * Every refusal names the field, its index and the reason.
 */
import type { Operation } from '../a1111/operations.js';
import type { A1111Request } from '../a1111/request-fields.js';
import type { ImageSettings } from '../config/index.js';
import { fetchImage } from '../images/fetch-image.js';
import { imageProblem, sniffImage } from '../images/sniff.js';
import { type InputProblem, isPlainObject } from './envelope.js';

/** One place in a request that holds an image. */
export interface ImageSlot {
  field: string;
  value: string;
  set(value: string): void;
  /** Removes it from the request (an empty optional image). */
  drop(): void;
}

/** The keys of a ControlNet-style unit (an object in `alwayson_scripts.*.args`) that hold images. */
const UNIT_IMAGE_KEYS = ['image', 'input_image', 'mask', 'mask_image'];

function keySlot(holder: Record<string, unknown>, key: string, field: string): ImageSlot | null {
  const value = holder[key];
  if (typeof value !== 'string') return null;
  return {
    field,
    value,
    set: (next) => {
      holder[key] = next;
    },
    drop: () => {
      delete holder[key];
    },
  };
}

function listSlots(list: unknown, field: string): ImageSlot[] {
  if (!Array.isArray(list)) return [];
  return list.flatMap((value, index) =>
    typeof value === 'string'
      ? [
          {
            field: `${field}[${index}]`,
            value,
            set: (next: string) => {
              list[index] = next;
            },
            drop: () => undefined,
          },
        ]
      : [],
  );
}

function unitSlots(scripts: unknown): ImageSlot[] {
  if (!isPlainObject(scripts)) return [];
  const slots: ImageSlot[] = [];
  for (const [title, script] of Object.entries(scripts)) {
    const args = isPlainObject(script) ? script['args'] : undefined;
    if (!Array.isArray(args)) continue;
    args.forEach((unit, index) => {
      const at = `alwayson_scripts.${title}.args[${index}]`;
      // A positional data URL or URL (ReActor's source face, say) is an image wherever it is: A1111
      // gets base64 only, and an extension never fetches anything itself. A data URL of another type
      // or a URL the worker does not fetch (file:, ftp:) is refused here rather than left to A1111.
      if (typeof unit === 'string' && (/^data:/i.test(unit) || /^[a-z][a-z0-9+.-]*:\/\//i.test(unit))) {
        const set = (next: string) => {
          args[index] = next;
        };
        slots.push({ field: at, value: unit, set, drop: () => undefined });
      }
      if (!isPlainObject(unit)) return;
      for (const key of UNIT_IMAGE_KEYS) {
        const slot = keySlot(unit, key, `${at}.${key}`);
        if (slot) slots.push(slot);
      }
      const nested = unit['image'];
      if (isPlainObject(nested)) {
        for (const key of ['image', 'mask']) {
          const slot = keySlot(nested, key, `${at}.image.${key}`);
          if (slot) slots.push(slot);
        }
      }
    });
  }
  return slots;
}

/** Every image slot of a request, in field order. */
export function imageSlots(operation: Operation, request: A1111Request): ImageSlot[] {
  switch (operation.name) {
    case 'txt2img':
      return unitSlots(request['alwayson_scripts']);
    case 'img2img':
      return [
        ...listSlots(request['init_images'], 'init_images'),
        ...[keySlot(request, 'mask', 'mask')].filter((slot): slot is ImageSlot => slot !== null),
        ...unitSlots(request['alwayson_scripts']),
      ];
    case 'extra-single-image':
    case 'png-info':
    case 'interrogate':
      return [keySlot(request, 'image', 'image')].filter((slot): slot is ImageSlot => slot !== null);
    case 'extra-batch-images': {
      const list = request['imageList'];
      if (!Array.isArray(list)) return [];
      return list.flatMap((item, index) =>
        isPlainObject(item)
          ? [keySlot(item, 'data', `imageList[${index}].data`)].filter((s): s is ImageSlot => s !== null)
          : [],
      );
    }
    default:
      return [];
  }
}

export function isUrl(value: string): boolean {
  return /^https?:\/\//i.test(value);
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** Base64 characters decoded to read an image's header: enough for any PNG, WebP, GIF, BMP, most JPEGs. */
const HEADER_CHARS = 512 * 1024;

/** The raw base64 of an inline image, or the reason it is none. */
function inlineBase64(value: string): { base64: string } | { problem: string } {
  let data = value;
  if (/^data:/i.test(value)) {
    const comma = value.indexOf(',');
    const header = comma < 0 ? '' : value.slice(5, comma).toLowerCase();
    if (comma < 0 || !header.split(';').includes('base64')) {
      return { problem: 'a data: URL of an image must be base64 ("data:image/png;base64,…")' };
    }
    if (header.split(';')[0] !== '' && !header.startsWith('image/')) {
      return { problem: `a data: URL of type "${header.split(';')[0]}" is not an image` };
    }
    data = value.slice(comma + 1);
  } else if (/^[a-z][a-z0-9+.-]*:/i.test(value)) {
    return { problem: 'only http(s) URLs, data: URLs and base64 are taken' };
  }
  const compact = data.replace(/\s+/g, '');
  if (!BASE64.test(compact) || compact.length % 4 === 1) return { problem: 'it is not base64' };
  return {
    base64: compact.length % 4 === 0 ? compact : compact.padEnd(compact.length + (4 - (compact.length % 4)), '='),
  };
}

function checkBase64Image(base64: string, maxPixels: number): string | null {
  const head = Buffer.from(base64.slice(0, HEADER_CHARS), 'base64');
  let sniffed = sniffImage(head);
  // A header longer than the head (a JPEG's large metadata, a GIF's frames) is read from all the bytes.
  if (sniffed && sniffed.width === null && base64.length > HEADER_CHARS)
    sniffed = sniffImage(Buffer.from(base64, 'base64'));
  return imageProblem(sniffed, maxPixels);
}

/**
 * Checks and rewrites the inline images of a request (data URLs to raw base64, empty optional images
 * dropped), leaving URLs for `fetchImageUrls`. Returns the problems, and how many URLs are left.
 */
export function prepareImages(
  operation: Operation,
  request: A1111Request,
  settings: Pick<ImageSettings, 'maxPixels'>,
  onDropped: (field: string) => void,
): { problems: InputProblem[]; urls: number } {
  const problems: InputProblem[] = [];
  let urls = 0;
  for (const slot of imageSlots(operation, request)) {
    const optional = slot.field === 'mask' || slot.field.startsWith('alwayson_scripts.');
    if (slot.value.trim() === '' && optional) {
      slot.drop();
      onDropped(slot.field);
      continue;
    }
    if (isUrl(slot.value)) {
      if (URL.canParse(slot.value)) urls++;
      else
        problems.push({
          field: slot.field,
          value: slot.value,
          rule: 'an image: base64, a data: URL or an http(s) URL (it is not a valid URL)',
        });
      continue;
    }
    const inline = inlineBase64(slot.value);
    const problem = 'problem' in inline ? inline.problem : checkBase64Image(inline.base64, settings.maxPixels);
    if (problem) {
      problems.push({
        field: slot.field,
        value: slot.value,
        rule: `an image: base64, a data: URL or an http(s) URL (${problem})`,
      });
      continue;
    }
    if ('base64' in inline && inline.base64 !== slot.value) slot.set(inline.base64);
  }
  return { problems, urls };
}

/**
 * Fetches the image URLs of a request, a few at once, and puts their base64 in their place.
 *
 * @example
 * const request = await fetchImageUrls(img2img, job.request, config.images, signal);
 */
export async function fetchImageUrls(
  operation: Operation,
  request: A1111Request,
  settings: ImageSettings,
  signal: AbortSignal,
): Promise<{ request: A1111Request; fetched: { field: string; bytes: number }[] }> {
  const copy = structuredClone(request);
  const slots = imageSlots(operation, copy).filter((slot) => isUrl(slot.value));
  // In the request's order, whichever finishes first.
  const fetched: { field: string; bytes: number }[] = new Array(slots.length);
  let next = 0;
  const worker = async () => {
    for (let index = next++; index < slots.length; index = next++) {
      const slot = slots[index]!;
      const image = await fetchImage(slot.field, slot.value, settings, signal);
      slot.set(image.bytes.toString('base64'));
      fetched[index] = { field: slot.field, bytes: image.bytes.length };
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, slots.length) }, worker));
  return { request: copy, fetched };
}
