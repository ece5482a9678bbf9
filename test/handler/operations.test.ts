/**
 * Every operation of the allow-list, asked for with the envelope of ashleykleynhans/runpod-worker-a1111
 * and run over real HTTP against the simulator: what A1111 received, what the job returned.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { JobOutcome } from '../../src/job/outcome.js';
import { pngImage } from '../support/images.js';
import { decodePng } from '../support/png.js';
import { simulator } from '../support/simulator.js';
import { runPodResult, testWorker } from '../support/worker.js';

function envelope(method: string, endpoint: string, payload: Record<string, unknown> = {}) {
  return { api: { method, endpoint }, payload };
}

function output(outcome: JobOutcome): Record<string, unknown> {
  if (!outcome.ok) throw new Error(`the job failed: ${outcome.failure.code} ${outcome.failure.message}`);
  return outcome.output as Record<string, unknown>;
}

function failure(outcome: JobOutcome) {
  if (outcome.ok) throw new Error('expected the job to fail');
  return outcome.failure;
}

const red = pngImage(64, 64, 1).toString('base64');
const blue = pngImage(64, 64, 2).toString('base64');

describe('img2img', () => {
  it('sends the init image as base64 and returns a picture made from it', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);
    const job = (image: string, id: string) =>
      runner.run({
        id,
        input: envelope('POST', '/sdapi/v1/img2img', {
          prompt: 'at the ocean',
          init_images: [image],
          seed: 42,
          steps: 10,
          width: 64,
          height: 64,
          denoising_strength: 0.5,
        }),
      });

    const fromRed = output(await job(red, 'img-red'));
    const fromBlue = output(await job(blue, 'img-blue'));

    expect(sim.callsTo('POST', '/img2img')[0]?.body).toMatchObject({ init_images: [red] });
    const [first, second] = [fromRed, fromBlue].map((o) => (o['images'] as string[])[0] ?? '');
    expect(decodePng(first ?? '').width).toBe(64);
    // Same seed, other init image: another picture.
    expect(first).not.toBe(second);
    expect(JSON.parse(fromRed['info'] as string)).toMatchObject({ seed: 42, denoising_strength: 0.5 });
    // A1111 blanks the init images in its echo, and the worker passes the echo on as it came.
    expect(fromRed['parameters']).toMatchObject({ init_images: null, mask: null, denoising_strength: 0.5 });
    expect(fromRed['worker']).toMatchObject({ recoveries: 0, notes: [] });
  });

  it('inpaints: the mask goes as raw base64 whatever data URL it came as, and an empty mask is left out', async () => {
    const sim = await simulator();
    const { runner, logs } = testWorker(sim.url);

    const masked = output(
      await runner.run({
        id: 'img-mask',
        input: envelope('POST', 'sdapi/v1/img2img', {
          prompt: 'a boat',
          init_images: [`data:image/png;charset=utf-8;base64,${red}`],
          mask: `data:image/png;base64,${blue}`,
          latent_mask: '',
          mask_blur: 8,
          inpainting_fill: 1,
          inpaint_full_res: false,
          steps: 4,
          width: 64,
          height: 64,
        }),
      }),
    );
    const unmasked = await runner.run({
      id: 'img-empty-mask',
      input: envelope('POST', '/sdapi/v1/img2img', { prompt: 'a boat', init_images: [red], mask: '', steps: 2 }),
    });

    const [first, second] = sim.callsTo('POST', '/img2img').map((call) => call.body as Record<string, unknown>);
    expect(first).toMatchObject({ init_images: [red], mask: blue, mask_blur: 8, inpainting_fill: 1 });
    expect(first).not.toHaveProperty('latent_mask');
    expect(JSON.parse(masked['info'] as string).infotexts[0]).toContain('Mask blur: 8, Masked content: original');
    expect(unmasked.ok).toBe(true);
    expect(second).not.toHaveProperty('mask');
    expect(logs.lines.some((line) => line.includes('mask is empty; it is left out'))).toBe(true);
  });

  it('reports its progress in A1111’s denoising steps and stops at its deadline with /interrupt', async () => {
    const sim = await simulator({ stepDelayMs: 40 });
    const { runner } = testWorker(sim.url, { JOB_TIMEOUT_MS: '1200' });
    const steps: number[] = [];

    const outcome = await runner.run(
      {
        id: 'img-deadline',
        input: envelope('POST', '/sdapi/v1/img2img', { init_images: [red], steps: 200, denoising_strength: 0.5 }),
      },
      { onProgress: (update) => steps.push(update.steps) },
    );

    expect(failure(outcome)).toMatchObject({ code: 'BACKEND_TIMEOUT', phase: 'inferring' });
    expect(sim.callsTo('POST', '/interrupt')).toHaveLength(1);
    expect(sim.engine.generations).toEqual([expect.objectContaining({ interrupted: true })]);
    // int(0.5 × 200) + 1 steps, as A1111's k-diffusion img2img runs them.
    expect(steps.filter((n) => n > 0).at(-1)).toBe(101);
  });

  it('recovers from a route 404 by checking the img2img route itself', async () => {
    const sim = await simulator();
    sim.reloadOnNext('/img2img', 150);
    const { runner } = testWorker(sim.url);

    const result = output(
      await runner.run({
        id: 'img-404',
        input: envelope('POST', '/sdapi/v1/img2img', { init_images: [red], steps: 2 }),
      }),
    );

    expect((result['worker'] as { recoveries: number }).recoveries).toBe(1);
    expect(sim.callsTo('GET', '/img2img').map((call) => call.status)).toContain(405);
  });
});

describe('extras', () => {
  it('upscales one image: A1111 resizes it and says so in html_info; an upscaler name in the wrong case is mended', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const result = output(
      await runner.run({
        id: 'extra-single',
        input: envelope('POST', '/sdapi/v1/extra-single-image', {
          image: red,
          upscaler_1: 'lanczos',
          upscaling_resize: 2,
        }),
      }),
    );

    expect(sim.callsTo('POST', '/extra-single-image')[0]?.body).toMatchObject({ image: red, upscaler_1: 'Lanczos' });
    expect(result['html_info']).toBe('<p>Postprocess upscale by: 2.0, Postprocess upscaler: Lanczos</p>');
    const picture = decodePng(result['image'] as string);
    expect([picture.width, picture.height]).toEqual([128, 128]);
    expect((result['worker'] as { notes: string[] }).notes).toEqual(['upscaler_1 "lanczos" sent as "Lanczos"']);
  });

  it('upscales a batch to a size, cropped to it', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);
    const wide = pngImage(120, 40, 3).toString('base64');

    const result = output(
      await runner.run({
        id: 'extra-batch',
        input: envelope('POST', '/sdapi/v1/extra-batch-images', {
          imageList: [
            { data: red, name: 'red.png' },
            { data: wide, name: 'wide.png' },
          ],
          resize_mode: 1,
          upscaling_resize_w: 96,
          upscaling_resize_h: 96,
          upscaler_1: 'Nearest',
        }),
      }),
    );

    const sizes = (result['images'] as string[]).map((image) => decodePng(image)).map((p) => [p.width, p.height]);
    expect(sizes).toEqual([
      [96, 96],
      [96, 96],
    ]);
    expect(result['html_info']).toContain('Postprocess crop to: 96x96');
  });

  it('stops a batch at its deadline with /interrupt, as a generation, and leaves A1111 free', async () => {
    const sim = await simulator({ stepDelayMs: 300 });
    const { runner } = testWorker(sim.url, { JOB_TIMEOUT_MS: '500' });
    const imageList = Array.from({ length: 8 }, (_, i) => ({ data: red, name: `${i}.png` }));

    const outcome = await runner.run({
      id: 'extra-deadline',
      input: envelope('POST', '/sdapi/v1/extra-batch-images', { imageList, upscaler_1: 'Lanczos' }),
    });

    expect(failure(outcome)).toMatchObject({
      code: 'BACKEND_TIMEOUT',
      details: { interrupt: 'sent', a1111Idle: true },
    });
    expect(sim.callsTo('POST', '/interrupt')).toHaveLength(1);
    expect(sim.engine.busy).toBe(false);
  });

  it('refuses an upscaler A1111 does not have, naming it and the ones it has, before the image goes out', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({
      id: 'extra-bad-upscaler',
      input: envelope('POST', '/sdapi/v1/extra-single-image', { image: red, upscaler_1: '4x-UltraSharp' }),
    });

    expect(failure(outcome)).toMatchObject({
      code: 'INVALID_INPUT',
      details: { problems: [{ field: 'upscaler_1', value: '4x-UltraSharp' }] },
    });
    expect(failure(outcome).message).toContain('"Lanczos"');
    expect(sim.callsTo('POST', '/extra-single-image')).toEqual([]);
  });

  it('checks upscaler_2 only when upscaler_1 is one, as A1111 does', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const none = await runner.run({
      id: 'extra-none',
      input: envelope('POST', '/sdapi/v1/extra-single-image', {
        image: red,
        upscaler_1: 'None',
        upscaler_2: 'whatever',
      }),
    });
    const second = await runner.run({
      id: 'extra-second',
      input: envelope('POST', '/sdapi/v1/extra-single-image', {
        image: red,
        upscaler_1: 'Lanczos',
        upscaler_2: 'whatever',
      }),
    });

    expect(none.ok).toBe(true);
    expect(failure(second).details?.['problems']).toEqual([
      expect.objectContaining({ field: 'upscaler_2', value: 'whatever' }),
    ]);
  });
});

describe('png-info and interrogate', () => {
  it('reads back the generation parameters of a picture the worker made', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);
    const made = output(
      await runner.run({ id: 'made', input: { prompt: 'a lighthouse', seed: 77, steps: 3, width: 64, height: 64 } }),
    );
    const picture = (made['images'] as string[])[0]!;

    const info = output(
      await runner.run({ id: 'png-info', input: envelope('POST', '/sdapi/v1/png-info', { image: picture }) }),
    );

    expect(info['info']).toMatch(/^a lighthouse\nSteps: 3, /);
    expect(info['parameters']).toMatchObject({ Prompt: 'a lighthouse', Seed: '77', 'Size-1': '64', Steps: '3' });
    expect(info['items']).toEqual({});
  });

  it('captions the same picture the same way, with either model', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);
    const caption = async (id: string, model: string) =>
      output(await runner.run({ id, input: envelope('POST', '/sdapi/v1/interrogate', { image: red, model }) }))[
        'caption'
      ];

    const first = await caption('clip-1', 'clip');
    expect(await caption('clip-2', 'clip')).toBe(first);
    expect(first).toMatch(/^a picture of /);
    expect(await caption('tags', 'deepdanbooru')).not.toBe(first);
  });

  it('refuses a caption model A1111 would answer 404 "Model not found" after waiting for the GPU', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({
      id: 'interrogate-blip',
      input: envelope('POST', '/sdapi/v1/interrogate', { image: red, model: 'blip' }),
    });

    expect(failure(outcome)).toMatchObject({
      code: 'INVALID_INPUT',
      details: { problems: [{ field: 'model', value: 'blip' }] },
    });
    expect(sim.callsTo('POST', '/interrogate')).toEqual([]);
  });
});

describe('the read routes', () => {
  const reads = [
    '/sdapi/v1/sd-models',
    '/sdapi/v1/samplers',
    '/sdapi/v1/schedulers',
    '/sdapi/v1/upscalers',
    '/sdapi/v1/latent-upscale-modes',
    '/sdapi/v1/sd-vae',
    '/sdapi/v1/loras',
    '/sdapi/v1/embeddings',
    '/sdapi/v1/hypernetworks',
    '/sdapi/v1/face-restorers',
    '/sdapi/v1/realesrgan-models',
    '/sdapi/v1/prompt-styles',
    '/sdapi/v1/scripts',
    '/sdapi/v1/script-info',
    '/sdapi/v1/extensions',
    '/sdapi/v1/memory',
    '/sdapi/v1/options',
    '/sdapi/v1/progress',
    '/controlnet/model_list',
  ];

  it('answers each with A1111’s own JSON, a worker report beside an object, nothing beside a list', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    for (const endpoint of reads) {
      const outcome = await runner.run({ id: `read-${endpoint}`, input: envelope('GET', endpoint) });
      if (!outcome.ok) throw new Error(`${endpoint}: ${outcome.failure.message}`);
      const direct = (await (await fetch(`${sim.url}${endpoint}`)).json()) as unknown;
      const answered = outcome.output;
      if (Array.isArray(direct)) expect(answered, endpoint).toEqual(direct);
      else {
        const { worker, ...rest } = answered as Record<string, unknown>;
        expect(worker, endpoint).toBeDefined();
        // /progress and /memory change from one reading to the next: their keys are the same.
        if (endpoint.endsWith('/progress') || endpoint.endsWith('/memory'))
          expect(Object.keys(rest)).toEqual(Object.keys(direct as object));
        else expect(rest, endpoint).toEqual(direct);
      }
    }
    // A read waits for nothing: no model check, straight to A1111.
    expect(sim.callsTo('GET', '/scripts')).toHaveLength(2);
  });

  it('sends nothing of a payload given to a read route, and notes it', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const result = output(
      await runner.run({ id: 'read-payload', input: envelope('GET', 'sdapi/v1/scripts', { tab: 'txt2img' }) }),
    );

    expect(sim.callsTo('GET', '/scripts')[0]).toMatchObject({ body: null, query: '' });
    expect((result['worker'] as { notes: string[] }).notes).toEqual([
      'GET /sdapi/v1/scripts takes no payload; tab ignored',
    ]);
  });
});

describe('the writes', () => {
  it('changes the checkpoint through the options, sent by its title, and refreshes the lists', async () => {
    const modelsDir = await mkdtemp(path.join(tmpdir(), 'ops-models-'));
    await writeFile(path.join(modelsDir, 'deliberate_v2.safetensors'), 'x');
    const sim = await simulator({ modelsDir });
    const { runner } = testWorker(sim.url);

    const changed = await runner.run({
      id: 'set-model',
      input: envelope('POST', '/sdapi/v1/options', { sd_model_checkpoint: 'deliberate_v2' }),
    });
    const refreshes = await Promise.all(
      ['refresh-checkpoints', 'refresh-vae', 'refresh-embeddings', 'refresh-loras'].map((name) =>
        runner.run({ id: name, input: envelope('POST', `/sdapi/v1/${name}`) }),
      ),
    );

    expect(changed).toMatchObject({ ok: true, output: null });
    expect(sim.callsTo('POST', '/options')[0]?.body).toEqual({ sd_model_checkpoint: 'deliberate_v2.safetensors' });
    expect(sim.engine.options['sd_model_checkpoint']).toBe('deliberate_v2.safetensors');
    expect(refreshes.map((outcome) => outcome.ok && outcome.output)).toEqual([null, null, null, null]);
    // RunPod gets `"output": null`, as runpod-python sends a handler's None.
    expect(runPodResult(changed)).toEqual({ output: null });
  });

  it('refuses a checkpoint or an option A1111 does not have before anything is changed', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const model = await runner.run({
      id: 'set-missing',
      input: envelope('POST', '/sdapi/v1/options', { sd_model_checkpoint: 'nope' }),
    });
    const key = await runner.run({
      id: 'set-unknown-key',
      input: envelope('POST', '/sdapi/v1/options', { CLIP_stop_at_last_layers: 2, not_an_option: true }),
    });

    expect(failure(model)).toMatchObject({
      code: 'MODEL_NOT_FOUND',
      details: { requested: 'nope', available: ['model.safetensors'] },
    });
    expect(failure(key)).toMatchObject({ code: 'INVALID_INPUT', details: { problems: [{ field: 'not_an_option' }] } });
    expect(sim.callsTo('POST', '/options')).toEqual([]);
    expect(sim.engine.options['CLIP_stop_at_last_layers']).toBe(1);
  });
});

describe('what is not on the allow-list', () => {
  const refused: [string, ReturnType<typeof envelope> | Record<string, unknown>, string, RegExp][] = [
    ['server-kill', envelope('POST', '/sdapi/v1/server-kill'), 'api.endpoint', /\/sdapi\/v1\/server-kill is not on it/],
    ['server-restart', envelope('POST', 'sdapi/v1/server-restart'), 'api.endpoint', /server-restart is not on it/],
    ['server-stop', envelope('POST', '/sdapi/v1/server-stop'), 'api.endpoint', /server-stop is not on it/],
    [
      'cmd-flags (it holds --api-auth)',
      envelope('GET', '/sdapi/v1/cmd-flags'),
      'api.endpoint',
      /cmd-flags is not on it/,
    ],
    ['an unknown path', envelope('GET', '/sdapi/v1/secrets'), 'api.endpoint', /secrets is not on it/],
    ['a path with ..', envelope('GET', '/sdapi/v1/../../internal/ping'), 'api.endpoint', /must not contain "\.\."/],
    ['a query string', envelope('GET', '/sdapi/v1/sd-models?x=1'), 'api.endpoint', /without a query/],
    ['the wrong method', envelope('GET', '/sdapi/v1/img2img'), 'api.method', /POST for \/sdapi\/v1\/img2img/],
    ['another method', envelope('DELETE', '/sdapi/v1/sd-models'), 'api.method', /"GET" or "POST"/],
    [
      'AK’s own download helper',
      envelope('POST', '/v1/download', { source_url: 'x' }),
      'api.endpoint',
      /\/v1\/download is not on it/,
    ],
    [
      'an extra envelope key',
      { ...envelope('GET', '/sdapi/v1/sd-models'), webhook: 'x' },
      'webhook',
      /holds "api" and "payload" only/,
    ],
  ];

  for (const [name, input, field, rule] of refused) {
    it(`refuses ${name} INVALID_INPUT, naming ${field}; nothing reaches A1111`, async () => {
      const sim = await simulator();
      const { runner } = testWorker(sim.url);

      const outcome = await runner.run({ id: `refused-${name}`, input });

      const problem = failure(outcome);
      expect(problem).toMatchObject({ code: 'INVALID_INPUT', phase: 'booting' });
      expect(problem.details?.['problems']).toContainEqual(expect.objectContaining({ field }));
      expect(problem.message).toMatch(rule);
      expect(sim.calls).toEqual([]);
    });
  }

  it('refuses fields an operation does not have, naming the field and the ones it takes', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({
      id: 'extra-field',
      input: envelope('POST', '/sdapi/v1/extra-single-image', { image: red, upscale: 2, upscaling_resize: 9 }),
    });

    expect(failure(outcome).details?.['problems']).toEqual([
      expect.objectContaining({ field: 'upscale', value: 2, rule: expect.stringContaining('upscaling_resize') }),
    ]);
    expect(sim.calls).toEqual([]);
  });
});

describe('a route an extension serves', () => {
  it('fails BACKEND_ROUTE_MISSING, saying the extension may not be installed, after its recovery attempts', async () => {
    const sim = await simulator({ controlnet: false });
    const { runner } = testWorker(sim.url, { A1111_ROUTE_RECOVERY_ATTEMPTS: '1' });

    const outcome = await runner.run({ id: 'no-controlnet', input: envelope('GET', '/controlnet/model_list') });

    expect(failure(outcome)).toMatchObject({ code: 'BACKEND_ROUTE_MISSING' });
    expect(failure(outcome).message).toContain(
      'GET /controlnet/model_list route yet (a GET there answers 404): the extension that serves it is not installed',
    );
  });
});
