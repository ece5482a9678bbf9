/**
 * The request fields of every A1111 v1.9.3 operation the worker sends, each with the rule the worker
 * enforces (from `modules/api/models.py` and the processing classes of v1.9.3).
 *
 * The rules are stricter than A1111's own (pydantic v1 turns `"20"` into 20 and `20.7` into 20, and
 * takes `null` for a step count only to crash later), because a job is cheaper to reject before it
 * reaches the GPU. Unknown keys are kept for the generations (extensions accept more than this).
 */
import { z } from 'zod';

/** One request field: its schema (without `undefined`) and the rule in words, for error messages. */
export interface FieldRule {
  schema: z.ZodType;
  rule: string;
}

const MAX_SEED = Number.MAX_SAFE_INTEGER;

function wholeNumber(min: number, max: number): z.ZodNumber {
  return z.number().int().min(min).max(max);
}

export function rule(schema: z.ZodType, text: string): FieldRule {
  return { schema, rule: text };
}

const text = rule(z.string(), 'text');
const textOrNull = rule(z.string().nullable(), 'text or null');
const flag = rule(z.boolean(), 'true or false');
const flagOrNull = rule(z.boolean().nullable(), 'true, false or null');
const optionalNonNegative = rule(z.number().min(0).nullable(), 'a number ≥ 0, or null');
const dimension = rule(
  wholeNumber(64, 2048).multipleOf(8),
  'a whole number from 64 to 2048 that is a multiple of 8 (Stable Diffusion works on 8×8 latent cells)',
);
// A1111 takes null (and -1) for a random seed (processing.py `get_fixed_seed`).
const seed = rule(
  wholeNumber(-1, MAX_SEED).nullable(),
  'a whole number ≥ -1, or null (-1 and null pick a random seed)',
);
const fraction = rule(z.number().min(0).max(1), 'a number from 0 to 1');
export const jsonObject = z.record(z.string(), z.unknown());

/** The fields txt2img and img2img share (StableDiffusionProcessing), in A1111's order, but for denoising_strength. */
const PROCESSING_HEAD = {
  prompt: text,
  negative_prompt: text,
  styles: rule(z.array(z.string()).nullable(), 'a list of style names, or null'),
  seed,
  subseed: seed,
  subseed_strength: fraction,
  seed_resize_from_h: rule(wholeNumber(-1, 8192), 'a whole number from -1 to 8192'),
  seed_resize_from_w: rule(wholeNumber(-1, 8192), 'a whole number from -1 to 8192'),
  sampler_name: rule(z.string().min(1).nullable(), 'a sampler name from GET /sdapi/v1/samplers, or null'),
  scheduler: rule(z.string().min(1).nullable(), 'a scheduler name from GET /sdapi/v1/schedulers, or null'),
  batch_size: rule(wholeNumber(1, 64), 'a whole number from 1 to 64'),
  n_iter: rule(wholeNumber(1, 100), 'a whole number from 1 to 100'),
  steps: rule(wholeNumber(1, 1000), 'a whole number from 1 to 1000'),
  cfg_scale: rule(z.number().min(0).max(100), 'a number from 0 to 100'),
  width: dimension,
  height: dimension,
  restore_faces: flagOrNull,
  tiling: flagOrNull,
  do_not_save_samples: flag,
  do_not_save_grid: flag,
  eta: optionalNonNegative,
} as const satisfies Record<string, FieldRule>;

const PROCESSING_TAIL = {
  s_min_uncond: optionalNonNegative,
  s_churn: optionalNonNegative,
  s_tmax: optionalNonNegative,
  s_tmin: optionalNonNegative,
  s_noise: optionalNonNegative,
  override_settings: rule(jsonObject.nullable(), 'an object of A1111 option names to values, or null'),
  override_settings_restore_afterwards: flag,
  refiner_checkpoint: textOrNull,
  refiner_switch_at: rule(z.number().min(0).max(1).nullable(), 'a number from 0 to 1, or null'),
  disable_extra_networks: flag,
  firstpass_image: textOrNull,
  comments: rule(jsonObject.nullable(), 'an object, or null'),
} as const satisfies Record<string, FieldRule>;

/** The fields both generation routes append. */
const GENERATION_EXTRAS = {
  force_task_id: textOrNull,
  sampler_index: rule(z.string().min(1), 'a sampler name from GET /sdapi/v1/samplers'),
  script_name: textOrNull,
  script_args: rule(z.array(z.unknown()), 'a list'),
  send_images: flag,
  save_images: flag,
  alwayson_scripts: rule(
    z.record(z.string(), z.looseObject({ args: z.array(z.unknown()).optional() })),
    'an object of script titles to {"args": [...]}',
  ),
  infotext: textOrNull,
} as const satisfies Record<string, FieldRule>;

/**
 * The 55 v1.9.3 txt2img fields in A1111's own order, each with the rule the worker checks.
 *
 * @example
 * TXT2IMG_FIELDS.steps.rule; // 'a whole number from 1 to 1000'
 */
export const TXT2IMG_FIELDS = {
  ...PROCESSING_HEAD,
  denoising_strength: rule(z.number().min(0).max(1).nullable(), 'a number from 0 to 1, or null'),
  ...PROCESSING_TAIL,
  enable_hr: flag,
  firstphase_width: rule(wholeNumber(0, 8192), 'a whole number from 0 to 8192'),
  firstphase_height: rule(wholeNumber(0, 8192), 'a whole number from 0 to 8192'),
  hr_scale: rule(z.number().min(1).max(8), 'a number from 1 to 8'),
  hr_upscaler: textOrNull,
  hr_second_pass_steps: rule(wholeNumber(0, 1000), 'a whole number from 0 to 1000'),
  hr_resize_x: rule(wholeNumber(0, 8192), 'a whole number from 0 to 8192'),
  hr_resize_y: rule(wholeNumber(0, 8192), 'a whole number from 0 to 8192'),
  hr_checkpoint_name: textOrNull,
  hr_sampler_name: rule(z.string().min(1).nullable(), 'a sampler name from GET /sdapi/v1/samplers, or null'),
  hr_scheduler: rule(z.string().min(1).nullable(), 'a scheduler name from GET /sdapi/v1/schedulers, or null'),
  hr_prompt: text,
  hr_negative_prompt: text,
  ...GENERATION_EXTRAS,
} as const satisfies Record<string, FieldRule>;

const imageText = rule(z.string().min(1), 'an image: base64, a data: URL or an http(s) URL');

/**
 * The 57 v1.9.3 img2img fields: txt2img's processing fields, then img2img's own (init images, resize,
 * inpainting), then the fields both routes append.
 */
export const IMG2IMG_FIELDS = {
  ...PROCESSING_HEAD,
  // A plain float in img2img: null answers 422.
  denoising_strength: fraction,
  ...PROCESSING_TAIL,
  init_images: rule(
    z.array(z.string().min(1)).min(1),
    'a list of one or more images (base64, data: URLs or http(s) URLs)',
  ),
  resize_mode: rule(
    wholeNumber(0, 3),
    'a whole number from 0 to 3 (0 just resize, 1 crop and resize, 2 resize and fill, 3 latent upscale)',
  ),
  image_cfg_scale: rule(z.number().min(0).max(100).nullable(), 'a number from 0 to 100, or null'),
  mask: rule(z.string().nullable(), 'an image (base64, a data: URL or an http(s) URL), or null'),
  mask_blur_x: rule(wholeNumber(0, 256), 'a whole number from 0 to 256'),
  mask_blur_y: rule(wholeNumber(0, 256), 'a whole number from 0 to 256'),
  mask_blur: rule(wholeNumber(0, 256).nullable(), 'a whole number from 0 to 256, or null'),
  mask_round: flag,
  inpainting_fill: rule(
    wholeNumber(0, 3),
    'a whole number from 0 to 3 (0 fill, 1 original, 2 latent noise, 3 latent nothing)',
  ),
  inpaint_full_res: flag,
  inpaint_full_res_padding: rule(wholeNumber(0, 1024), 'a whole number from 0 to 1024'),
  inpainting_mask_invert: rule(wholeNumber(0, 1), '0 (inpaint the masked area) or 1 (inpaint the rest)'),
  initial_noise_multiplier: optionalNonNegative,
  // v1.9.3 never decodes it: a value beside a mask crashes the generation (processing.py). An empty
  // string (what some clients send by default) is left out.
  latent_mask: rule(z.union([z.null(), z.literal('')]), 'null (A1111 v1.9.3 fails on any other value)'),
  include_init_images: flag,
  ...GENERATION_EXTRAS,
} as const satisfies Record<string, FieldRule>;

const visibility = rule(z.number().min(0).max(1), 'a number from 0 to 1');

/** ExtrasBaseRequest: what extra-single-image and extra-batch-images share. */
const EXTRAS_BASE = {
  resize_mode: rule(
    z.union([z.literal(0), z.literal(1)]),
    '0 (scale by upscaling_resize) or 1 (scale to upscaling_resize_w × _h)',
  ),
  show_extras_results: flag,
  gfpgan_visibility: visibility,
  codeformer_visibility: visibility,
  codeformer_weight: visibility,
  upscaling_resize: rule(z.number().gt(0).max(16), 'a number above 0, at most 16'),
  upscaling_resize_w: rule(wholeNumber(1, 16384), 'a whole number from 1 to 16384'),
  upscaling_resize_h: rule(wholeNumber(1, 16384), 'a whole number from 1 to 16384'),
  upscaling_crop: flag,
  upscaler_1: rule(z.string().min(1), 'an upscaler name from GET /sdapi/v1/upscalers, or "None"'),
  upscaler_2: rule(z.string().min(1), 'an upscaler name from GET /sdapi/v1/upscalers, or "None"'),
  extras_upscaler_2_visibility: visibility,
  upscale_first: flag,
} as const satisfies Record<string, FieldRule>;

export const EXTRA_SINGLE_FIELDS = { ...EXTRAS_BASE, image: imageText } as const satisfies Record<string, FieldRule>;

export const EXTRA_BATCH_FIELDS = {
  ...EXTRAS_BASE,
  imageList: rule(
    z.array(z.looseObject({ data: z.string().min(1), name: z.string() })),
    'a list of {"data": <an image>, "name": <text>}',
  ),
} as const satisfies Record<string, FieldRule>;

export const PNG_INFO_FIELDS = { image: imageText } as const satisfies Record<string, FieldRule>;

export const INTERROGATE_FIELDS = {
  image: imageText,
  model: rule(z.enum(['clip', 'deepdanbooru']), '"clip" or "deepdanbooru"'),
} as const satisfies Record<string, FieldRule>;

/** A request to A1111 as a plain object (values already checked against their operation's rules). */
export type A1111Request = Record<string, unknown> & {
  prompt?: string;
  sampler_name?: string | null;
  sampler_index?: string;
  scheduler?: string | null;
  hr_sampler_name?: string | null;
  hr_scheduler?: string | null;
  override_settings?: Record<string, unknown> | null;
  batch_size?: number;
  n_iter?: number;
  steps?: number;
  width?: number;
  height?: number;
  seed?: number;
};

/** A txt2img request (the most common A1111 request). */
export type Txt2ImgRequest = A1111Request;
