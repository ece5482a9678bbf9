/**
 * zod schemas for what the worker reads from the A1111 v1.9.3 API (request rules: request-fields.ts).
 */
import { z } from 'zod';
import { jsonObject } from './request-fields.js';

/** POST /sdapi/v1/txt2img → 200. `info` is a JSON-encoded string, `images` base64 without a data: prefix. */
export const Txt2ImgResponseSchema = z.looseObject({
  images: z.array(z.string()),
  parameters: jsonObject,
  info: z.string(),
});
export type Txt2ImgResponse = z.infer<typeof Txt2ImgResponseSchema>;

/** The txt2img answer without its images (checked separately when they are located in the bytes). */
export const Txt2ImgRestSchema = z.object({ parameters: jsonObject, info: z.string() });

/** POST /sdapi/v1/extra-single-image → 200. */
export const ExtraSingleResponseSchema = z.looseObject({ html_info: z.string(), image: z.string() });

/** POST /sdapi/v1/extra-batch-images → 200. */
export const ExtraBatchResponseSchema = z.looseObject({ html_info: z.string(), images: z.array(z.string()) });

/** POST /sdapi/v1/png-info → 200: the infotext, the other text chunks, the infotext parsed. */
export const PngInfoResponseSchema = z.looseObject({ info: z.string(), items: jsonObject, parameters: jsonObject });

/** POST /sdapi/v1/interrogate → 200. */
export const InterrogateResponseSchema = z.looseObject({ caption: z.string() });

/** One item of GET /sdapi/v1/upscalers. */
export const UpscalerSchema = z.looseObject({ name: z.string() });
export type Upscaler = z.infer<typeof UpscalerSchema>;
export const UpscalerListSchema = z.array(UpscalerSchema);

/** One item of GET /sdapi/v1/loras (the built-in Lora extension): the file's stem and its alias. */
export const LoraSchema = z.looseObject({ name: z.string(), alias: z.string().nullable().optional() });
export type Lora = z.infer<typeof LoraSchema>;
export const LoraListSchema = z.array(LoraSchema);

/** One item of GET /sdapi/v1/sd-vae: `model_name` is the name override_settings.sd_vae takes. */
export const SdVaeSchema = z.looseObject({ model_name: z.string() });
export type SdVae = z.infer<typeof SdVaeSchema>;
export const SdVaeListSchema = z.array(SdVaeSchema);

/** GET /sdapi/v1/embeddings: the textual inversions A1111 loaded, and those it skipped (made for another model). */
export const EmbeddingsSchema = z.looseObject({
  loaded: z.record(z.string(), z.unknown()),
  skipped: z.record(z.string(), z.unknown()),
});
export type Embeddings = z.infer<typeof EmbeddingsSchema>;

/** GET /sdapi/v1/scripts: the lower-cased titles of every script of each tab, extensions' included. */
export const ScriptsListSchema = z.looseObject({ txt2img: z.array(z.string()), img2img: z.array(z.string()) });
export type ScriptsList = z.infer<typeof ScriptsListSchema>;

/**
 * GET /controlnet/model_list (the sd-webui-controlnet extension): each model as "stem [hash]", the hash
 * being A1111's short legacy hash of the file.
 */
export const ControlNetModelListSchema = z.looseObject({ model_list: z.array(z.string()) });

/** Any JSON answer (the read routes pass A1111's answer on as it is). */
export const AnyJsonSchema = z.unknown();

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
