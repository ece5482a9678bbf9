/**
 * `booting`: turns a job's raw input into a checked txt2img request, or refuses it before anything is
 * sent to A1111. Known fields must follow their rule (see `TXT2IMG_FIELDS`); every broken rule is
 * reported at once with the field, the value and the rule. Unknown keys go through untouched (A1111
 * and its extensions take more than the worker knows) and are noted; a few common names from other
 * tools that A1111 would silently ignore get a hint.
 */
import type { PreparedJob } from '../../machines/job.types.js';
import { TXT2IMG_FIELD_NAMES, TXT2IMG_FIELDS, type Txt2ImgField, type Txt2ImgRequest } from '../a1111/schemas.js';
import { WorkerError } from '../errors.js';
import type { Logger } from '../log/index.js';
import { fileNameProblem, type ModelSource } from '../models/model-source.js';

export interface InputProblem {
  field: string;
  value: unknown;
  rule: string;
}

/**
 * Names other APIs use that A1111 ignores without a word, and what A1111 calls them. A Map, not an
 * object: a job's key must never find `constructor` or `__proto__` of an object's prototype.
 */
const FOREIGN_NAMES = new Map<string, string>([
  ['num_inference_steps', 'steps'],
  ['guidance_scale', 'cfg_scale'],
  ['num_images', 'batch_size'],
  ['num_outputs', 'batch_size'],
  ['sampler', 'sampler_name'],
  ['negative', 'negative_prompt'],
  ['image_width', 'width'],
  ['image_height', 'height'],
]);

const KNOWN = new Set<string>(TXT2IMG_FIELD_NAMES);

/** The worker's own input key, removed before the request goes to A1111. */
const MODEL_KEY = 'model';
const MODEL_KEYS = new Set(['checkpoint', 'url', 'sha256']);
/** Keys and URL parameters that carry credentials; the job input must never hold one. */
const TOKEN_NAME = /^(.*_)?(token|api[-_]?key|apikey|access[-_]?token|auth|authorization|password|secret)$/i;
const TOKEN_RULE = 'no credentials: Hugging Face and Civitai tokens come from HF_TOKEN and CIVITAI_TOKEN on the worker';

function modelProblems(model: unknown): InputProblem[] {
  if (typeof model !== 'object' || model === null || Array.isArray(model)) {
    return [
      {
        field: 'model',
        value: model,
        rule: 'an object {"checkpoint": "name.safetensors", "url"?: "https://...", "sha256"?: "..."}',
      },
    ];
  }
  const block = model as Record<string, unknown>;
  const problems: InputProblem[] = [];
  for (const key of Object.keys(block)) {
    if (TOKEN_NAME.test(key)) problems.push({ field: `model.${key}`, value: '***', rule: TOKEN_RULE });
    else if (!MODEL_KEYS.has(key))
      problems.push({ field: `model.${key}`, value: block[key], rule: 'one of checkpoint, url, sha256' });
  }
  const checkpoint = block['checkpoint'];
  const nameProblem = typeof checkpoint === 'string' ? fileNameProblem(checkpoint) : 'it must be text';
  if (nameProblem) {
    problems.push({
      field: 'model.checkpoint',
      value: checkpoint,
      rule: `a plain file name ending in .safetensors or .ckpt (${nameProblem})`,
    });
  }
  const url = block['url'];
  if (url !== undefined) {
    let parsed: URL | null = null;
    try {
      parsed = typeof url === 'string' ? new URL(url) : null;
    } catch {
      parsed = null;
    }
    if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
      problems.push({ field: 'model.url', value: url, rule: 'an absolute http(s) URL' });
    } else if (parsed.username || parsed.password || [...parsed.searchParams.keys()].some((k) => TOKEN_NAME.test(k))) {
      problems.push({
        field: 'model.url',
        value: `${parsed.protocol}//${parsed.host}${parsed.pathname}`,
        rule: TOKEN_RULE,
      });
    }
  }
  const sha256 = block['sha256'];
  if (sha256 !== undefined && (typeof sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(sha256))) {
    problems.push({ field: 'model.sha256', value: sha256, rule: "the 64 hexadecimal digits of the file's SHA-256" });
  }
  return problems;
}

function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (value === undefined) return 'undefined';
  const json = JSON.stringify(value);
  return json.length > 80 ? `${json.slice(0, 80)}…` : json;
}

/** The problems of one input object, in field order; empty when the input is acceptable. */
export function findInputProblems(input: Record<string, unknown>): InputProblem[] {
  const problems: InputProblem[] = [];
  for (const key of Object.keys(input)) {
    if (key !== MODEL_KEY && !KNOWN.has(key) && TOKEN_NAME.test(key))
      problems.push({ field: key, value: '***', rule: TOKEN_RULE });
  }
  if (MODEL_KEY in input) problems.push(...modelProblems(input[MODEL_KEY]));
  for (const field of TXT2IMG_FIELD_NAMES) {
    if (!(field in input)) continue;
    const value = input[field];
    if (!TXT2IMG_FIELDS[field as Txt2ImgField].schema.safeParse(value).success) {
      problems.push({ field, value, rule: TXT2IMG_FIELDS[field].rule });
    }
  }
  const overrides = input['override_settings'];
  if (overrides && typeof overrides === 'object' && 'sd_model_checkpoint' in overrides) {
    const checkpoint = (overrides as Record<string, unknown>)['sd_model_checkpoint'];
    if (typeof checkpoint !== 'string' || checkpoint.trim() === '') {
      problems.push({
        field: 'override_settings.sd_model_checkpoint',
        value: checkpoint,
        rule: 'a checkpoint name from GET /sdapi/v1/sd-models',
      });
    }
  }
  if (
    input['enable_hr'] === true &&
    (input['denoising_strength'] === undefined || input['denoising_strength'] === null)
  ) {
    problems.push({
      field: 'denoising_strength',
      value: input['denoising_strength'] ?? null,
      rule: 'a number from 0 to 1 when enable_hr is true (A1111 v1.9.3 has no default for the hires pass)',
    });
  }
  return problems;
}

/**
 * Checks the raw input of a job.
 *
 * @example
 * prepareJob({ prompt: 'a lighthouse', steps: 0 }, log);
 * // throws WorkerError INVALID_INPUT: invalid input: steps = 0 breaks the rule "a whole number from 1 to 1000"
 */
export function prepareJob(input: unknown, log: Logger): PreparedJob {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    const kind = input === null ? 'null' : Array.isArray(input) ? 'an array' : typeof input;
    throw new WorkerError(
      'INVALID_INPUT',
      `invalid input: input = ${describeValue(input)} breaks the rule "an object of A1111 txt2img fields" (got ${kind})`,
      { details: { problems: [{ field: 'input', value: input ?? null, rule: 'an object of A1111 txt2img fields' }] } },
    );
  }
  const raw = input as Record<string, unknown>;
  const problems = findInputProblems(raw);
  if (problems.length > 0) {
    const summary = problems
      .map((p) => `${p.field} = ${describeValue(p.value)} breaks the rule "${p.rule}"`)
      .join('; ');
    throw new WorkerError('INVALID_INPUT', `invalid input: ${summary}`, {
      details: { problems: problems.map((p) => ({ ...p, value: p.value ?? null })) },
    });
  }

  const notes: string[] = [];
  const unknown = Object.keys(raw).filter((key) => !KNOWN.has(key) && key !== MODEL_KEY);
  if (unknown.length > 0) {
    log.debug('passing unknown input keys through to A1111', { keys: unknown });
    for (const key of unknown) {
      const known = FOREIGN_NAMES.get(key);
      if (!known) continue;
      const note = `"${key}" is not an A1111 txt2img field and A1111 ignores it; did you mean "${known}"?`;
      log.warn(note, { key, suggestion: known });
      notes.push(note);
    }
  }
  const { [MODEL_KEY]: modelBlock, ...fields } = raw;
  const request = fields as Txt2ImgRequest;
  const model = (modelBlock as ModelSource | undefined) ?? null;
  if (model) {
    // The model block is the worker's; A1111 gets the checkpoint as an override.
    request.override_settings = { ...(request.override_settings ?? {}), sd_model_checkpoint: model.checkpoint };
  }
  const checkpoint = request.override_settings?.['sd_model_checkpoint'];
  return {
    request,
    checkpoint: typeof checkpoint === 'string' ? checkpoint : null,
    model: model ? { ...model } : null,
    notes,
  };
}
