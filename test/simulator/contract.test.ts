/**
 * The simulator against the A1111 v1.9.3 API contract, spoken to with plain fetch (not the worker's
 * client), so a mistake in the worker cannot hide one here.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodePng } from '../support/png.js';
import { bootingSimulator, simulator } from '../support/simulator.js';

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function get(url: string) {
  const response = await fetch(url);
  return { status: response.status, body: (await response.json()) as unknown };
}

describe('POST /sdapi/v1/txt2img', () => {
  it('fills in v1.9.3’s defaults, echoes all 55 fields in `parameters` and returns `info` as a JSON string', async () => {
    const sim = await simulator();
    const { status, body } = await post(`${sim.url}/sdapi/v1/txt2img`, { prompt: 'p', steps: 2, unknown_key: 1 });

    expect(status).toBe(200);
    const parameters = body['parameters'] as Record<string, unknown>;
    expect(Object.keys(parameters)).toHaveLength(55);
    expect(parameters).toMatchObject({
      prompt: 'p',
      steps: 2,
      cfg_scale: 7,
      width: 512,
      height: 512,
      sampler_name: null,
      sampler_index: 'Euler',
      denoising_strength: null,
      send_images: true,
      alwayson_scripts: {},
    });
    expect(parameters).not.toHaveProperty('unknown_key');
    const info = JSON.parse(body['info'] as string) as Record<string, unknown>;
    expect(Object.keys(info).slice(0, 6)).toEqual([
      'prompt',
      'all_prompts',
      'negative_prompt',
      'all_negative_prompts',
      'seed',
      'all_seeds',
    ]);
    expect(info['version']).toBe('v1.9.3');
    expect(info['sampler_name']).toBe('Euler');
    const png = decodePng((body['images'] as string[])[0]!);
    expect(png.text['parameters']).toMatch(
      /^p\nSteps: 2, Sampler: Euler, CFG scale: 7.0, Seed: \d+, Size: 512x512, Model: model, Version: v1.9.3$/,
    );
  });

  it('coerces loosely, as pydantic v1 does', async () => {
    const sim = await simulator();
    const { body } = await post(`${sim.url}/sdapi/v1/txt2img`, {
      prompt: 123,
      steps: '3',
      cfg_scale: '6.5',
      n_iter: 1.9,
      restore_faces: 'yes',
      styles: ['a', 5],
    });
    expect(body['parameters']).toMatchObject({
      prompt: '123',
      steps: 3,
      cfg_scale: 6.5,
      n_iter: 1,
      restore_faces: true,
      styles: ['a', '5'],
    });
  });

  it('answers 422 with every validation error in field order', async () => {
    const sim = await simulator();
    const { status, body } = await post(`${sim.url}/sdapi/v1/txt2img`, {
      width: [],
      steps: 'many',
      sampler_index: null,
    });
    expect(status).toBe(422);
    expect(body).toEqual({
      detail: [
        { loc: ['body', 'steps'], msg: 'value is not a valid integer', type: 'type_error.integer' },
        { loc: ['body', 'width'], msg: 'value is not a valid integer', type: 'type_error.integer' },
        { loc: ['body', 'sampler_index'], msg: 'none is not an allowed value', type: 'type_error.none.not_allowed' },
      ],
    });
  });

  it('answers 422 with where the JSON breaks, as Python’s json module says it', async () => {
    const sim = await simulator();
    const cut = await post(`${sim.url}/sdapi/v1/txt2img`, '{"steps":');
    expect(cut.status).toBe(422);
    expect(cut.body).toEqual({
      detail: [
        {
          loc: ['body', 9],
          msg: 'Expecting value: line 1 column 10 (char 9)',
          type: 'value_error.jsondecode',
          ctx: { msg: 'Expecting value', doc: '{"steps":', pos: 9, lineno: 1, colno: 10 },
        },
      ],
    });
    const broken = await post(`${sim.url}/sdapi/v1/txt2img`, '{\n "steps": }');
    expect((broken.body['detail'] as { loc: unknown[]; msg: string }[])[0]).toMatchObject({
      loc: ['body', 12],
      msg: 'Expecting value: line 2 column 11 (char 12)',
    });
  });

  it('answers 422 for a missing body and for a body that is not an object; an empty list is the default request', async () => {
    const sim = await simulator();
    expect((await post(`${sim.url}/sdapi/v1/txt2img`, 'null')).body).toEqual({
      detail: [{ loc: ['body'], msg: 'field required', type: 'value_error.missing' }],
    });
    expect((await post(`${sim.url}/sdapi/v1/txt2img`, '5')).body).toEqual({
      detail: [{ loc: ['body'], msg: 'value is not a valid dict', type: 'type_error.dict' }],
    });
    sim.setStepDelay(0);
    expect((await post(`${sim.url}/sdapi/v1/txt2img`, '[]')).status).toBe(200);
  });

  it('answers 404 "Sampler not found" in A1111’s body for a 1.8-era name', async () => {
    const sim = await simulator();
    const { status, body } = await post(`${sim.url}/sdapi/v1/txt2img`, { sampler_name: 'DPM++ 2M Karras' });
    expect(status).toBe(404);
    expect(body).toEqual({ error: 'HTTPException', detail: 'Sampler not found', body: '', errors: '' });
    expect(sim.engine.generations).toEqual([]);
  });

  it('silently renders with the loaded model when the override names an unknown checkpoint', async () => {
    const sim = await simulator();
    const { status, body } = await post(`${sim.url}/sdapi/v1/txt2img`, {
      steps: 1,
      override_settings: { sd_model_checkpoint: 'nope.safetensors' },
    });
    expect(status).toBe(200);
    expect(JSON.parse(body['info'] as string).sd_model_name).toBe('model');
  });

  it('puts a grid first when asked to save two or more images, and none otherwise', async () => {
    const sim = await simulator();
    const request = { steps: 1, seed: 5, batch_size: 2, width: 64, height: 64 };
    const saved = await post(`${sim.url}/sdapi/v1/txt2img`, { ...request, save_images: true });
    const plain = await post(`${sim.url}/sdapi/v1/txt2img`, request);

    const images = saved.body['images'] as string[];
    expect(images).toHaveLength(3);
    expect(JSON.parse(saved.body['info'] as string)).toMatchObject({ index_of_first_image: 1, all_seeds: [5, 6] });
    const grid = decodePng(images[0]!);
    expect([grid.width, grid.height]).toEqual([128, 64]);
    expect(decodePng(images[1]!).text['parameters']).toContain('Seed: 5');
    expect(plain.body['images']).toHaveLength(2);
    expect(JSON.parse(plain.body['info'] as string).index_of_first_image).toBe(0);
  });

  it('takes a null seed as a random one, as -1', async () => {
    const sim = await simulator();
    const { status, body } = await post(`${sim.url}/sdapi/v1/txt2img`, { steps: 1, seed: null, subseed: null });
    expect(status).toBe(200);
    const info = JSON.parse(body['info'] as string);
    expect(Number.isInteger(info.seed) && info.seed >= 0).toBe(true);
    expect(info.all_seeds).toEqual([info.seed]);
    expect(Number.isInteger(info.subseed)).toBe(true);
  });

  it('goes back to the options checkpoint after an override, and for an unknown one', async () => {
    const modelsDir = await mkdtemp(path.join(tmpdir(), 'sim-models-'));
    await writeFile(path.join(modelsDir, 'beta.safetensors'), 'x');
    const sim = await simulator({ modelsDir });
    const ran = async (override?: string) => {
      const request = { steps: 1, ...(override ? { override_settings: { sd_model_checkpoint: override } } : {}) };
      const { body } = await post(`${sim.url}/sdapi/v1/txt2img`, request);
      return JSON.parse(body['info'] as string).sd_model_name;
    };

    expect(await ran()).toBe('model');
    expect(await ran('beta.safetensors')).toBe('beta');
    expect(await ran()).toBe('model');
    expect(await ran('beta.safetensors')).toBe('beta');
    expect(await ran('nonexistent.safetensors')).toBe('model');
  });

  it('serializes generations first in, first out', async () => {
    const sim = await simulator({ stepDelayMs: 10 });
    const first = post(`${sim.url}/sdapi/v1/txt2img`, { prompt: 'first', steps: 10, seed: 1 });
    while (!sim.engine.busy) await new Promise((resolve) => setTimeout(resolve, 5));
    const second = post(`${sim.url}/sdapi/v1/txt2img`, { prompt: 'second', steps: 2, seed: 2 });
    await Promise.all([first, second]);
    const [a, b] = sim.engine.generations;
    expect(b!.startedAt).toBeGreaterThanOrEqual(a!.endedAt);
    expect(b!.endedAt - b!.startedAt).toBeLessThan(a!.endedAt - a!.startedAt);
  });

  it('returns 200 with the images made so far when interrupted', async () => {
    const sim = await simulator({ stepDelayMs: 20 });
    const pending = post(`${sim.url}/sdapi/v1/txt2img`, { steps: 50, n_iter: 3, batch_size: 2, seed: 9 });
    while (!sim.engine.busy) await new Promise((resolve) => setTimeout(resolve, 5));
    const interrupt = await post(`${sim.url}/sdapi/v1/interrupt`, '');
    const { status, body } = await pending;
    expect(interrupt).toEqual({ status: 200, body: {} });
    expect(status).toBe(200);
    expect(body['images']).toHaveLength(2);
    expect(sim.engine.generations[0]?.interrupted).toBe(true);
  });
});

describe('GET /sdapi/v1/progress', () => {
  it('moves while a generation runs and rests at 0 when idle', async () => {
    const sim = await simulator({ stepDelayMs: 15 });
    const idle = (await get(`${sim.url}/sdapi/v1/progress`)).body as Record<string, unknown>;
    expect(idle).toMatchObject({ progress: 0, eta_relative: 0, current_image: null, state: { job_count: 0, job: '' } });

    let done = false;
    const pending = post(`${sim.url}/sdapi/v1/txt2img`, { steps: 40 }).finally(() => {
      done = true;
    });
    const steps: number[] = [];
    while (!done) {
      const reading = (await get(`${sim.url}/sdapi/v1/progress`)).body as {
        progress: number;
        state: Record<string, number>;
      };
      if (reading.state['job_count'] === 1 && reading.state['sampling_step']! > (steps.at(-1) ?? 0)) {
        expect(reading.progress).toBeGreaterThan(0);
        expect(reading.progress).toBeLessThanOrEqual(1);
        steps.push(reading.state['sampling_step']!);
      }
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    await pending;
    expect(steps.length).toBeGreaterThan(2);
    expect(steps).toEqual([...steps].sort((x, y) => x - y));
  });
});

describe('checkpoints and options', () => {
  it('lists a new checkpoint only after POST /refresh-checkpoints', async () => {
    const modelsDir = await mkdtemp(path.join(tmpdir(), 'sim-models-'));
    const sim = await simulator({ modelsDir, ckpt: null });
    await writeFile(path.join(modelsDir, 'late.safetensors'), 'x');
    await writeFile(path.join(modelsDir, 'late.vae.safetensors'), 'x');

    expect((await get(`${sim.url}/sdapi/v1/sd-models`)).body).toEqual([]);
    expect((await post(`${sim.url}/sdapi/v1/refresh-checkpoints`, '')).body).toBeNull();
    expect((await get(`${sim.url}/sdapi/v1/sd-models`)).body).toEqual([
      {
        title: 'late.safetensors',
        model_name: 'late',
        hash: null,
        sha256: null,
        filename: path.join(modelsDir, 'late.safetensors'),
        config: null,
      },
    ]);
  });

  it('answers txt2img with 500 FileNotFoundError when there is no checkpoint at all', async () => {
    const sim = await simulator({ ckpt: null });
    const { status, body } = await post(`${sim.url}/sdapi/v1/txt2img`, { steps: 1 });
    expect(status).toBe(500);
    expect(body['error']).toBe('FileNotFoundError');
    expect(String(body['errors'])).toContain('No checkpoints found');
  });

  it('refuses an unknown checkpoint and an unknown key in POST /options with a 500', async () => {
    const sim = await simulator();
    expect(await post(`${sim.url}/sdapi/v1/options`, { sd_model_checkpoint: 'nope' })).toEqual({
      status: 500,
      body: { error: 'RuntimeError', detail: '', body: '', errors: "model 'nope' not found" },
    });
    expect((await post(`${sim.url}/sdapi/v1/options`, { no_such_option: 1 })).body['errors']).toBe("'no_such_option'");
  });
});

describe('HTTP behaviour and faults', () => {
  it('answers unknown paths 404 and wrong methods 405, FastAPI style', async () => {
    const sim = await simulator();
    expect(await get(`${sim.url}/sdapi/v1/nothing`)).toEqual({ status: 404, body: { detail: 'Not Found' } });
    expect(await get(`${sim.url}/sdapi/v1/txt2img`)).toEqual({ status: 405, body: { detail: 'Method Not Allowed' } });
  });

  it('gzips bodies of 1000 bytes or more for clients that accept it', async () => {
    const sim = await simulator();
    const response = await new Promise<import('node:http').IncomingMessage>((resolve) =>
      import('node:http').then(({ get: httpGet }) =>
        httpGet(`${sim.url}/sdapi/v1/samplers`, { headers: { 'Accept-Encoding': 'gzip' } }, resolve),
      ),
    );
    const chunks: Buffer[] = [];
    for await (const chunk of response) chunks.push(chunk as Buffer);
    expect(response.headers['content-encoding']).toBe('gzip');
    expect(JSON.parse(gunzipSync(Buffer.concat(chunks)).toString())).toHaveLength(19);
  });

  it('refuses connections until it has booted', async () => {
    const { sim, started } = await bootingSimulator({ bootDelayMs: 300 });
    await expect(fetch(`${sim.url}/sdapi/v1/sd-models`)).rejects.toThrow();
    await started;
    expect((await get(`${sim.url}/sdapi/v1/sd-models`)).status).toBe(200);
  });

  it('answers the next calls of a route with a proxy’s 5xx text, then normally', async () => {
    const sim = await simulator();
    sim.failNext(2, 504, '/samplers');
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await fetch(`${sim.url}/sdapi/v1/samplers`)).status);
    expect(statuses).toEqual([504, 504, 200]);
  });

  it('unmounts every API route during a reload window', async () => {
    const sim = await simulator();
    sim.reloadOnNext('/sd-models', 10_000);
    expect(await get(`${sim.url}/sdapi/v1/sd-models`)).toEqual({ status: 404, body: { detail: 'Not Found' } });
    expect((await get(`${sim.url}/sdapi/v1/samplers`)).status).toBe(404);
  });

  it('drops every connection and closes its port when it crashes mid-generation', async () => {
    const sim = await simulator({ stepDelayMs: 5 });
    sim.crashDuringNextGeneration({ atStep: 3 });
    await expect(post(`${sim.url}/sdapi/v1/txt2img`, { steps: 10 })).rejects.toThrow();
    await expect(fetch(`${sim.url}/sdapi/v1/sd-models`)).rejects.toThrow();
    expect(sim.crashes).toBe(1);
  });
});
