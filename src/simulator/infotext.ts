/**
 * `infotext_utils.parse_generation_parameters` of v1.9.3, with the options at their defaults and no
 * styles file: the infotext A1111 writes under a picture, read back into a dict. Parsed values are
 * strings ("20", "7.0"); the defaults it adds keep their Python types (0, 32, false).
 */

/** `\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)`, with Python's Unicode `\w`. */
const PARAM = /\s*([\p{L}\p{N}_][\p{L}\p{N}_ \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)/gu;
const IMAGE_SIZE = /^(\d+)x(\d+)$/;

function params(line: string): [string, string][] {
  // Python's findall: every match, empty ones included; a zero-width match at the end is skipped over.
  const found: [string, string][] = [];
  for (const match of line.matchAll(PARAM)) found.push([match[1]!, match[2]!]);
  return found;
}

function unquote(text: string): string {
  if (text.length === 0 || text[0] !== '"' || text.at(-1) !== '"') return text;
  try {
    return JSON.parse(text) as string;
  } catch {
    return text;
  }
}

/** `packaging.version.parse` of the infotext's Version, enough to compare v1.x releases; null otherwise. */
function versionOf(text: unknown): number[] | null {
  if (typeof text !== 'string') return null;
  const match = /^v?(\d+)\.(\d+)(?:\.(\d+))?(?:-(\d+))?/.exec(text);
  if (!match) return null;
  return [Number(match[1]), Number(match[2]), Number(match[3] ?? 0), Number(match[4] ?? 0)];
}

function olderThan(version: number[], than: number[]): boolean {
  for (let i = 0; i < than.length; i++) {
    if (version[i]! !== than[i]!) return version[i]! < than[i]!;
  }
  return false;
}

/** `prompt_parser.parse_prompt_attention` finds a weight other than 1: an unescaped ( or [ group. */
function usesEmphasis(text: string): boolean {
  return /(^|[^\\])[([]/.test(text) && /[^\\][)\]]/.test(text);
}

function restoreOldHiresFixParams(res: Record<string, unknown>): void {
  const first1 = res['First pass size-1'];
  const first2 = res['First pass size-2'];
  if (first1 === undefined || first2 === undefined) return;
  let width = Number(first1);
  let height = Number(first2);
  const finalWidth = Number(res['Size-1'] ?? 512);
  const finalHeight = Number(res['Size-2'] ?? 512);
  if (width === 0 || height === 0) {
    // processing.old_hires_fix_first_pass_dimensions
    const scale = Math.sqrt((512 * 512) / (finalWidth * finalHeight));
    width = Math.ceil((scale * finalWidth) / 64) * 64;
    height = Math.ceil((scale * finalHeight) / 64) * 64;
  }
  res['Size-1'] = width;
  res['Size-2'] = height;
  res['Hires resize-1'] = finalWidth;
  res['Hires resize-2'] = finalHeight;
}

const DEFAULTS: [string, unknown][] = [
  ['Hires sampler', 'Use same sampler'],
  ['Hires schedule type', 'Use same scheduler'],
  ['Hires checkpoint', 'Use same checkpoint'],
  ['Hires prompt', ''],
  ['Hires negative prompt', ''],
  ['Mask mode', 'Inpaint masked'],
  ['Masked content', 'original'],
  ['Inpaint area', 'Whole picture'],
  ['Masked area padding', 32],
];

const LATER_DEFAULTS: [string, unknown][] = [
  ['RNG', 'GPU'],
  ['Schedule type', 'Automatic'],
  ['Schedule max sigma', 0],
  ['Schedule min sigma', 0],
  ['Schedule rho', 0],
  ['VAE Encoder', 'Full'],
  ['VAE Decoder', 'Full'],
  ['FP8 weight', 'Disable'],
];

/**
 * @example
 * parseGenerationParameters('a cat\nSteps: 20, Sampler: Euler a, Seed: 1')['Steps']; // '20'
 */
export function parseGenerationParameters(text: string): Record<string, unknown> {
  const res: Record<string, unknown> = {};
  const lines = text.trim().split('\n');
  let last = lines.pop() ?? '';
  if (params(last).length < 3) {
    lines.push(last);
    last = '';
  }
  let prompt = '';
  let negative = '';
  let doneWithPrompt = false;
  for (const raw of lines) {
    let line = raw.trim();
    if (line.startsWith('Negative prompt:')) {
      doneWithPrompt = true;
      line = line.slice(16).trim();
    }
    if (doneWithPrompt) negative += (negative === '' ? '' : '\n') + line;
    else prompt += (prompt === '' ? '' : '\n') + line;
  }
  for (const [key, rawValue] of params(last)) {
    // `v[0]` of an empty value raises, and that pair is skipped.
    if (rawValue === '') continue;
    const value = rawValue[0] === '"' && rawValue.at(-1) === '"' ? unquote(rawValue) : rawValue;
    const size = IMAGE_SIZE.exec(value);
    if (size) {
      res[`${key}-1`] = size[1];
      res[`${key}-2`] = size[2];
    } else res[key] = value;
  }
  res['Prompt'] = prompt;
  res['Negative prompt'] = negative;
  if (!('Clip skip' in res)) res['Clip skip'] = '1';
  if (res['Hypernet'] !== undefined) {
    res['Prompt'] = `${prompt}<hypernet:${String(res['Hypernet'])}:${String(res['Hypernet strength'] ?? '1.0')}>`;
  }
  if (!('Hires resize-1' in res)) {
    res['Hires resize-1'] = 0;
    res['Hires resize-2'] = 0;
  }
  for (const [key, value] of DEFAULTS) if (!(key in res)) res[key] = value;
  restoreOldHiresFixParams(res);
  for (const [key, value] of LATER_DEFAULTS) if (!(key in res)) res[key] = value;
  if (!('Cache FP16 weight for LoRA' in res) && res['FP8 weight'] !== 'Disable')
    res['Cache FP16 weight for LoRA'] = false;
  if (!('Emphasis' in res) && (usesEmphasis(prompt) || usesEmphasis(negative))) res['Emphasis'] = 'Original';
  if (!('Refiner switch by sampling steps' in res)) res['Refiner switch by sampling steps'] = false;
  // infotext_versions.backcompat
  const version = versionOf(res['Version']);
  if (version) {
    if (olderThan(version, [1, 6, 0]) && String(res['Prompt']).includes('['))
      res['Old prompt editing timelines'] = true;
    if (olderThan(version, [1, 6, 0]) && ['DDIM', 'PLMS'].includes(String(res['Sampler'] ?? '')))
      res['Pad conds v0'] = true;
    if (olderThan(version, [1, 7, 0, 225])) res['Downcast alphas_cumprod'] = true;
    if (olderThan(version, [1, 8, 0]) && res['Refiner']) res['Refiner switch by sampling steps'] = true;
  }
  return res;
}
