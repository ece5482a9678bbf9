/**
 * zod schemas for what the worker sends to and reads from the A1111 v1.9.3 API.
 *
 * The txt2img request lists all 55 fields of v1.9.3's `StableDiffusionProcessingTxt2Img` model with the
 * rule the worker enforces for each. The rules are stricter than A1111's own (pydantic v1 turns `"20"`
 * into 20 and `20.7` into 20, and takes `null` for a step count only to crash later), because a job is
 * cheaper to reject before it reaches the GPU. Unknown keys are kept: extensions accept more than this.
 */
import { z } from 'zod';

/** One txt2img field: its schema (without `undefined`) and the rule in words, for error messages. */
export interface FieldRule {
  schema: z.ZodType;
  rule: string;
}

const MAX_SEED = Number.MAX_SAFE_INTEGER;

function wholeNumber(min: number, max: number): z.ZodNumber {
  return z.number().int().min(min).max(max);
}

function rule(schema: z.ZodType, text: string): FieldRule {
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
const jsonObject = z.record(z.string(), z.unknown());

/**
 * The v1.9.3 txt2img fields in A1111's own order, each with the rule the worker checks.
 *
 * @example
 * TXT2IMG_FIELDS.steps.rule; // 'a whole number from 1 to 1000'
 */
export const TXT2IMG_FIELDS = {
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
  denoising_strength: rule(z.number().min(0).max(1).nullable(), 'a number from 0 to 1, or null'),
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

export type Txt2ImgField = keyof typeof TXT2IMG_FIELDS;

export const TXT2IMG_FIELD_NAMES = Object.keys(TXT2IMG_FIELDS) as Txt2ImgField[];

/** A txt2img request as a plain object (values already checked against {@link TXT2IMG_FIELDS}). */
export type Txt2ImgRequest = Record<string, unknown> & {
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

/** POST /sdapi/v1/txt2img → 200. `info` is a JSON-encoded string, `images` base64 without a data: prefix. */
export const Txt2ImgResponseSchema = z.looseObject({
  images: z.array(z.string()),
  parameters: jsonObject,
  info: z.string(),
});
export type Txt2ImgResponse = z.infer<typeof Txt2ImgResponseSchema>;

/** The txt2img answer without its images (checked separately when they are located in the bytes). */
export const Txt2ImgRestSchema = z.object({ parameters: jsonObject, info: z.string() });

/** One item of GET /sdapi/v1/sd-models. */
export const SdModelSchema = z.looseObject({
  title: z.string(),
  model_name: z.string(),
  hash: z.string().nullable().optional(),
  sha256: z.string().nullable().optional(),
  filename: z.string(),
  config: z.string().nullable().optional(),
});
export type SdModel = z.infer<typeof SdModelSchema>;
export const SdModelListSchema = z.array(SdModelSchema);

/** One item of GET /sdapi/v1/samplers. */
export const SamplerSchema = z.looseObject({
  name: z.string(),
  aliases: z.array(z.string()),
  options: z.record(z.string(), z.unknown()),
});
export type Sampler = z.infer<typeof SamplerSchema>;
export const SamplerListSchema = z.array(SamplerSchema);

/** One item of GET /sdapi/v1/schedulers (new in 1.9.1). */
export const SchedulerSchema = z.looseObject({
  name: z.string(),
  label: z.string(),
  aliases: z.array(z.string()).nullable(),
  default_rho: z.number().nullable(),
  need_inner_model: z.boolean().nullable(),
});
export type Scheduler = z.infer<typeof SchedulerSchema>;
export const SchedulerListSchema = z.array(SchedulerSchema);

/** GET /sdapi/v1/options: every settings key; int-valued options arrive as floats. */
export const OptionsSchema = z.looseObject({
  sd_model_checkpoint: z.string().nullable().optional(),
});
export type Options = z.infer<typeof OptionsSchema>;

/** GET /sdapi/v1/progress. */
export const ProgressSchema = z.looseObject({
  progress: z.number(),
  eta_relative: z.number(),
  state: z.looseObject({
    skipped: z.boolean().optional(),
    interrupted: z.boolean().optional(),
    job: z.string().optional(),
    job_timestamp: z.string().optional(),
    job_count: z.number(),
    job_no: z.number(),
    sampling_step: z.number(),
    sampling_steps: z.number(),
  }),
  current_image: z.string().nullable().optional(),
  textinfo: z.string().nullable().optional(),
});
export type Progress = z.infer<typeof ProgressSchema>;

/** FastAPI's own error body: a string (`{"detail":"Not Found"}`) or a list of validation errors (422). */
export const FastApiErrorSchema = z.object({
  detail: z.union([
    z.string(),
    z.array(
      z.looseObject({
        loc: z.array(z.union([z.string(), z.number()])),
        msg: z.string(),
        type: z.string(),
      }),
    ),
  ]),
});

/** A1111's exception body (`api_middleware.handle_exception`): `error` is the exception class name. */
export const A1111ErrorSchema = z.looseObject({
  error: z.string(),
  detail: z.unknown().optional(),
  body: z.unknown().optional(),
  errors: z.unknown().optional(),
});
