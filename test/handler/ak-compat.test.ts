/**
 * The documented requests of ashleykleynhans/runpod-worker-a1111 (docs/api/**), sent unchanged, and
 * what its clients read back: `output.images` a list of bare base64 pictures for the generations, the
 * A1111 JSON for the rest, `output: null` for the writes. The simulated install has the checkpoints and
 * extensions those examples name.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { jpegImage, pngImage } from '../support/images.js';
import { decodePng } from '../support/png.js';
import { simulator } from '../support/simulator.js';
import { runPodResult, testWorker } from '../support/worker.js';

const face = jpegImage(64, 64).toString('base64');
const source = pngImage(64, 64, 11).toString('base64');

const sdxl = {
  override_settings: { sd_model_checkpoint: 'sd_xl_base_1.0', sd_vae: 'sdxl_vae.safetensors' },
  override_settings_restore_afterwards: true,
  refiner_checkpoint: 'sd_xl_refiner_1.0',
  refiner_switch_at: 0.8,
};
const common = {
  negative_prompt: '',
  seed: -1,
  batch_size: 1,
  sampler_name: 'DPM++ SDE',
  sampler_index: 'DPM++ SDE',
  scheduler: 'karras',
};
const unit = {
  resize_mode: 'Crop and Resize',
  lowvram: false,
  processor_res: 512,
  threshold_a: 75,
  threshold_b: 75,
  guidance: 1,
  guidance_start: 0,
  guidance_end: 1,
  control_mode: 'Balanced',
  pixel_perfect: false,
};

/** The base payload of the ADetailer and ReActor examples. */
const portrait = {
  ...common,
  prompt: 'a portrait',
  steps: 3,
  cfg_scale: 7,
  width: 128,
  height: 128,
  restore_faces: false,
};

/** Sizes and steps are the documented ones, made small where they only cost the simulator time. */
const GENERATIONS: [string, string, Record<string, unknown>][] = [
  [
    'txt2img',
    '/sdapi/v1/txt2img',
    {
      ...sdxl,
      ...common,
      prompt: 'an astronaut riding a horse',
      steps: 3,
      cfg_scale: 7,
      width: 128,
      height: 128,
      restore_faces: false,
    },
  ],
  [
    'img2img',
    '/sdapi/v1/img2img',
    {
      init_images: [source],
      ...sdxl,
      ...common,
      prompt: 'at the ocean',
      denoising_strength: 0.75,
      steps: 3,
      cfg_scale: 10,
      width: 128,
      height: 128,
      restore_faces: true,
    },
  ],
  [
    'img2img-controlnet',
    '/sdapi/v1/img2img',
    {
      init_images: [source],
      ...sdxl,
      ...common,
      prompt: 'an astronaut riding a horse',
      denoising_strength: 0.75,
      steps: 3,
      cfg_scale: 7,
      width: 96,
      height: 128,
      restore_faces: false,
      alwayson_scripts: {
        controlnet: { args: [{ module: 'canny', model: 'control_v11p_sd15_canny', weight: 1, ...unit }] },
      },
    },
  ],
  [
    'txt2img-instantid',
    '/sdapi/v1/txt2img',
    {
      override_settings: { sd_model_checkpoint: 'turboDiffusionXL_v112', sd_vae: 'Automatic' },
      prompt: 'watercolor painting, vibrant, beautiful, painterly, detailed, textural, artistic',
      negative_prompt: '(lowres, low quality, worst quality:1.2), (text:1.2), watermark, anime, photorealistic',
      seed: -1,
      batch_size: 1,
      steps: 3,
      cfg_scale: 5,
      width: 96,
      height: 128,
      sampler_name: 'DPM++ SDE',
      sampler_index: 'DPM++ SDE',
      scheduler: 'karras',
      restore_faces: false,
      alwayson_scripts: {
        controlnet: {
          args: [
            {
              input_image: face,
              module: 'instant_id_face_embedding',
              model: 'ip-adapter_instant_id_sdxl',
              weight: 1,
              ...unit,
              processor_res: 1024,
            },
            {
              input_image: face,
              module: 'instant_id_face_keypoints',
              model: 'control_instant_id_sdxl',
              weight: 1,
              ...unit,
              processor_res: 1024,
            },
          ],
        },
      },
    },
  ],
  [
    'txt2img-adetailer',
    '/sdapi/v1/txt2img',
    {
      ...portrait,
      alwayson_scripts: {
        ADetailer: {
          args: [
            true,
            false,
            {
              ad_model: 'face_yolov8n.pt',
              ad_prompt: '',
              ad_confidence: 0.3,
              ad_denoising_strength: 0.4,
              ad_sampler: 'DPM++ SDE Karras',
            },
          ],
        },
      },
    },
  ],
  [
    'txt2img-reactor',
    '/sdapi/v1/txt2img',
    {
      ...portrait,
      alwayson_scripts: {
        reactor: {
          args: [
            face,
            true,
            '0',
            '0',
            '/runpod-volume/stable-diffusion-webui/models/insightface/inswapper_128.onnx',
            'CodeFormer',
            1,
            true,
            'lollypop',
            2,
            1,
            false,
            true,
            1,
            0,
            0,
            false,
            0.8,
            false,
            false,
            'CUDA',
            true,
            0,
          ],
        },
      },
    },
  ],
  // The webhook example's legacy sampler names, which AK's worker splits into sampler and scheduler.
  [
    'webhook-legacy-sampler',
    '/sdapi/v1/txt2img',
    {
      prompt: 'a lighthouse',
      steps: 3,
      width: 64,
      height: 64,
      sampler_name: 'DPM++ SDE Karras',
      sampler_index: 'DPM++ SDE Karras',
    },
  ],
];

const READS = [
  '/controlnet/model_list',
  '/sdapi/v1/embeddings',
  '/sdapi/v1/extensions',
  '/sdapi/v1/face-restorers',
  '/sdapi/v1/hypernetworks',
  '/sdapi/v1/latent-upscale-modes',
  '/sdapi/v1/loras',
  '/sdapi/v1/memory',
  '/sdapi/v1/sd-models',
  '/sdapi/v1/options',
  '/sdapi/v1/prompt-styles',
  '/sdapi/v1/realesrgan-models',
  '/sdapi/v1/samplers',
  '/sdapi/v1/schedulers',
  '/sdapi/v1/script-info',
  '/sdapi/v1/scripts',
  '/sdapi/v1/upscalers',
  '/sdapi/v1/sd-vae',
];

async function installation() {
  const modelsDir = await mkdtemp(path.join(tmpdir(), 'ak-models-'));
  for (const name of ['sd_xl_base_1.0', 'sd_xl_refiner_1.0', 'deliberate_v2', 'turboDiffusionXL_v112']) {
    await writeFile(path.join(modelsDir, `${name}.safetensors`), 'x');
  }
  // The VAE its documented txt2img request names (the worker checks it against /sdapi/v1/sd-vae).
  const vaeDir = await mkdtemp(path.join(tmpdir(), 'ak-vae-'));
  await writeFile(path.join(vaeDir, 'sdxl_vae.safetensors'), 'x');
  return simulator({ modelsDir, vaeDir });
}

describe('the documented requests of ashleykleynhans/runpod-worker-a1111', () => {
  it('generates: output.images are bare base64 pictures a client opens directly', async () => {
    const sim = await installation();
    const { runner } = testWorker(sim.url);

    for (const [name, endpoint, payload] of GENERATIONS) {
      const outcome = await runner.run({ id: name, input: { api: { method: 'POST', endpoint }, payload } });
      const { output } = runPodResult(outcome) as {
        output?: { images?: string[]; info?: unknown; parameters?: unknown };
      };
      if (!outcome.ok) throw new Error(`${name}: ${outcome.failure.message}`);
      expect(output?.images?.length, name).toBeGreaterThan(0);
      for (const image of output?.images ?? [])
        expect(() => decodePng(Buffer.from(image, 'base64')), name).not.toThrow();
      expect(typeof output?.info, name).toBe('string');
      expect(output?.parameters, name).toBeTypeOf('object');
    }
    const [legacy] = sim.callsTo('POST', '/txt2img').slice(-1);
    expect(legacy?.body).toMatchObject({ sampler_name: 'DPM++ SDE', scheduler: 'karras' });
  });

  it('reads: output is A1111’s JSON for every GET the documentation lists', async () => {
    const sim = await installation();
    const { runner } = testWorker(sim.url);

    for (const endpoint of READS) {
      const outcome = await runner.run({ id: endpoint, input: { api: { method: 'GET', endpoint }, payload: {} } });
      const { output } = runPodResult(outcome) as { output?: unknown };
      if (!outcome.ok) throw new Error(`${endpoint}: ${outcome.failure.message}`);
      const direct = (await (await fetch(`${sim.url}${endpoint}`)).json()) as unknown;
      if (Array.isArray(direct)) expect(output, endpoint).toEqual(direct);
      else expect(Object.keys(output as object), endpoint).toEqual([...Object.keys(direct as object), 'worker']);
    }
  });

  it('writes and captions: set-model, set-vae, the refreshes and interrogate', async () => {
    const sim = await installation();
    const { runner } = testWorker(sim.url);
    const post = (endpoint: string, payload: Record<string, unknown>) =>
      runner.run({ id: endpoint, input: { api: { method: 'POST', endpoint }, payload } });

    const writes = [
      await post('/sdapi/v1/options', { sd_model_checkpoint: 'deliberate_v2' }),
      await post('/sdapi/v1/options', { sd_vae: 'None' }),
      await post('/sdapi/v1/refresh-checkpoints', {}),
      await post('/sdapi/v1/refresh-embeddings', {}),
      await post('/sdapi/v1/refresh-loras', {}),
      await post('/sdapi/v1/refresh-vae', {}),
    ];
    const caption = await post('/sdapi/v1/interrogate', { image: source, model: 'deepdanbooru' });

    expect(writes.map((outcome) => runPodResult(outcome))).toEqual(Array(6).fill({ output: null }));
    expect(sim.engine.options).toMatchObject({ sd_model_checkpoint: 'deliberate_v2.safetensors', sd_vae: 'None' });
    expect((runPodResult(caption) as { output: { caption: string } }).output.caption).toMatch(/^[a-z ,]+$/);
  });
});
