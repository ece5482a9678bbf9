/**
 * The extras of v1.9.3 (`postprocessing.run_extras` with the Upscale, GFPGAN and CodeFormer scripts),
 * on real pixels: the upscale resizes the picture (bilinear here, where A1111 runs its upscaler model),
 * to a size that is a multiple of 8 as `Upscaler.upscale` makes it, then crops to the requested size in
 * "scale to" mode; face restoration only adds its info (there are no faces to restore). The answer's
 * PNG carries the input's text chunks plus `postprocessing`, and `html_info` is that infotext as HTML.
 */
import { UPSCALERS } from './catalog.js';
import { a1111Error } from './errors.js';
import type { OpenedImage } from './images.js';
import { encodePng } from './png.js';
import { pythonFloat } from './request-model.js';

export interface Picture {
  width: number;
  height: number;
  rgb: Buffer;
}

/** Bilinear resampling of 8-bit RGB. */
export function resize(source: Picture, width: number, height: number): Picture {
  if (width <= 0 || height <= 0) throw a1111Error(500, 'ValueError', '', 'height and width must be > 0');
  const rgb = Buffer.alloc(width * height * 3);
  const sx = source.width / width;
  const sy = source.height / height;
  for (let y = 0; y < height; y++) {
    const fy = Math.max(0, Math.min(source.height - 1, (y + 0.5) * sy - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(source.height - 1, y0 + 1);
    const wy = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.max(0, Math.min(source.width - 1, (x + 0.5) * sx - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(source.width - 1, x0 + 1);
      const wx = fx - x0;
      for (let c = 0; c < 3; c++) {
        const at = (xx: number, yy: number) => source.rgb[(yy * source.width + xx) * 3 + c]!;
        const top = at(x0, y0) * (1 - wx) + at(x1, y0) * wx;
        const bottom = at(x0, y1) * (1 - wx) + at(x1, y1) * wx;
        rgb[(y * width + x) * 3 + c] = Math.round(top * (1 - wy) + bottom * wy);
      }
    }
  }
  return { width, height, rgb };
}

/** `Image.new("RGB", (w, h))` with `picture` pasted at (left, top). */
function pasteOnBlack(picture: Picture, width: number, height: number, left: number, top: number): Picture {
  const rgb = Buffer.alloc(width * height * 3);
  for (let y = 0; y < picture.height; y++) {
    const ty = y + top;
    if (ty < 0 || ty >= height) continue;
    for (let x = 0; x < picture.width; x++) {
      const tx = x + left;
      if (tx < 0 || tx >= width) continue;
      picture.rgb.copy(rgb, (ty * width + tx) * 3, (y * picture.width + x) * 3, (y * picture.width + x) * 3 + 3);
    }
  }
  return { width, height, rgb };
}

/** `infotext_utils.quote`. */
function quote(value: string): string {
  return /[,\n:]/.test(value) ? JSON.stringify(value) : value;
}

/** `ui_common.plaintext_to_html`. */
export function plaintextToHtml(text: string): string {
  const escapeHtml = (line: string) =>
    line
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;')
      .replace(/'/g, '&#x27;');
  return `<p>${text.split('\n').map(escapeHtml).join('<br>\n')}</p>`;
}

export interface ExtrasRequest {
  /** The parsed model values. */
  values: Record<string, unknown>;
  /** The keys the body gave: a default is an unvalidated int (`2`), a given value a float (`2.0`). */
  given: ReadonlySet<string>;
}

type InfoValue = string | number;

function floatText(request: ExtrasRequest, key: string): string {
  const value = request.values[key] as number;
  return request.given.has(key) ? pythonFloat(value) : String(value);
}

function findUpscaler(name: unknown): string | null {
  if (name === 'None') return null;
  const found = UPSCALERS.find((candidate) => candidate === name && candidate !== 'None');
  if (!found) throw a1111Error(500, 'AssertionError', '', `could not find upscaler named ${String(name)}`);
  return found;
}

/** The Upscale script's `process`: the picture and the info it adds. */
function upscale(request: ExtrasRequest, picture: Picture, info: Map<string, InfoValue>): Picture {
  const v = request.values;
  const upscaler1 = findUpscaler(v['upscaler_1']);
  if (!upscaler1) return picture;
  const upscaler2 = findUpscaler(v['upscaler_2']);
  const toWidth = v['upscaling_resize_w'] as number;
  const toHeight = v['upscaling_resize_h'] as number;
  const scaleTo = v['resize_mode'] === 1;
  let scale: number;
  if (scaleTo) {
    scale = Math.max(toWidth / picture.width, toHeight / picture.height);
    info.set('Postprocess upscale to', `${toWidth}x${toHeight}`);
  } else {
    scale = v['upscaling_resize'] as number;
    info.set('Postprocess upscale by', floatText(request, 'upscaling_resize'));
  }
  const destWidth = Math.floor(Math.floor((picture.width * scale) / 8) * 8);
  const destHeight = Math.floor(Math.floor((picture.height * scale) / 8) * 8);
  let result = resize(picture, destWidth, destHeight);
  if (scaleTo && v['upscaling_crop'] === true) {
    result = pasteOnBlack(
      result,
      toWidth,
      toHeight,
      Math.floor(toWidth / 2) - Math.floor(result.width / 2),
      Math.floor(toHeight / 2) - Math.floor(result.height / 2),
    );
    info.set('Postprocess crop to', `${result.width}x${result.height}`);
  }
  info.set('Postprocess upscaler', upscaler1);
  if (upscaler2 && (v['extras_upscaler_2_visibility'] as number) > 0) info.set('Postprocess upscaler 2', upscaler2);
  return result;
}

function faceRestoration(request: ExtrasRequest, info: Map<string, InfoValue>): void {
  const v = request.values;
  const round3 = (value: number) => pythonFloat(Math.round(value * 1000) / 1000);
  if ((v['gfpgan_visibility'] as number) > 0) info.set('GFPGAN visibility', round3(v['gfpgan_visibility'] as number));
  if ((v['codeformer_visibility'] as number) > 0) {
    info.set('CodeFormer visibility', round3(v['codeformer_visibility'] as number));
    info.set('CodeFormer weight', round3(v['codeformer_weight'] as number));
  }
}

export interface ExtrasResult {
  /** The PNG, base64. */
  image: string;
  infotext: string;
}

/**
 * One picture through the extras.
 *
 * @example
 * const { image, infotext } = runExtras({ values, given }, opened);
 */
export function runExtras(request: ExtrasRequest, image: OpenedImage): ExtrasResult {
  const info = new Map<string, InfoValue>();
  let picture: Picture = { width: image.width, height: image.height, rgb: image.pixels() };
  picture = upscale(request, picture, info);
  faceRestoration(request, info);
  const infotext = [...info]
    .map(([key, value]) => (key === value ? key : `${key}: ${quote(String(value))}`))
    .join(', ');
  const text: Record<string, string> = { ...image.text, postprocessing: infotext };
  return { image: encodePng(picture.width, picture.height, picture.rgb, text).toString('base64'), infotext };
}
