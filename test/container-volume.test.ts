/**
 * The volume image without a Docker engine: its own launch command, run by the worker with the
 * simulator in place of `python webui.py` and a folder in place of the WebUI's clone, against a network
 * volume laid out as ashleykleynhans/runpod-worker-a1111 lays them out; and the extensions the image
 * can be built with, pinned to the commits the simulator reports.
 */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { A1111Simulator } from '../src/simulator/server.js';
import { args, dockerfile, stageEnv } from './support/dockerfile.js';
import { FakeRunPod } from './support/fake-runpod.js';
import { simulator } from './support/simulator.js';
import { startWorker } from './support/worker-process.js';

const SIMULATOR = fileURLToPath(new URL('../dist/src/simulator/main.js', import.meta.url));
const planes: FakeRunPod[] = [];
afterEach(async () => {
  await Promise.all(planes.splice(0).map((plane) => plane.close()));
});

async function runVolumeImage(withControlNet: boolean) {
  const webui = await mkdtemp(path.join(tmpdir(), 'webui-'));
  if (withControlNet) await mkdir(path.join(webui, 'extensions', 'sd-webui-controlnet'), { recursive: true });
  // A space in the volume's path: the launch command must keep each folder one argument.
  const volume = await mkdtemp(path.join(tmpdir(), 'runpod volume-'));
  const models = path.join(volume, 'stable-diffusion-webui', 'models');
  await mkdir(path.join(models, 'ControlNet'), { recursive: true });
  await mkdir(path.join(models, 'Stable-diffusion'), { recursive: true });
  await writeFile(path.join(models, 'ControlNet', 'ip-adapter_faceid_sd15.bin'), 'controlnet');
  await writeFile(path.join(models, 'Stable-diffusion', 'realisticVision.safetensors'), 'checkpoint');

  const runpod = new FakeRunPod();
  planes.push(runpod);
  await runpod.start();
  const port = new URL(await new A1111Simulator().reservePort()).port;
  const env = stageEnv('volume');
  const launch = env['A1111_LAUNCH_COMMAND']!.replace('cd /stable-diffusion-webui', `cd "${webui}"`)
    .replace('LD_PRELOAD=libtcmalloc_minimal.so.4 exec python webui.py', `exec "${process.execPath}" "${SIMULATOR}"`)
    .replace('--port 3000', `--port ${port}`);
  runpod.enqueue({
    id: 'volume-job',
    input: {
      prompt: 'a portrait',
      steps: 1,
      width: 64,
      height: 64,
      model: { checkpoint: 'realisticVision.safetensors' },
      alwayson_scripts: {
        controlnet: { args: [{ enabled: true, module: 'ip-adapter_face_id', model: 'ip-adapter_faceid_sd15' }] },
      },
    },
  });
  const worker = startWorker({
    ...env,
    ...runpod.env(),
    MODEL_VOLUME_DIR: volume,
    A1111_LAUNCH_COMMAND: launch,
    A1111_BASE_URL: `http://127.0.0.1:${port}`,
  });
  const done = await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'volume-job');
  worker.child.kill('SIGTERM');
  expect((await worker.exited).code).toBe(0);
  return JSON.parse(done.body) as { output?: { images: string[] }; error?: string };
}

describe('the volume image', () => {
  it('reads every model from a volume laid out for ashleykleynhans/runpod-worker-a1111, ControlNet included', async () => {
    const body = await runVolumeImage(true);

    expect(body.error).toBeUndefined();
    expect(body.output?.images).toHaveLength(1);
  });

  it('passes --controlnet-dir only to a WebUI with the ControlNet extension (without it, A1111 would refuse the flag)', async () => {
    // The simulator without --controlnet-dir offers its stock models only: the volume's is not among them.
    const body = await runVolumeImage(false);

    expect(JSON.parse(body.error!)).toMatchObject({ code: 'MODEL_NOT_FOUND' });
    expect(body.error).toContain('ip-adapter_faceid_sd15');
  });
});

describe('the extensions the image can be built with', () => {
  it('are cloned at pinned commits, checked after checkout, which the simulated install reports', async () => {
    const pins = { controlnet: args()['CONTROLNET_COMMIT'], adetailer: args()['ADETAILER_COMMIT'] };
    expect(args()['EXTENSIONS']).toBe('');
    for (const commit of Object.values(pins)) expect(commit).toMatch(/^[0-9a-f]{40}$/);
    expect(dockerfile).toContain(`test "$(git -C "extensions/\${dir}" rev-parse HEAD)" = "\${commit}" || exit 1`);
    expect(dockerfile).toMatch(/\*\) echo "EXTENSIONS: unknown extension/);

    const sim = await simulator();
    const installed = (await (await fetch(`${sim.url}/sdapi/v1/extensions`)).json()) as {
      name: string;
      commit_hash: string;
    }[];
    const commit = (name: string) => installed.find((extension) => extension.name === name)?.commit_hash;
    expect(commit('sd-webui-controlnet')).toBe(pins.controlnet);
    expect(commit('adetailer')).toBe(pins.adetailer);
  });
});
