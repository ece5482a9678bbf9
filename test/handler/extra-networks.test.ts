/**
 * LoRAs and VAEs a job names, checked against what A1111 lists before it generates: over real HTTP
 * against the simulator, whose LoRA and VAE folders are real folders on disk.
 */
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { JobOutcome } from '../../src/job/outcome.js';
import { FileServer } from '../support/file-server.js';
import { simulator } from '../support/simulator.js';
import { generated, testWorker } from '../support/worker.js';

async function folders() {
  const root = await mkdtemp(path.join(tmpdir(), 'networks-'));
  const lora = path.join(root, 'Lora');
  const vae = path.join(root, 'VAE');
  await mkdir(path.join(lora, 'styles'), { recursive: true });
  await mkdir(vae, { recursive: true });
  await writeFile(path.join(lora, 'add_detail.safetensors'), 'lora');
  await writeFile(path.join(lora, 'styles', 'watercolor_v2.pt'), 'lora');
  await writeFile(path.join(vae, 'vae-ft-mse-840000-ema-pruned.safetensors'), 'vae');
  return { lora, vae };
}

function failure(outcome: JobOutcome) {
  if (outcome.ok) throw new Error('expected the job to fail');
  return outcome.failure;
}

describe('LoRA tags', () => {
  it('pass when A1111 lists them, in any prompt, and reach A1111 as written', async () => {
    const dirs = await folders();
    const sim = await simulator({ loraDir: dirs.lora });
    const { runner } = testWorker(sim.url);
    const prompt = 'a harbour <lora:add_detail:0.6>, <LYCO:watercolor_v2:1:0.5>';

    const outcome = await runner.run({
      id: 'lora-ok',
      input: { prompt, negative_prompt: 'blurry <lora:add_detail:-1>', steps: 2, width: 64, height: 64 },
    });

    expect(generated(outcome).images).toHaveLength(1);
    expect(sim.callsTo('POST', '/txt2img')[0]?.body).toMatchObject({ prompt });
  });

  it('fail MODEL_NOT_FOUND before generating when one is not listed, naming the field and close names', async () => {
    const dirs = await folders();
    const sim = await simulator({ loraDir: dirs.lora });
    const { runner } = testWorker(sim.url);

    const failed = failure(
      await runner.run({
        id: 'lora-missing',
        input: {
          prompt: 'a harbour',
          enable_hr: true,
          denoising_strength: 0.5,
          hr_prompt: 'a harbour <lora:add_detial:0.6>',
          steps: 2,
          width: 64,
          height: 64,
        },
      }),
    );

    expect(failed).toMatchObject({ code: 'MODEL_NOT_FOUND', phase: 'verifyingModels', retryable: false });
    expect(failed.message).toContain('LoRA "add_detial" (in hr_prompt) is not one A1111 lists; close: "add_detail"');
    expect(failed.message).toContain("Couldn't find network");
    expect(failed.details['loras']).toEqual([{ field: 'hr_prompt', requested: 'add_detial', close: ['add_detail'] }]);
    expect(failed.details['available']).toEqual(['add_detail', 'watercolor_v2']);
    // Nothing was generated: A1111 was asked to look again, and that was all.
    expect(sim.callsTo('POST', '/txt2img')).toEqual([]);
    expect(sim.callsTo('POST', '/refresh-loras')).toHaveLength(1);
  });

  it('find a LoRA put in the folder after A1111 started, through refresh-loras', async () => {
    const dirs = await folders();
    const sim = await simulator({ loraDir: dirs.lora });
    const { runner } = testWorker(sim.url);
    await writeFile(path.join(dirs.lora, 'brand_new.safetensors'), 'lora');

    const outcome = await runner.run({
      id: 'lora-new',
      input: { prompt: 'x <lora:brand_new:1>', steps: 2, width: 64, height: 64 },
    });

    expect(generated(outcome).images).toHaveLength(1);
    expect(sim.callsTo('POST', '/refresh-loras')).toHaveLength(1);
  });

  it('cost nothing when a prompt has none: no listing is read', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    generated(await runner.run({ id: 'no-lora', input: { prompt: 'x <not a tag>', steps: 1, width: 64, height: 64 } }));

    expect(sim.callsTo('GET', '/loras')).toEqual([]);
  });
});

describe('override_settings.sd_vae', () => {
  it('passes "Automatic", "None" and a listed VAE, and fails MODEL_NOT_FOUND for another, listing them', async () => {
    const dirs = await folders();
    const sim = await simulator({ vaeDir: dirs.vae });
    const { runner } = testWorker(sim.url);
    const job = (id: string, sd_vae: string) =>
      runner.run({ id, input: { prompt: 'x', steps: 1, width: 64, height: 64, override_settings: { sd_vae } } });

    for (const name of ['Automatic', 'None', 'vae-ft-mse-840000-ema-pruned.safetensors']) {
      expect(generated(await job(`vae-${name}`, name)).images, name).toHaveLength(1);
    }
    const failed = failure(await job('vae-missing', 'vae-ft-mse.safetensors'));

    expect(failed.code).toBe('MODEL_NOT_FOUND');
    expect(failed.message).toContain('override_settings.sd_vae "vae-ft-mse.safetensors" is not a VAE A1111 lists');
    expect(failed.details['available']).toEqual(['Automatic', 'None', 'vae-ft-mse-840000-ema-pruned.safetensors']);
    expect(sim.callsTo('POST', '/txt2img')).toHaveLength(3);
    expect(sim.callsTo('POST', '/refresh-vae')).toHaveLength(1);
  });
});

describe('LoRAs and a VAE a job brings', () => {
  async function setup() {
    const dirs = await folders();
    const sim = await simulator({ loraDir: dirs.lora, vaeDir: dirs.vae });
    const files = new FileServer();
    await files.start();
    const worker = testWorker(sim.url, {
      LORA_DIR: dirs.lora,
      VAE_DIR: dirs.vae,
      MODEL_DOWNLOAD_HOSTS: '127.0.0.1',
      MODEL_DOWNLOAD_PRIVATE_ALLOW: '127.0.0.1',
    });
    return { dirs, sim, files, ...worker };
  }

  it('are downloaded into LORA_DIR and VAE_DIR, found by A1111 after its rescans, and used', async () => {
    const { dirs, sim, files, runner } = await setup();
    const lora = files.add('/loras/ink_style.safetensors', 200_000);
    const vae = files.add('/vae/sharp_vae.safetensors', 300_000);

    const outcome = await runner.run({
      id: 'bring-networks',
      input: {
        prompt: 'a harbour <lora:ink_style:0.8>',
        steps: 2,
        width: 64,
        height: 64,
        model: {
          loras: [
            { file: 'ink_style.safetensors', url: `${files.url}/loras/ink_style.safetensors`, sha256: lora.sha256 },
          ],
          vae: { file: 'sharp_vae.safetensors', url: `${files.url}/vae/sharp_vae.safetensors` },
        },
      },
    });

    const output = generated(outcome);
    expect((await readFile(path.join(dirs.lora, 'ink_style.safetensors'))).equals(lora.bytes)).toBe(true);
    expect((await readFile(path.join(dirs.vae, 'sharp_vae.safetensors'))).equals(vae.bytes)).toBe(true);
    expect(output.worker.notes).toEqual([
      'LoRA "ink_style.safetensors" downloaded (200000 bytes)',
      'VAE "sharp_vae.safetensors" downloaded (300000 bytes)',
    ]);
    // The VAE the job brings is the one it renders with; the model block never reaches A1111.
    const sent = sim.callsTo('POST', '/txt2img')[0]?.body as Record<string, unknown>;
    expect(sent['override_settings']).toEqual({ sd_vae: 'sharp_vae.safetensors' });
    expect(sent).not.toHaveProperty('model');
    expect(sim.callsTo('POST', '/refresh-loras').length).toBeGreaterThanOrEqual(1);
    expect(sim.callsTo('POST', '/refresh-vae').length).toBeGreaterThanOrEqual(1);
  });

  it('share one download between two jobs that need the same LoRA', async () => {
    const { files, runner } = await setup();
    files.add('/loras/shared.safetensors', 2_000_000, { kind: 'slow', bytesPerChunk: 200_000, delayMs: 20 });
    const job = (id: string) =>
      runner.run({
        id,
        input: {
          prompt: 'x <lora:shared:1>',
          steps: 1,
          width: 64,
          height: 64,
          model: { loras: [{ file: 'shared.safetensors', url: `${files.url}/loras/shared.safetensors` }] },
        },
      });

    const [a, b] = await Promise.all([job('share-a'), job('share-b')]);

    expect(generated(a).images).toHaveLength(1);
    expect(generated(b).images).toHaveLength(1);
    expect(files.hits('/loras/shared.safetensors')).toBe(1);
  });

  it('fail MODEL_DOWNLOAD_FAILED on a wrong sha256, and nothing is generated', async () => {
    const { files, sim, runner } = await setup();
    files.add('/loras/tampered.safetensors', 50_000);

    const failed = failure(
      await runner.run({
        id: 'bad-sha',
        input: {
          prompt: 'x <lora:tampered:1>',
          model: {
            loras: [
              { file: 'tampered.safetensors', url: `${files.url}/loras/tampered.safetensors`, sha256: 'a'.repeat(64) },
            ],
          },
        },
      }),
    );

    expect(failed).toMatchObject({ code: 'MODEL_DOWNLOAD_FAILED', details: { reason: 'checksum' } });
    expect(sim.callsTo('POST', '/txt2img')).toEqual([]);
  });

  it('bring textual-inversion embeddings into EMBEDDINGS_DIR, and fail MODEL_NOT_FOUND for one that cannot be had', async () => {
    const { dirs, files } = await setup();
    const embeddingsDir = path.join(path.dirname(dirs.lora), 'embeddings');
    const withEmbeddings = await simulator({ embeddingsDir });
    const worker = testWorker(withEmbeddings.url, {
      EMBEDDINGS_DIR: embeddingsDir,
      MODEL_DOWNLOAD_HOSTS: '127.0.0.1',
      MODEL_DOWNLOAD_PRIVATE_ALLOW: '127.0.0.1',
    });
    await mkdir(embeddingsDir, { recursive: true });
    const served = files.add('/ti/bad_hands.pt', 20_000);

    const ok = await worker.runner.run({
      id: 'embedding',
      input: {
        prompt: 'x',
        negative_prompt: 'bad_hands',
        steps: 1,
        width: 64,
        height: 64,
        model: { embeddings: [{ file: 'bad_hands.pt', url: `${files.url}/ti/bad_hands.pt` }] },
      },
    });
    const missing = failure(
      await worker.runner.run({
        id: 'no-embedding',
        input: { prompt: 'x', model: { embeddings: [{ file: 'nowhere.safetensors' }] } },
      }),
    );

    expect(generated(ok).worker.notes).toEqual(['embedding "bad_hands.pt" downloaded (20000 bytes)']);
    expect((await readFile(path.join(embeddingsDir, 'bad_hands.pt'))).equals(served.bytes)).toBe(true);
    expect(missing.code).toBe('MODEL_NOT_FOUND');
    expect(missing.message).toContain('embedding "nowhere" is not one A1111 loaded');
    expect(missing.details['available']).toEqual(['bad_hands']);
    expect(withEmbeddings.callsTo('POST', '/txt2img')).toHaveLength(1);
  });

  it('are refused when the block is wrong, naming each field', async () => {
    const { sim, runner } = await setup();

    const failed = failure(
      await runner.run({
        id: 'bad-block',
        input: {
          prompt: 'x',
          model: { loras: [{ file: '../evil.safetensors' }, { name: 'x' }], vae: { file: 'v.bin', token: 'hunter2' } },
        },
      }),
    );

    expect(failed.code).toBe('INVALID_INPUT');
    expect((failed.details['problems'] as { field: string }[]).map((p) => p.field)).toEqual([
      'model.loras[0].file',
      'model.loras[1].name',
      'model.loras[1].file',
      'model.vae.token',
      'model.vae.file',
    ]);
    expect(JSON.stringify(failed)).not.toContain('hunter2');
    expect(sim.calls).toEqual([]);
  });
});

describe('alwayson_scripts', () => {
  it('pass when A1111 has each script (any case), and fail INVALID_INPUT naming one it does not have, listing what it has', async () => {
    const sim = await simulator({ controlnet: false });
    const { runner } = testWorker(sim.url);
    const job = (id: string, scripts: Record<string, unknown>) =>
      runner.run({ id, input: { prompt: 'x', steps: 1, width: 64, height: 64, alwayson_scripts: scripts } });

    expect(generated(await job('scripts-ok', { ADetailer: { args: [false] } })).images).toHaveLength(1);
    const failed = failure(await job('scripts-missing', { controlnet: { args: [] }, AnimateDiff: { args: [] } }));

    expect(failed).toMatchObject({ code: 'INVALID_INPUT', phase: 'verifyingModels' });
    expect(failed.message).toContain(
      'alwayson_scripts names "controlnet", "AnimateDiff", which this A1111 does not have for txt2img',
    );
    expect((failed.details['problems'] as { field: string }[]).map((p) => p.field)).toEqual([
      'alwayson_scripts.controlnet',
      'alwayson_scripts.AnimateDiff',
    ]);
    expect(failed.details['installed']).toContain('adetailer');
    expect(failed.details['installed']).not.toContain('controlnet');
    expect(sim.callsTo('POST', '/txt2img')).toHaveLength(1);
  });
});
