/**
 * ControlNet models a job names in its units or brings in `model.controlnets`, checked against what the
 * ControlNet extension lists before anything is generated: over real HTTP against the simulator, whose
 * ControlNet folder is a real folder on disk, and a loopback file server for the downloads.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { JobOutcome } from '../../src/job/outcome.js';
import { resolveControlNetModel } from '../../src/job/verify-controlnet.js';
import { FileServer } from '../support/file-server.js';
import { simulator } from '../support/simulator.js';
import { generated, testWorker } from '../support/worker.js';

/** A file of `size` bytes whose 64 KiB at 1 MiB are known, and A1111's short hash of it. */
function modelFile(size: number, fill: number): { bytes: Buffer; hash: string } {
  const bytes = Buffer.alloc(size, fill);
  const window = bytes.subarray(0x100000, 0x110000);
  return { bytes, hash: createHash('sha256').update(window).digest('hex').slice(0, 8) };
}

async function controlnetFolder() {
  const dir = path.join(await mkdtemp(path.join(tmpdir(), 'controlnet-')), 'ControlNet');
  await mkdir(path.join(dir, 'sd15'), { recursive: true });
  const canny = modelFile(1_200_000, 1);
  const depth = modelFile(1_200_000, 2);
  await writeFile(path.join(dir, 'sd15', 'control_v11p_sd15_canny.pth'), canny.bytes);
  await writeFile(path.join(dir, 'control_v11f1p_sd15_depth.safetensors'), depth.bytes);
  return { dir, canny, depth };
}

function failure(outcome: JobOutcome) {
  if (outcome.ok) throw new Error('expected the job to fail');
  return outcome.failure;
}

const unit = (fields: Record<string, unknown>) => ({ enabled: true, module: 'canny', weight: 1, ...fields });

describe('resolveControlNetModel', () => {
  const listed = ['control_v11p_sd15_canny [d14c016b]', 'control_v11p_sd15_canny_anime [0c5e5a5e]', 'Depth [12345678]'];

  it('resolves as the extension does: the listed name, the stem in any case, the shortest stem containing it', () => {
    expect(resolveControlNetModel('Depth [12345678]', listed)).toBe('Depth [12345678]');
    expect(resolveControlNetModel('DEPTH', listed)).toBe('Depth [12345678]');
    expect(resolveControlNetModel('canny', listed)).toBe('control_v11p_sd15_canny [d14c016b]');
    expect(resolveControlNetModel('canny', listed, true)).toBeNull();
    expect(resolveControlNetModel('control_v11p_sd15_canny [ffffffff]', listed)).toBeNull();
    expect(resolveControlNetModel('openpose', listed)).toBeNull();
  });
});

describe('ControlNet units', () => {
  it('pass with a listed model, any case or a part of its name, noting what a partial name resolved to', async () => {
    const folder = await controlnetFolder();
    const sim = await simulator({ controlnetDir: folder.dir });
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({
      id: 'cn-ok',
      input: {
        prompt: 'a harbour',
        steps: 1,
        width: 64,
        height: 64,
        alwayson_scripts: {
          ControlNet: {
            args: [
              unit({ model: `control_v11p_sd15_canny [${folder.canny.hash}]` }),
              unit({ model: 'depth' }),
              unit({ model: 'None' }),
              unit({ model: 'not_there', enabled: false }),
            ],
          },
        },
      },
    });

    const output = generated(outcome);
    expect(output.worker.notes).toEqual([
      'ControlNet unit alwayson_scripts.ControlNet.args[3] is not enabled ("enabled": true), so the extension leaves it out',
      `ControlNet model "depth" (in alwayson_scripts.ControlNet.args[1].model) is "control_v11f1p_sd15_depth [${folder.depth.hash}]", as the extension matches it`,
    ]);
    // The units reach A1111 as written; the list was read once, without a rescan (every name resolved).
    const sent = sim.callsTo('POST', '/txt2img')[0]?.body as { alwayson_scripts: { ControlNet: { args: unknown[] } } };
    expect(sent.alwayson_scripts.ControlNet.args).toHaveLength(4);
    const listings = sim.calls.filter((call) => call.path === '/controlnet/model_list');
    expect(listings.map((call) => call.query)).toEqual(['?update=false']);
  });

  it('fail MODEL_NOT_FOUND before generating for a model the extension does not list, naming the unit and close names', async () => {
    const folder = await controlnetFolder();
    const sim = await simulator({ controlnetDir: folder.dir });
    const { runner } = testWorker(sim.url);

    const failed = failure(
      await runner.run({
        id: 'cn-missing',
        input: {
          prompt: 'x',
          alwayson_scripts: { controlnet: { args: [unit({ model: 'control_v11p_sd15_cany' })] } },
        },
      }),
    );

    expect(failed).toMatchObject({ code: 'MODEL_NOT_FOUND', phase: 'verifyingModels', retryable: false });
    expect(failed.message).toContain(
      `ControlNet model "control_v11p_sd15_cany" (in alwayson_scripts.controlnet.args[0].model) is not one the ControlNet extension lists; close: "control_v11p_sd15_canny [${folder.canny.hash}]"`,
    );
    expect(failed.details['available']).toEqual([
      `control_v11f1p_sd15_depth [${folder.depth.hash}]`,
      `control_v11p_sd15_canny [${folder.canny.hash}]`,
    ]);
    expect(sim.callsTo('POST', '/txt2img')).toEqual([]);
    // A name the list lacks makes the extension look at its folder again before the job fails.
    expect(sim.calls.filter((call) => call.path === '/controlnet/model_list').map((call) => call.query)).toEqual([
      '?update=false',
      '?update=true',
    ]);
  });

  it('pass with the exact "name [hash]" of a file the list hides behind another of its name, found in CONTROLNET_DIR', async () => {
    const folder = await controlnetFolder();
    // A second canny in another folder: the extension lists one entry per name, the later file's.
    const other = modelFile(1_200_000, 3);
    await mkdir(path.join(folder.dir, 'v2'), { recursive: true });
    await writeFile(path.join(folder.dir, 'v2', 'control_v11p_sd15_canny.pth'), other.bytes);
    const sim = await simulator({ controlnetDir: folder.dir });
    const { runner } = testWorker(sim.url, { CONTROLNET_DIR: folder.dir });
    const listed = (await (await fetch(`${sim.url}/controlnet/model_list`)).json()) as { model_list: string[] };
    const shown = listed.model_list.find((name) => name.startsWith('control_v11p_sd15_canny '))!;
    const hiddenHash = shown.endsWith(`[${folder.canny.hash}]`) ? other.hash : folder.canny.hash;
    expect(listed.model_list.filter((name) => name.startsWith('control_v11p_sd15_canny '))).toHaveLength(1);
    const job = (model: string) => ({
      prompt: 'x',
      steps: 1,
      width: 64,
      height: 64,
      alwayson_scripts: { controlnet: { args: [unit({ model })] } },
    });

    const outcome = await runner.run({ id: 'cn-hidden', input: job(`control_v11p_sd15_canny [${hiddenHash}]`) });

    const hiddenFile = path.join(folder.dir, hiddenHash === other.hash ? 'v2' : 'sd15', 'control_v11p_sd15_canny.pth');
    expect(generated(outcome).worker.notes).toEqual([
      `ControlNet model "control_v11p_sd15_canny [${hiddenHash}]" (in alwayson_scripts.controlnet.args[0].model) is ${hiddenFile}: the extension lists "${shown}" for that name (two files of one name) and finds this one by its hash`,
    ]);
    const sent = sim.callsTo('POST', '/txt2img')[0]?.body as { alwayson_scripts: { controlnet: { args: unknown[] } } };
    expect(sent.alwayson_scripts.controlnet.args[0]).toMatchObject({
      model: `control_v11p_sd15_canny [${hiddenHash}]`,
    });

    // A hash no file of that name has is still refused.
    const failed = failure(await runner.run({ id: 'cn-wrong-hash', input: job('control_v11p_sd15_canny [00000000]') }));
    expect(failed.code).toBe('MODEL_NOT_FOUND');
    expect(failed.message).toContain(`close: "${shown}"`);
  });

  it('leave out a unit that is not enabled, as the extension does, and say so', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({
      id: 'cn-off',
      input: {
        prompt: 'x',
        steps: 1,
        width: 64,
        height: 64,
        alwayson_scripts: {
          controlnet: { args: [{ module: 'canny', model: 'not_installed' }, unit({ model: 'x', enabled: 'false' })] },
        },
      },
    });

    expect(generated(outcome).worker.notes).toEqual([
      'ControlNet unit alwayson_scripts.controlnet.args[0] is not enabled ("enabled": true), so the extension leaves it out',
      'ControlNet unit alwayson_scripts.controlnet.args[1] is not enabled ("enabled": true), so the extension leaves it out',
    ]);
    expect(sim.calls.filter((call) => call.path === '/controlnet/model_list')).toEqual([]);
  });
});

describe('ControlNet models a job brings', () => {
  async function setup(options: { controlnet?: boolean } = {}) {
    const folder = await controlnetFolder();
    const sim = await simulator({ controlnetDir: folder.dir, ...options });
    const files = new FileServer();
    await files.start();
    const worker = testWorker(sim.url, {
      CONTROLNET_DIR: folder.dir,
      MODEL_DOWNLOAD_HOSTS: '127.0.0.1',
      MODEL_DOWNLOAD_PRIVATE_ALLOW: '127.0.0.1',
    });
    return { folder, sim, files, ...worker };
  }

  it('leave a unit naming a model the list hides passing after a download in the same job', async () => {
    const { folder, sim, files, runner } = await setup();
    const other = modelFile(1_200_000, 3);
    await mkdir(path.join(folder.dir, 'v2'), { recursive: true });
    await writeFile(path.join(folder.dir, 'v2', 'control_v11p_sd15_canny.pth'), other.bytes);
    const listed = (await (await fetch(`${sim.url}/controlnet/model_list`)).json()) as { model_list: string[] };
    const shown = listed.model_list.find((name) => name.startsWith('control_v11p_sd15_canny '))!;
    const hiddenHash = shown.endsWith(`[${folder.canny.hash}]`) ? other.hash : folder.canny.hash;
    const served = files.add('/cn/control_sd15_seg.safetensors', 1_300_000);

    const outcome = await runner.run({
      id: 'cn-hidden-and-bring',
      input: {
        prompt: 'x',
        steps: 1,
        width: 64,
        height: 64,
        alwayson_scripts: { controlnet: { args: [unit({ model: `control_v11p_sd15_canny [${hiddenHash}]` })] } },
        model: {
          controlnets: [
            {
              file: 'control_sd15_seg.safetensors',
              url: `${files.url}/cn/control_sd15_seg.safetensors`,
              sha256: served.sha256,
            },
          ],
        },
      },
    });

    const notes = generated(outcome).worker.notes;
    expect(notes).toContain('ControlNet model "control_sd15_seg.safetensors" downloaded (1300000 bytes)');
    expect(notes.some((note) => note.includes(`"control_v11p_sd15_canny [${hiddenHash}]"`))).toBe(true);
  });

  it('are downloaded into CONTROLNET_DIR, listed by the extension after its rescan, and used by a unit', async () => {
    const { folder, sim, files, runner } = await setup();
    const served = files.add('/cn/control_lora_rank128_sdxl_canny.safetensors', 1_500_000);
    const hash = createHash('sha256').update(served.bytes.subarray(0x100000, 0x110000)).digest('hex').slice(0, 8);

    const outcome = await runner.run({
      id: 'cn-bring',
      input: {
        prompt: 'x',
        steps: 1,
        width: 64,
        height: 64,
        alwayson_scripts: { controlnet: { args: [unit({ model: 'control_lora_rank128_sdxl_canny' })] } },
        model: {
          controlnets: [
            {
              file: 'control_lora_rank128_sdxl_canny.safetensors',
              url: `${files.url}/cn/control_lora_rank128_sdxl_canny.safetensors`,
              sha256: served.sha256,
            },
          ],
        },
      },
    });

    expect(generated(outcome).worker.notes).toEqual([
      'ControlNet model "control_lora_rank128_sdxl_canny.safetensors" downloaded (1500000 bytes)',
    ]);
    const stored = await readFile(path.join(folder.dir, 'control_lora_rank128_sdxl_canny.safetensors'));
    expect(stored.equals(served.bytes)).toBe(true);
    // Listed before the download (missing) and after it (found, with the file's own hash).
    const after = await fetch(`${sim.url}/controlnet/model_list`).then(
      (r) => r.json() as Promise<{ model_list: string[] }>,
    );
    expect(after.model_list).toContain(`control_lora_rank128_sdxl_canny [${hash}]`);
    expect(sim.calls.filter((call) => call.path === '/controlnet/model_list').length).toBeGreaterThanOrEqual(2);
    expect(sim.callsTo('POST', '/txt2img')[0]?.body).not.toHaveProperty('model');
  });

  it('are not downloaded when the extension lists them already, and one without a URL that is missing fails', async () => {
    const { files, sim, runner } = await setup();
    files.add('/cn/control_v11p_sd15_canny.pth', 1_000);

    generated(
      await runner.run({
        id: 'cn-present',
        input: {
          prompt: 'x',
          steps: 1,
          width: 64,
          height: 64,
          model: {
            controlnets: [{ file: 'control_v11p_sd15_canny.pth', url: `${files.url}/cn/control_v11p_sd15_canny.pth` }],
          },
        },
      }),
    );
    // A brought file must be that very file: "canny" is part of a listed name, but it is not one.
    const failed = failure(
      await runner.run({
        id: 'cn-absent',
        input: { prompt: 'x', model: { controlnets: [{ file: 'canny.safetensors' }] } },
      }),
    );

    expect(files.hits('/cn/control_v11p_sd15_canny.pth')).toBe(0);
    expect(failed.code).toBe('MODEL_NOT_FOUND');
    expect(failed.message).toContain(
      'ControlNet model "canny" (in model.controlnets) is not one the ControlNet extension lists',
    );
    expect(sim.callsTo('POST', '/txt2img')).toHaveLength(1);
  });

  it('are refused INVALID_INPUT when A1111 has no ControlNet extension, before any download', async () => {
    const { files, sim, runner } = await setup({ controlnet: false });
    files.add('/cn/x.safetensors', 1_000);

    const failed = failure(
      await runner.run({
        id: 'cn-no-extension',
        input: {
          prompt: 'x',
          model: { controlnets: [{ file: 'x.safetensors', url: `${files.url}/cn/x.safetensors` }] },
        },
      }),
    );

    expect(failed.code).toBe('INVALID_INPUT');
    expect(failed.message).toContain('this A1111 has no ControlNet extension');
    expect((failed.details['problems'] as { field: string }[])[0]?.field).toBe('model.controlnets');
    expect(files.hits('/cn/x.safetensors')).toBe(0);
    expect(sim.calls.filter((call) => call.path === '/controlnet/model_list')).toEqual([]);
    expect(sim.callsTo('POST', '/txt2img')).toEqual([]);
  });

  it('are refused when an entry is wrong, naming the field and the endings the extension loads', async () => {
    const { sim, runner } = await setup();

    const failed = failure(
      await runner.run({ id: 'cn-bad', input: { prompt: 'x', model: { controlnets: [{ file: 'canny.onnx' }] } } }),
    );

    expect(failed.code).toBe('INVALID_INPUT');
    expect(failed.details['problems']).toEqual([
      {
        field: 'model.controlnets[0].file',
        value: 'canny.onnx',
        rule: 'a plain file name ending in .safetensors, .pth, .pt, .ckpt, .bin (it must end in .safetensors, .pth, .pt, .ckpt, .bin)',
      },
    ]);
    expect(sim.calls).toEqual([]);
  });
});
