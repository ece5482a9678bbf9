/**
 * Records the journals in test/replays/ from real runs against the simulator. It runs only when asked
 * (`npm run replays:record`), to re-record on purpose after a deliberate change to the machine; the
 * committed journals are then replayed by replay.test.ts.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { A1111Simulator } from '../../src/simulator/server.js';
import { FileServer } from '../support/file-server.js';
import { pngImage } from '../support/images.js';
import { simulator } from '../support/simulator.js';
import { testWorker } from '../support/worker.js';

const DIR = fileURLToPath(new URL('.', import.meta.url));
const recording = process.env['RECORD_REPLAYS'] === '1';
const journal = { JOURNAL_DIR: DIR, JOURNAL_KEEP: 'all' };
const input = { prompt: 'a lighthouse', steps: 6, seed: 42, width: 64, height: 64 };
const envelope = (method: string, endpoint: string, payload: Record<string, unknown>) => ({ api: { method, endpoint }, payload });

describe.skipIf(!recording)('recording replay journals', () => {
  it('happy-path (with progress)', async () => {
    const sim = await simulator({ stepDelayMs: 30 });
    const { runner } = testWorker(sim.url, journal);
    const outcome = await runner.run({ id: 'happy-path', input: { ...input, steps: 12 } }, { onProgress: () => undefined });
    expect(outcome.ok).toBe(true);
  });

  it('slow-boot', async () => {
    const sim = new A1111Simulator({ bootDelayMs: 400 });
    const url = await sim.reservePort();
    const started = sim.start();
    const { runner } = testWorker(url, { ...journal, A1111_READY_LOG_EVERY: '5' });
    expect((await runner.run({ id: 'slow-boot', input })).ok).toBe(true);
    await started;
    await sim.close();
  });

  it('burst-5xx', async () => {
    const sim = await simulator();
    sim.failNext(2, 503, '/sd-models');
    sim.failNext(3, 502, '/txt2img');
    const { runner } = testWorker(sim.url, journal);
    expect((await runner.run({ id: 'burst-5xx', input })).ok).toBe(true);
  });

  it('route-404-recovery', async () => {
    const sim = await simulator();
    sim.reloadOnNext('/txt2img', 200);
    const { runner } = testWorker(sim.url, journal);
    expect((await runner.run({ id: 'route-404-recovery', input })).ok).toBe(true);
  });

  it('sampler-404', async () => {
    const sim = await simulator();
    sim.rejectSampler('Euler a');
    const { runner } = testWorker(sim.url, journal);
    const outcome = await runner.run({ id: 'sampler-404', input: { ...input, sampler_name: 'Euler a' } });
    expect(outcome.ok ? 'ok' : outcome.failure.code).toBe('BACKEND_REJECTED');
  });

  it('crash', async () => {
    const sim = await simulator({ stepDelayMs: 10 });
    sim.crashDuringNextGeneration({ atStep: 3 });
    const { runner } = testWorker(sim.url, journal);
    const outcome = await runner.run({ id: 'crash', input: { ...input, steps: 20 } });
    expect(outcome.ok ? 'ok' : outcome.failure.code).toBe('BACKEND_CRASHED');
  });

  it('deadline', async () => {
    const sim = await simulator({ stepDelayMs: 50 });
    const { runner } = testWorker(sim.url, { ...journal, JOB_TIMEOUT_MS: '800' });
    const outcome = await runner.run({ id: 'deadline', input: { ...input, steps: 200 } });
    expect(outcome.ok ? 'ok' : outcome.failure.code).toBe('BACKEND_TIMEOUT');
  });

  it('unknown-checkpoint', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url, journal);
    const outcome = await runner.run({
      id: 'unknown-checkpoint',
      input: { ...input, override_settings: { sd_model_checkpoint: 'missing.safetensors' } },
    });
    expect(outcome.ok ? 'ok' : outcome.failure.code).toBe('MODEL_NOT_FOUND');
  });

  it('model-download', async () => {
    const modelsDir = await mkdtemp(path.join(tmpdir(), 'replay-models-'));
    const sim = await simulator({ modelsDir });
    const files = new FileServer();
    await files.start();
    const file = files.add('/downloaded.safetensors', 200_000);
    const { runner } = testWorker(sim.url, {
      ...journal,
      MODELS_DIR: modelsDir,
      MODEL_DOWNLOAD_HOSTS: '127.0.0.1',
      MODEL_DOWNLOAD_PRIVATE_ALLOW: '127.0.0.1',
      MODEL_REGISTRY_WAIT_MS: '150',
    });
    const outcome = await runner.run({
      id: 'model-download',
      input: {
        ...input,
        model: { checkpoint: 'downloaded.safetensors', url: `${files.url}/downloaded.safetensors`, sha256: file.sha256 },
      },
    });
    expect(outcome.ok).toBe(true);
    await rm(modelsDir, { recursive: true });
  });

  it('img2img-url (an init image fetched by URL)', async () => {
    const sim = await simulator();
    const files = new FileServer();
    await files.start();
    files.serve('/init.png', pngImage(64, 64, 3), { contentType: 'image/png' });
    const { runner } = testWorker(sim.url, { ...journal, IMAGE_URL_PRIVATE_ALLOW: '127.0.0.1' });
    const outcome = await runner.run({
      id: 'img2img-url',
      input: envelope('POST', '/sdapi/v1/img2img', { ...input, init_images: [`${files.url}/init.png`] }),
    });
    expect(outcome.ok).toBe(true);
  });

  it('image-fetch-failed', async () => {
    const sim = await simulator();
    const files = new FileServer();
    await files.start();
    const { runner } = testWorker(sim.url, { ...journal, IMAGE_URL_PRIVATE_ALLOW: '127.0.0.1' });
    const outcome = await runner.run({
      id: 'image-fetch-failed',
      input: envelope('POST', '/sdapi/v1/img2img', { ...input, init_images: [`${files.url}/missing.png`] }),
    });
    expect(outcome.ok ? 'ok' : outcome.failure.code).toBe('IMAGE_FETCH_FAILED');
  });

  it('extras-upscale', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url, journal);
    const image = pngImage(32, 32, 4).toString('base64');
    const outcome = await runner.run({
      id: 'extras-upscale',
      input: envelope('POST', '/sdapi/v1/extra-single-image', { image, upscaler_1: 'Lanczos', upscaling_resize: 2 }),
    });
    expect(outcome.ok).toBe(true);
  });

  it('read-samplers (no model verification)', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url, journal);
    expect((await runner.run({ id: 'read-samplers', input: envelope('GET', '/sdapi/v1/samplers', {}) })).ok).toBe(true);
  });

  it('writes the index of scenarios', async () => {
    await writeFile(
      path.join(DIR, 'README.md'),
      [
        '# Recorded journals',
        '',
        'Each `*.jsonl` here is the journal of a real job run against the A1111 simulator, recorded by',
        '`test/replays/record.test.ts`. `test/replays/replay.test.ts` replays every one of them on each test run:',
        'a change to the job machine that alters its behaviour shows up as a diverging replay.',
        '',
        '`v2/` keeps journals recorded by the txt2img-only worker (journal version 2). They replay on today\'s',
        'machine, read in its terms (src/journal/upgrade.ts): a journal recorded once stays replayable.',
        '',
        'When a change is deliberate, re-record them and review the difference:',
        '',
        '```sh',
        'npm run replays:record',
        'git diff --stat test/replays',
        '```',
        '',
      ].join('\n'),
    );
  });
});
