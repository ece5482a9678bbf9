/**
 * `booting`: turns a job's raw input into a checked request for one A1111 operation, or refuses it
 * before anything is sent to A1111. Which operation: a plain input is txt2img, the envelope names any
 * other (envelope.ts). Known fields must follow their rule (src/a1111/request-fields.ts); every broken
 * rule is reported at once with the field, the value and the rule. For the generations, unknown keys go
 * through untouched (A1111 and its extensions take more than the worker knows) and a few common names
 * from other tools that A1111 would silently ignore get a hint; the other operations take their own
 * fields only. Inline images are checked and made raw base64 here; image URLs are fetched next
 * (image-inputs.ts).
 */
import type { PreparedJob } from '../../machines/job.types.js';
import type { Operation } from '../a1111/operations.js';
import type { A1111Request } from '../a1111/request-fields.js';
import { WorkerError } from '../errors.js';
import type { Logger } from '../log/index.js';
import type { ModelSource } from '../models/model-source.js';
import { describeValue, type InputProblem, invalidInput, isPlainObject, readOperation } from './envelope.js';
import { prepareImages } from './image-inputs.js';
import { MODEL_KEY, modelProblems, readNetworks, TOKEN_NAME, TOKEN_RULE } from './model-block.js';
import { OUTPUT_KEY, outputProblems, readOutputChoice } from './output-block.js';

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

/** Fields an operation cannot go without (A1111 would fail, or wait for the GPU and then fail). */
const REQUIRED: Record<string, { field: string; rule: string }[]> = {
  img2img: [{ field: 'init_images', rule: 'a list of one or more images (A1111 answers 404 "Init image not found")' }],
  'extra-single-image': [{ field: 'image', rule: 'an image to process' }],
  'extra-batch-images': [{ field: 'imageList', rule: 'a list of {"data": <an image>, "name": <text>}' }],
  'png-info': [{ field: 'image', rule: 'an image to read' }],
  interrogate: [{ field: 'image', rule: 'an image to caption' }],
};

/** The rules that tie fields together, per operation. */
function crossFieldProblems(operation: Operation, input: Record<string, unknown>): InputProblem[] {
  const problems: InputProblem[] = [];
  for (const { field, rule } of REQUIRED[operation.name] ?? []) {
    if (!Object.hasOwn(input, field) || input[field] === null) problems.push({ field, value: null, rule });
  }
  if (operation.kind !== 'generation') return problems;
  const overrides = input['override_settings'];
  if (isPlainObject(overrides) && Object.hasOwn(overrides, 'sd_model_checkpoint')) {
    const checkpoint = overrides['sd_model_checkpoint'];
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
  const images = input['init_images'];
  const batch = typeof input['batch_size'] === 'number' ? input['batch_size'] : 1;
  if (operation.name === 'img2img' && Array.isArray(images) && images.length > batch) {
    problems.push({
      field: 'init_images',
      value: `${images.length} images`,
      rule: `at most batch_size (${batch}) images: A1111 v1.9.3 fails with "bad number of images passed"`,
    });
  }
  return problems;
}

/** Whether an operation answers images, so a job of it may say how they come back (`output`). */
export function answersImages(operation: Operation): boolean {
  return operation.answer === 'images' || operation.answer === 'extra-single' || operation.answer === 'extra-batch';
}

/** What the checks of a job's input need to know of the worker. */
export interface InputLimits {
  maxPixels: number;
  /** The worker has a bucket to upload results to. */
  bucket: boolean;
}

/** The problems of a payload for an operation, in field order; empty when it is acceptable. */
export function findInputProblems(
  operation: Operation,
  input: Record<string, unknown>,
  limits: Pick<InputLimits, 'bucket'> = { bucket: false },
): InputProblem[] {
  const problems: InputProblem[] = [];
  const fields = operation.fields ?? {};
  const generation = operation.kind === 'generation';
  const images = answersImages(operation);
  for (const key of Object.keys(input)) {
    if (generation && key === MODEL_KEY) continue;
    if (images && key === OUTPUT_KEY) continue;
    if (Object.hasOwn(fields, key)) continue;
    if (TOKEN_NAME.test(key)) problems.push({ field: key, value: '***', rule: TOKEN_RULE });
    else if (!operation.openPayload && operation.fields) {
      problems.push({
        field: key,
        value: input[key],
        rule: `a field of ${operation.key}: ${Object.keys(fields).join(', ')}`,
      });
    }
  }
  if (generation && Object.hasOwn(input, MODEL_KEY)) problems.push(...modelProblems(input[MODEL_KEY]));
  if (images && Object.hasOwn(input, OUTPUT_KEY)) problems.push(...outputProblems(input[OUTPUT_KEY], limits.bucket));
  for (const [field, rule] of Object.entries(fields)) {
    if (!Object.hasOwn(input, field)) continue;
    if (!rule.schema.safeParse(input[field]).success) problems.push({ field, value: input[field], rule: rule.rule });
  }
  problems.push(...crossFieldProblems(operation, input));
  return problems;
}

/**
 * Checks the raw input of a job.
 *
 * @example
 * prepareJob({ prompt: 'a lighthouse', steps: 0 }, settings, log);
 * // throws WorkerError INVALID_INPUT: invalid input: steps = 0 breaks the rule "a whole number from 1 to 1000"
 */
export function prepareJob(input: unknown, settings: InputLimits, log: Logger): PreparedJob {
  if (!isPlainObject(input)) {
    const kind = input === null ? 'null' : Array.isArray(input) ? 'an array' : typeof input;
    const rule = 'an object: A1111 txt2img fields, or {"api": {...}, "payload": {...}}';
    throw new WorkerError(
      'INVALID_INPUT',
      `invalid input: input = ${describeValue(input)} breaks the rule "${rule}" (got ${kind})`,
      { details: { problems: [{ field: 'input', value: input ?? null, rule }] } },
    );
  }
  const { operation, payload } = readOperation(input);
  const problems = findInputProblems(operation, payload, settings);
  const generation = operation.kind === 'generation';
  const answersWithImages = answersImages(operation);
  // The worker's own blocks (`model` of a generation, `output` of an operation that answers images)
  // never reach A1111.
  const request: A1111Request = { ...payload };
  const modelBlock = generation ? payload[MODEL_KEY] : undefined;
  const outputBlock = answersWithImages ? payload[OUTPUT_KEY] : undefined;
  if (generation) delete request[MODEL_KEY];
  if (answersWithImages) delete request[OUTPUT_KEY];
  // Images are rewritten in place (data URLs to base64): the containers that hold them are the request's own.
  for (const key of ['init_images', 'imageList', 'alwayson_scripts']) {
    if (typeof request[key] === 'object' && request[key] !== null) request[key] = structuredClone(request[key]);
  }
  // The images are checked with the other fields, so one answer lists every broken rule.
  const images = prepareImages(operation, request, settings, (field) =>
    log.debug(`${field} is empty; it is left out (A1111 v1.9.3 fails on an empty image)`),
  );
  problems.push(...images.problems);
  if (problems.length > 0) throw invalidInput(problems);
  if (request['latent_mask'] === '') {
    delete request['latent_mask'];
    log.debug('latent_mask is empty; it is left out (A1111 v1.9.3 fails on any value but null beside a mask)');
  }

  const notes: string[] = [];
  if (generation) {
    const unknown = Object.keys(payload).filter(
      (key) => !Object.hasOwn(operation.fields ?? {}, key) && key !== MODEL_KEY && key !== OUTPUT_KEY,
    );
    if (unknown.length > 0) log.debug('passing unknown input keys through to A1111', { keys: unknown });
    for (const key of unknown) {
      const known = FOREIGN_NAMES.get(key);
      if (!known) continue;
      const note = `"${key}" is not an A1111 ${operation.name} field and A1111 ignores it; did you mean "${known}"?`;
      log.warn(note, { key, suggestion: known });
      notes.push(note);
    }
  } else if (!operation.fields && Object.keys(payload).length > 0 && operation.method === 'GET') {
    const note = `${operation.key} takes no payload; ${Object.keys(payload).join(', ')} ignored`;
    if (!(operation.name === 'progress' && Object.keys(payload).every((key) => key === 'skip_current_image'))) {
      notes.push(note);
    }
  }
  const block = modelBlock as (Partial<ModelSource> & Record<string, unknown>) | undefined;
  const model: ModelSource | null =
    generation && typeof block?.checkpoint === 'string'
      ? {
          checkpoint: block.checkpoint,
          ...(typeof block.url === 'string' ? { url: block.url } : {}),
          ...(typeof block.sha256 === 'string' ? { sha256: block.sha256 } : {}),
        }
      : null;
  const networks = generation ? readNetworks(modelBlock) : undefined;
  if (model) {
    // The model block is the worker's; A1111 gets the checkpoint as an override.
    request.override_settings = { ...(request.override_settings ?? {}), sd_model_checkpoint: model.checkpoint };
  }
  const checkpoint =
    operation.kind === 'generation'
      ? request.override_settings?.['sd_model_checkpoint']
      : operation.key === 'POST /sdapi/v1/options'
        ? request['sd_model_checkpoint']
        : undefined;
  return {
    operation: operation.key,
    request,
    checkpoint: typeof checkpoint === 'string' ? checkpoint : null,
    model,
    ...(networks ? { networks } : {}),
    ...(answersWithImages && outputBlock !== undefined ? { output: readOutputChoice(outputBlock) } : {}),
    imageUrls: images.urls,
    verify: operation.kind === 'generation' || operation.kind === 'image' || operation.key === 'POST /sdapi/v1/options',
    notes,
  };
}
