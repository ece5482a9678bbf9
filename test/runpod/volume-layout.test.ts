/**
 * Model folders on a network volume (MODEL_VOLUME_DIR), in both layouts in use: the worker process
 * finds them, hands them to the WebUI it starts (the simulator's command line names "$MODELS_DIR",
 * "$LORA_DIR", … as the volume image's does), and a job uses the models it finds there.
 */
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { placeOnVolume } from '../../src/models/volume-layout.js';
import { A1111Simulator } from '../../src/simulator/server.js';
import { FakeRunPod } from '../support/fake-runpod.js';
import { FileServer } from '../support/file-server.js';
import { startWorker } from '../support/worker-process.js';

const SIMULATOR = fileURLToPath(new URL('../../dist/src/simulator/main.js', import.meta.url));
const planes: FakeRunPod[] = [];
afterEach(async () => {
  await Promise.all(planes.splice(0).map((plane) => plane.close()));
});

/** A volume with a checkpoint, a LoRA and a ControlNet model below `root` (the volume or its WebUI install). */
async function volume(layout: 'webui-install' | 'worker') {
  const dir = await mkdtemp(path.join(tmpdir(), 'volume-'));
  const root = layout === 'webui-install' ? path.join(dir, 'stable-diffusion-webui') : dir;
  for (const folder of ['models/Stable-diffusion', 'models/Lora', 'models/VAE', 'models/ControlNet', 'embeddings']) {
    await mkdir(path.join(root, folder), { recursive: true });
  }
  await writeFile(path.join(root, 'models/Stable-diffusion/on_volume.safetensors'), 'checkpoint');
  await writeFile(path.join(root, 'models/Lora/volume_style.safetensors'), 'lora');
  await writeFile(path.join(root, 'models/ControlNet/volume_canny.pth'), 'controlnet');
  return { dir, root };
}

async function run(volumeDir: string, input: Record<string, unknown>, env: Record<string, string> = {}) {
  const runpod = new FakeRunPod();
  planes.push(runpod);
  await runpod.start();
  const url = await new A1111Simulator().reservePort();
  const flags =
    '--ckpt-dir "$MODELS_DIR" --lora-dir "$LORA_DIR" --vae-dir "$VAE_DIR" --embeddings-dir "$EMBEDDINGS_DIR" --controlnet-dir "$CONTROLNET_DIR"';
  runpod.enqueue({ id: 'on-volume', input });
  const worker = startWorker({
    ...runpod.env(),
    ...env,
    A1111_BASE_URL: url,
    MODEL_VOLUME_DIR: volumeDir,
    A1111_LAUNCH_COMMAND: `"${process.execPath}" "${SIMULATOR}" --port ${new URL(url).port} --api --nowebui ${flags}`,
  });
  await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'on-volume');
  worker.child.kill('SIGTERM');
  await worker.exited;
  return { body: JSON.parse(runpod.results('on-volume')[0]!.body) as Record<string, unknown>, worker };
}

const job = {
  prompt: 'a harbour <lora:volume_style:0.7>',
  steps: 1,
  width: 64,
  height: 64,
  alwayson_scripts: { controlnet: { args: [{ enabled: true, module: 'canny', model: 'volume_canny' }] } },
  model: { checkpoint: 'on_volume.safetensors' },
};

describe('a network volume', () => {
  it('laid out for ashleykleynhans/runpod-worker-a1111 (a WebUI install on it) is read unchanged', async () => {
    const { dir, root } = await volume('webui-install');

    const { body, worker } = await run(dir, job);

    expect(body['error']).toBeUndefined();
    expect((body['output'] as { images: string[] }).images).toHaveLength(1);
    const found = worker.records().find((r) => String(r['message']).startsWith('model folders on the network volume'));
    expect(found?.['message']).toBe(
      `model folders on the network volume: a WebUI install on the volume (the layout of ashleykleynhans/runpod-worker-a1111), below ${root}`,
    );
    expect(found).toMatchObject({
      layout: 'webui-install',
      MODELS_DIR: path.join(root, 'models/Stable-diffusion'),
      CONTROLNET_DIR: path.join(root, 'models/ControlNet'),
      EMBEDDINGS_DIR: path.join(root, 'embeddings'),
    });
  });

  it('laid out for this worker is read from its root, and a LoRA a job brings is downloaded onto it', async () => {
    const { dir } = await volume('worker');
    const files = new FileServer();
    await files.start();
    const served = files.add('/brought.safetensors', 30_000);

    const { body } = await run(
      dir,
      {
        ...job,
        prompt: `${job.prompt} <lora:brought:1>`,
        model: { ...job.model, loras: [{ file: 'brought.safetensors', url: `${files.url}/brought.safetensors` }] },
      },
      { MODEL_DOWNLOAD_HOSTS: '127.0.0.1', MODEL_DOWNLOAD_PRIVATE_ALLOW: '127.0.0.1' },
    );

    expect(body['error']).toBeUndefined();
    expect((await readFile(path.join(dir, 'models/Lora/brought.safetensors'))).equals(served.bytes)).toBe(true);
  });

  it('keeps a folder set on its own, and changes nothing without MODEL_VOLUME_DIR', () => {
    const env = { MODEL_VOLUME_DIR: '/runpod-volume', LORA_DIR: '/loras' };
    const exists = (dir: string) => dir === '/runpod-volume/stable-diffusion-webui/models';

    const { settings, volume: layout } = placeOnVolume(loadConfig(env).models, env, exists);
    const plain = loadConfig({});

    expect(layout).toEqual({
      layout: 'webui-install',
      root: '/runpod-volume/stable-diffusion-webui',
      found: ['MODELS_DIR', 'VAE_DIR', 'EMBEDDINGS_DIR', 'CONTROLNET_DIR'],
    });
    expect(settings.loraDir).toBe('/loras');
    expect(settings.vaeDir).toBe('/runpod-volume/stable-diffusion-webui/models/VAE');
    expect(placeOnVolume(plain.models, {}, exists)).toEqual({ settings: plain.models, volume: null });
  });
});
