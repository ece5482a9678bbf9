/**
 * What an A1111 v1.9.3 installation lists: its 19 samplers and 6 schedulers (exact names, aliases and
 * options as GET /samplers and /schedulers return them), the upscalers, the always-on scripts and the
 * default options. Values follow the API contract; option values that are ints in Python come back as
 * floats (pydantic's typemap), which JSON shows as `1.0` in A1111 and as `1` here.
 */

export interface SamplerEntry {
  name: string;
  aliases: string[];
  options: Record<string, string>;
}

const karras = { scheduler: 'karras' };

export const SAMPLERS: readonly SamplerEntry[] = [
  { name: 'DPM++ 2M', aliases: ['k_dpmpp_2m'], options: { ...karras } },
  {
    name: 'DPM++ SDE',
    aliases: ['k_dpmpp_sde'],
    options: { ...karras, second_order: 'True', brownian_noise: 'True' },
  },
  {
    name: 'DPM++ 2M SDE',
    aliases: ['k_dpmpp_2m_sde'],
    options: { scheduler: 'exponential', brownian_noise: 'True' },
  },
  {
    name: 'DPM++ 2M SDE Heun',
    aliases: ['k_dpmpp_2m_sde_heun'],
    options: { scheduler: 'exponential', brownian_noise: 'True', solver_type: 'heun' },
  },
  {
    name: 'DPM++ 2S a',
    aliases: ['k_dpmpp_2s_a'],
    options: { ...karras, uses_ensd: 'True', second_order: 'True' },
  },
  {
    name: 'DPM++ 3M SDE',
    aliases: ['k_dpmpp_3m_sde'],
    options: { scheduler: 'exponential', discard_next_to_last_sigma: 'True', brownian_noise: 'True' },
  },
  { name: 'Euler a', aliases: ['k_euler_a', 'k_euler_ancestral'], options: { uses_ensd: 'True' } },
  { name: 'Euler', aliases: ['k_euler'], options: {} },
  { name: 'LMS', aliases: ['k_lms'], options: {} },
  { name: 'Heun', aliases: ['k_heun'], options: { second_order: 'True' } },
  {
    name: 'DPM2',
    aliases: ['k_dpm_2'],
    options: { ...karras, discard_next_to_last_sigma: 'True', second_order: 'True' },
  },
  {
    name: 'DPM2 a',
    aliases: ['k_dpm_2_a'],
    options: { ...karras, discard_next_to_last_sigma: 'True', uses_ensd: 'True', second_order: 'True' },
  },
  { name: 'DPM fast', aliases: ['k_dpm_fast'], options: { uses_ensd: 'True' } },
  { name: 'DPM adaptive', aliases: ['k_dpm_ad'], options: { uses_ensd: 'True' } },
  { name: 'Restart', aliases: ['restart'], options: { ...karras, second_order: 'True' } },
  { name: 'DDIM', aliases: ['ddim'], options: {} },
  { name: 'PLMS', aliases: ['plms'], options: {} },
  { name: 'UniPC', aliases: ['unipc'], options: {} },
  { name: 'LCM', aliases: ['k_lcm'], options: {} },
];

export interface SchedulerEntry {
  name: string;
  label: string;
  aliases: string[] | null;
  default_rho: number | null;
  need_inner_model: boolean | null;
}

export const SCHEDULERS: readonly SchedulerEntry[] = [
  { name: 'automatic', label: 'Automatic', aliases: null, default_rho: -1, need_inner_model: false },
  { name: 'uniform', label: 'Uniform', aliases: null, default_rho: null, need_inner_model: true },
  { name: 'karras', label: 'Karras', aliases: null, default_rho: 7.0, need_inner_model: false },
  { name: 'exponential', label: 'Exponential', aliases: null, default_rho: null, need_inner_model: false },
  { name: 'polyexponential', label: 'Polyexponential', aliases: null, default_rho: 1.0, need_inner_model: false },
  { name: 'sgm_uniform', label: 'SGM Uniform', aliases: ['SGMUniform'], default_rho: null, need_inner_model: true },
];

export const UPSCALERS = [
  'None',
  'Lanczos',
  'Nearest',
  'ESRGAN_4x',
  'LDSR',
  'R-ESRGAN 4x+',
  'R-ESRGAN 4x+ Anime6B',
  'ScuNET GAN',
  'ScuNET PSNR',
  'SwinIR 4x',
] as const;

export const LATENT_UPSCALE_MODES = [
  'Latent',
  'Latent (antialiased)',
  'Latent (bicubic)',
  'Latent (bicubic antialiased)',
  'Latent (nearest)',
  'Latent (nearest-exact)',
] as const;

/**
 * Lower-cased titles of the always-on scripts: a stock v1.9.3's, and those of the extensions the
 * simulated install has (ControlNet, ADetailer, ReActor), as the images of RunPod A1111 workers ship them.
 */
export const ALWAYSON_SCRIPTS = [
  'extra options',
  'hypertile',
  'refiner',
  'seed',
  'sampler',
  'controlnet',
  'adetailer',
  'reactor',
  'comments',
] as const;

/** GET /sdapi/v1/options of a fresh install (an excerpt of the 400-odd keys; enough for clients). */
export function defaultOptions(): Record<string, unknown> {
  return {
    samples_save: true,
    samples_format: 'png',
    samples_filename_pattern: '',
    save_images_add_number: true,
    grid_save: true,
    return_grid: true,
    enable_pnginfo: true,
    jpeg_quality: 80,
    outdir_samples: '',
    sd_model_checkpoint: null,
    sd_checkpoints_limit: 1,
    sd_checkpoints_keep_in_cpu: true,
    sd_checkpoint_cache: 0,
    sd_checkpoint_hash: '',
    sd_vae: 'Automatic',
    sd_vae_overrides_per_model_preferences: true,
    CLIP_stop_at_last_layers: 1,
    eta_noise_seed_delta: 0,
    face_restoration: false,
    face_restoration_model: 'CodeFormer',
    tiling: false,
    hide_samplers: [],
    show_progress_every_n_steps: 10,
    live_previews_enable: true,
    add_model_hash_to_info: true,
    add_model_name_to_info: true,
    add_version_to_infotext: true,
    s_churn: 0.0,
    s_min_uncond: 0.0,
    s_noise: 1.0,
    s_tmin: 0.0,
    s_tmax: 0.0,
    eta_ddim: 0.0,
    eta_ancestral: 1.0,
    token_merging_ratio: 0.0,
    upscaler_for_img2img: null,
    api_enable_requests: true,
    api_forbid_local_requests: true,
  };
}

/**
 * The scripts of a stock v1.9.3 (GET /sdapi/v1/scripts lists them in this order): the selectable ones a
 * request may name in `script_name`, and the rest, always on. "Hypertile" keeps its capital letter.
 */
const IMG2IMG_ONLY = ['img2img alternative test', 'loopback', 'outpainting mk2', "poor man's outpainting"];
const SELECTABLE = ['prompt matrix', 'prompts from file or textbox'];
const ALWAYS_ON = ['extra options', 'Hypertile'];
/** The extensions' scripts, after the built-in ones, in their folders' order. */
const EXTENSION_SCRIPTS = ['adetailer', 'controlnet', 'reactor'];
const PROCESSING = ['refiner', 'sampler', 'seed'];

export const SCRIPTS = {
  txt2img: {
    listed: [...SELECTABLE, 'x/y/z plot', ...ALWAYS_ON, ...EXTENSION_SCRIPTS, ...PROCESSING],
    selectable: [...SELECTABLE, 'x/y/z plot'],
  },
  img2img: {
    listed: [
      ...IMG2IMG_ONLY,
      ...SELECTABLE,
      'sd upscale',
      'x/y/z plot',
      ...ALWAYS_ON,
      'soft inpainting',
      ...EXTENSION_SCRIPTS,
      ...PROCESSING,
    ],
    selectable: [...IMG2IMG_ONLY, ...SELECTABLE, 'sd upscale', 'x/y/z plot'],
  },
} as const satisfies Record<string, { listed: readonly string[]; selectable: readonly string[] }>;

/** The six R-ESRGAN models GET /realesrgan-models always lists, with their download URLs as `path`. */
export const REALESRGAN_MODELS = [
  [
    'R-ESRGAN General 4xV3',
    'https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0/realesr-general-x4v3.pth',
    4,
  ],
  [
    'R-ESRGAN General WDN 4xV3',
    'https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0/realesr-general-wdn-x4v3.pth',
    4,
  ],
  [
    'R-ESRGAN AnimeVideo',
    'https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0/realesr-animevideov3.pth',
    4,
  ],
  ['R-ESRGAN 4x+', 'https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth', 4],
  [
    'R-ESRGAN 4x+ Anime6B',
    'https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth',
    4,
  ],
  ['R-ESRGAN 2x+', 'https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth', 2],
].map(([name, path, scale]) => ({ name, path, scale }));

/** GET /sdapi/v1/script-info: the scripts with controls, each with its arguments (a short excerpt). */
export function scriptInfo(): Record<string, unknown>[] {
  const arg = (label: string, value: unknown, extra: Record<string, unknown> = {}) => ({
    label,
    value,
    minimum: null,
    maximum: null,
    step: null,
    choices: null,
    ...extra,
  });
  const seed = {
    name: 'seed',
    is_alwayson: true,
    args: [
      arg('Seed', -1),
      arg('Variation seed', -1),
      arg('Variation strength', 0, { minimum: 0, maximum: 1, step: 0.01 }),
    ],
  };
  const refiner = {
    name: 'refiner',
    is_alwayson: true,
    args: [
      arg('Refiner', false),
      arg('Checkpoint', ''),
      arg('Switch at', 0.8, { minimum: 0.01, maximum: 1, step: 0.01 }),
    ],
  };
  const matrix = {
    name: 'prompt matrix',
    is_alwayson: false,
    args: [arg('Put variable parts at start of prompt', false), arg('Use different seed for each picture', false)],
  };
  const loopback = {
    name: 'loopback',
    is_alwayson: false,
    args: [arg('Loops', 4, { minimum: 1, maximum: 32, step: 1 }), arg('Final denoising strength', 0.5)],
  };
  return [
    ...[matrix, refiner, seed].map((script) => ({ ...script, is_img2img: false })),
    ...[loopback, matrix, refiner, seed].map((script) => ({ ...script, is_img2img: true })),
  ];
}
