/**
 * Jobs that bring their checkpoint: a real file server on loopback, the simulator scanning a real
 * models directory, the worker downloading into it.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { ProgressUpdate } from '../../machines/job.types.js';
import { tokenFor } from '../../src/models/fetch-to-disk.js';
import { HOST_TAG, STALE_AFTER_MS } from '../../src/models/temp-files.js';
import { FileServer } from '../support/file-server.js';
import { simulator } from '../support/simulator.js';
import { generated, testWorker } from '../support/worker.js';

async function setup(env: Record<string, string> = {}) {
  const modelsDir = await mkdtemp(path.join(tmpdir(), 'models-'));
  const sim = await simulator({ modelsDir });
  const files = new FileServer();
  await files.start();
  const worker = testWorker(sim.url, {
    MODELS_DIR: modelsDir,
    MODEL_DOWNLOAD_HOSTS: '127.0.0.1',
    MODEL_DOWNLOAD_PRIVATE_ALLOW: '127.0.0.1',
    MODEL_REGISTRY_WAIT_MS: '200',
    ...env,
  });
  return { modelsDir, sim, files, worker };
}

function jobWith(model: Record<string, unknown>) {
  return { prompt: 'a lighthouse', steps: 2, seed: 3, width: 64, height: 64, model };
}

describe('a job whose checkpoint A1111 does not have', () => {
  it('downloads it, makes A1111 see it, and generates with it', async () => {
    const { modelsDir, sim, files, worker } = await setup();
    const file = files.add('/dream.safetensors', 3_000_000);
    const updates: ProgressUpdate[] = [];

    const outcome = await worker.runner.run(
      {
        id: 'job-download',
        input: jobWith({ checkpoint: 'dream.safetensors', url: `${files.url}/dream.safetensors`, sha256: file.sha256 }),
      },
      { onProgress: (update) => updates.push(update) },
    );

    if (!outcome.ok) throw new Error(outcome.failure.message);
    expect(JSON.parse(generated(outcome).info).sd_model_name).toBe('dream');
    expect(await readdir(modelsDir)).toEqual(['dream.safetensors']);
    expect((await readFile(path.join(modelsDir, 'dream.safetensors'))).equals(file.bytes)).toBe(true);
    expect(sim.callsTo('POST', '/txt2img')[0]?.body).toMatchObject({
      override_settings: { sd_model_checkpoint: 'dream.safetensors' },
    });
    expect(sim.callsTo('POST', '/txt2img')[0]?.body).not.toHaveProperty('model');
    expect(generated(outcome).worker.notes).toContain('checkpoint "dream.safetensors" downloaded (3000000 bytes)');
    expect(updates.filter((u) => u.stage === 'downloading').at(-1)).toMatchObject({
      bytes: 3_000_000,
      totalBytes: 3_000_000,
      progress: 1,
    });
  });

  it('refreshes A1111’s checkpoints and waits the registry delay before checking it again', async () => {
    const { sim, files, worker } = await setup();
    files.add('/dream.safetensors', 10_000);

    const outcome = await worker.runner.run({
      id: 'job-stabilize',
      input: jobWith({ checkpoint: 'dream.safetensors', url: `${files.url}/dream.safetensors` }),
    });

    expect(outcome.ok).toBe(true);
    const [refresh] = sim.callsTo('POST', '/refresh-checkpoints');
    const after = sim.callsTo('GET', '/sd-models').find((call) => call.at > refresh!.at);
    expect(after!.at - refresh!.at).toBeGreaterThanOrEqual(195);
    expect(worker.logs.statePath()).toEqual([
      'waitingForApi',
      'verifyingModels',
      'postDownloadStabilizing',
      'verifyingModels',
      'ready',
      'inferring',
      'delivering',
      'succeeded',
    ]);
    const said = (level: string) =>
      worker.logs
        .records()
        .filter((r) => r['level'] === level && r['jobId'] === 'job-stabilize')
        .map((r) => r['message']);
    expect(said('info')).toEqual(
      expect.arrayContaining([
        'A1111 refreshed its checkpoint list',
        'waiting 200 ms for A1111 to register the checkpoint',
        'A1111 answers after the download',
      ]),
    );
    expect(said('warn')).toEqual([]);
  });

  it('warns in the log when refreshing the list fails, and goes on to check the list all the same', async () => {
    const { sim, files, worker } = await setup();
    files.add('/dream.safetensors', 10_000);
    sim.failNext(100, 503, '/refresh-checkpoints');

    const outcome = await worker.runner.run({
      id: 'job-refresh-fails',
      input: jobWith({ checkpoint: 'dream.safetensors', url: `${files.url}/dream.safetensors` }),
    });

    const warning = worker.logs.records().find((r) => r['level'] === 'warn' && r['jobId'] === 'job-refresh-fails');
    expect(String(warning?.['message'])).toMatch(/^refresh-checkpoints failed \(.*503.*\); going on$/);
    // Without the refresh A1111 does not list the new file: the job says so instead of generating without it.
    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure).toMatchObject({ code: 'MODEL_NOT_FOUND', details: { requested: 'dream.safetensors' } });
    expect(sim.callsTo('POST', '/txt2img')).toEqual([]);
  });

  it('shares one download between two jobs that need the same file', async () => {
    const { files, worker } = await setup();
    files.add('/shared.safetensors', 2_000_000, { kind: 'slow', bytesPerChunk: 200_000, delayMs: 20 });
    const model = { checkpoint: 'shared.safetensors', url: `${files.url}/shared.safetensors` };

    const [a, b] = await Promise.all([
      worker.runner.run({ id: 'job-share-a', input: jobWith(model) }),
      worker.runner.run({ id: 'job-share-b', input: jobWith(model) }),
    ]);

    expect([a.ok, b.ok]).toEqual([true, true]);
    expect(files.requests.filter((r) => r.path === '/shared.safetensors')).toHaveLength(1);
  });

  it('downloads separately for jobs that expect different contents, failing only the one that is wrong', async () => {
    const { modelsDir, files, worker } = await setup();
    const file = files.add('/shared.safetensors', 1_000_000, { kind: 'slow', bytesPerChunk: 100_000, delayMs: 20 });
    const model = { checkpoint: 'shared.safetensors', url: `${files.url}/shared.safetensors` };

    const [wrong, first, right] = await Promise.all([
      worker.runner.run({ id: 'job-wrong-sha', input: jobWith({ ...model, sha256: 'b'.repeat(64) }) }),
      worker.runner.run({ id: 'job-no-sha', input: jobWith(model) }),
      worker.runner.run({ id: 'job-right-sha', input: jobWith({ ...model, sha256: file.sha256.toUpperCase() }) }),
    ]);

    expect([first.ok, right.ok]).toEqual([true, true]);
    if (wrong.ok) throw new Error('expected a failure');
    expect(wrong.failure).toMatchObject({
      code: 'MODEL_DOWNLOAD_FAILED',
      details: { reason: 'checksum', expected: 'b'.repeat(64), actual: file.sha256 },
    });
    expect((await readFile(path.join(modelsDir, 'shared.safetensors'))).equals(file.bytes)).toBe(true);
    expect((await readdir(modelsDir)).filter((name) => name.endsWith('.download'))).toEqual([]);
  });

  it('refuses a second source for a file name while the first downloads, rather than overwrite it', async () => {
    const { modelsDir, files, worker } = await setup();
    const sources = {
      // Slow enough (at least 0.8 s) that the second job asks while the first still downloads.
      one: files.add('/one.safetensors', 2_000_000, { kind: 'slow', bytesPerChunk: 50_000, delayMs: 20 }),
      two: files.add('/two.safetensors', 2_000_000, { kind: 'slow', bytesPerChunk: 50_000, delayMs: 20 }),
    };

    const outcomes = await Promise.all([
      worker.runner.run({
        id: 'job-from-one',
        input: jobWith({ checkpoint: 'named.safetensors', url: `${files.url}/one.safetensors` }),
      }),
      worker.runner.run({
        id: 'job-from-two',
        input: jobWith({ checkpoint: 'named.safetensors', url: `${files.url}/two.safetensors` }),
      }),
    ]);

    // Whichever job asked first downloads; the other is refused and downloads nothing.
    const winner = outcomes.findIndex((outcome) => outcome.ok);
    const [won, lost] = winner === 0 ? (['one', 'two'] as const) : (['two', 'one'] as const);
    const refused = outcomes[1 - winner]!;
    if (refused.ok) throw new Error('expected one failure');
    expect(refused.failure).toMatchObject({
      code: 'MODEL_DOWNLOAD_FAILED',
      retryable: true,
      details: {
        reason: 'conflict',
        url: `${files.url}/${lost}.safetensors`,
        otherUrl: `${files.url}/${won}.safetensors`,
      },
    });
    expect(files.requests.map((r) => r.path)).not.toContain(`/${lost}.safetensors`);
    expect((await readFile(path.join(modelsDir, 'named.safetensors'))).equals(sources[won].bytes)).toBe(true);
  });

  it('downloads a file with the longest name the rules allow', async () => {
    const { modelsDir, files, worker } = await setup();
    const name = `${'n'.repeat(200 - '.safetensors'.length)}.safetensors`;
    const file = files.add('/long.safetensors', 100_000);

    const outcome = await worker.runner.run({
      id: 'job-long-name',
      input: jobWith({ checkpoint: name, url: `${files.url}/long.safetensors` }),
    });

    expect(outcome.ok).toBe(true);
    expect((await readFile(path.join(modelsDir, name))).equals(file.bytes)).toBe(true);
  });

  it('shares one download between jobs that give the same sha256', async () => {
    const { files, worker } = await setup();
    const file = files.add('/same.safetensors', 1_000_000, { kind: 'slow', bytesPerChunk: 100_000, delayMs: 20 });
    const model = { checkpoint: 'same.safetensors', url: `${files.url}/same.safetensors`, sha256: file.sha256 };

    const outcomes = await Promise.all([
      worker.runner.run({ id: 'job-same-a', input: jobWith(model) }),
      worker.runner.run({ id: 'job-same-b', input: jobWith({ ...model, sha256: file.sha256.toUpperCase() }) }),
    ]);

    expect(outcomes.map((o) => o.ok)).toEqual([true, true]);
    expect(files.requests.filter((r) => r.path === '/same.safetensors')).toHaveLength(1);
  });

  it('answers a job whose signal is already aborted at once, leaving nothing running', async () => {
    const { files, worker } = await setup();
    files.add('/never.safetensors', 1_000_000);
    const gone = AbortSignal.abort();

    await expect(
      worker.downloader.fetch(
        { checkpoint: 'never.safetensors', url: `${files.url}/never.safetensors` },
        { signal: gone },
      ),
    ).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(files.requests).toEqual([]);
  });

  it('starts afresh for a job that comes after every waiter of a download left', async () => {
    const { modelsDir, files, worker } = await setup();
    const file = files.add('/again.safetensors', 1_000_000, { kind: 'slow', bytesPerChunk: 100_000, delayMs: 20 });
    const model = { checkpoint: 'again.safetensors', url: `${files.url}/again.safetensors` };
    const leaving = new AbortController();

    const abandoned = worker.downloader.fetch(model, { signal: leaving.signal });
    await vi.waitFor(() => expect(files.requests).toHaveLength(1));
    leaving.abort();
    await expect(abandoned).rejects.toMatchObject({ code: 'CANCELLED' });
    const result = await worker.downloader.fetch({ ...model, sha256: file.sha256 });

    expect(result).toMatchObject({ reused: false, bytes: 1_000_000, sha256: file.sha256 });
    expect(files.requests).toHaveLength(2);
    expect((await readFile(path.join(modelsDir, 'again.safetensors'))).equals(file.bytes)).toBe(true);
  });

  it('checks the sha256 of a file already on disk, and leaves a wrong one alone', async () => {
    const { modelsDir, files, worker, sim } = await setup();
    await writeFile(path.join(modelsDir, 'late.safetensors'), 'weights');
    const rightSha = createHash('sha256').update('weights').digest('hex');
    const model = { checkpoint: 'late.safetensors', url: `${files.url}/late.safetensors` };

    const wrong = await worker.runner.run({
      id: 'job-disk-wrong',
      input: jobWith({ ...model, sha256: 'c'.repeat(64) }),
    });
    const right = await worker.runner.run({ id: 'job-disk-right', input: jobWith({ ...model, sha256: rightSha }) });

    if (wrong.ok) throw new Error('expected a failure');
    expect(wrong.failure).toMatchObject({
      code: 'MODEL_DOWNLOAD_FAILED',
      details: { reason: 'checksum', actual: rightSha, onDisk: true },
    });
    expect(wrong.failure.message).toContain('already in MODELS_DIR');
    expect(right.ok).toBe(true);
    expect(await readFile(path.join(modelsDir, 'late.safetensors'), 'utf8')).toBe('weights');
    expect(files.requests).toEqual([]);
    expect(sim.callsTo('POST', '/txt2img')).toHaveLength(1);
  });

  it('uses a file already on disk that A1111 has not listed yet, without downloading', async () => {
    const { modelsDir, files, worker, sim } = await setup();
    await writeFile(path.join(modelsDir, 'late.safetensors'), 'weights');

    const outcome = await worker.runner.run({
      id: 'job-on-disk',
      input: jobWith({ checkpoint: 'late.safetensors', url: `${files.url}/late.safetensors` }),
    });

    expect(outcome.ok).toBe(true);
    expect(files.requests).toEqual([]);
    expect(sim.callsTo('POST', '/refresh-checkpoints')).toHaveLength(1);
  });

  it('fails MODEL_NOT_FOUND, with the list, when there is no URL to download from', async () => {
    const { worker, sim } = await setup();

    const outcome = await worker.runner.run({ id: 'job-no-url', input: jobWith({ checkpoint: 'absent.safetensors' }) });

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure).toMatchObject({ code: 'MODEL_NOT_FOUND', details: { available: ['model.safetensors'] } });
    expect(sim.callsTo('POST', '/txt2img')).toEqual([]);
  });
});

describe('a download that goes wrong leaves nothing behind', () => {
  async function failedDownload(
    behaviour: Parameters<FileServer['add']>[2],
    env: Record<string, string> = {},
    sha256?: string,
  ) {
    const { modelsDir, files, worker, sim } = await setup(env);
    files.add('/bad.safetensors', 1_000_000, behaviour);
    const outcome = await worker.runner.run({
      id: 'job-bad-download',
      input: jobWith({
        checkpoint: 'bad.safetensors',
        url: `${files.url}/bad.safetensors`,
        ...(sha256 ? { sha256 } : {}),
      }),
    });
    if (outcome.ok) throw new Error('expected a failure');
    expect(await readdir(modelsDir)).toEqual([]);
    expect(sim.callsTo('POST', '/txt2img')).toEqual([]);
    return outcome.failure;
  }

  it('on a checksum mismatch', async () => {
    const failure = await failedDownload(undefined, {}, 'a'.repeat(64));
    expect(failure).toMatchObject({
      code: 'MODEL_DOWNLOAD_FAILED',
      phase: 'verifyingModels',
      details: { reason: 'checksum', expected: 'a'.repeat(64) },
    });
    expect(failure.message).toContain('not the expected');
  });

  it('over the size cap, told by Content-Length', async () => {
    const failure = await failedDownload(undefined, { MODEL_DOWNLOAD_MAX_BYTES: '500000' });
    expect(failure.details).toMatchObject({ reason: 'size', bytes: 1_000_000, maxBytes: 500_000 });
  });

  it('over the size cap, found while streaming a body of unknown length', async () => {
    const failure = await failedDownload({ kind: 'no-length' }, { MODEL_DOWNLOAD_MAX_BYTES: '500000' });
    expect(failure.details).toMatchObject({ reason: 'size', maxBytes: 500_000 });
  });

  it('when the server drops the connection half-way', async () => {
    const failure = await failedDownload({ kind: 'drop-half-way' });
    expect(failure.details).toMatchObject({ reason: 'network' });
    expect(failure.message).toMatch(/after \d+ of 1000000 bytes/);
  });

  it('when the server answers an error status', async () => {
    const failure = await failedDownload({ kind: 'status', status: 403 });
    expect(failure.details).toMatchObject({ reason: 'status', status: 403 });
  });

  it('past its deadline', async () => {
    const failure = await failedDownload(
      { kind: 'slow', bytesPerChunk: 10_000, delayMs: 50 },
      { MODEL_DOWNLOAD_TIMEOUT_MS: '1000' },
    );
    expect(failure.details).toMatchObject({ reason: 'timeout' });
  });

  it('when the disk lacks room', async () => {
    const failure = await failedDownload(undefined, { MODEL_DOWNLOAD_MIN_FREE_BYTES: String(2 ** 52) });
    expect(failure.details).toMatchObject({ reason: 'disk' });
  });
});

describe('partial downloads', () => {
  it('removes only those nothing has written to for a while, so another worker’s download survives', async () => {
    const { modelsDir, worker } = await setup();
    const now = Date.now();
    const old = new Date(now - STALE_AFTER_MS - 60_000);
    const uuid = '0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0';
    await writeFile(path.join(modelsDir, `.killed.safetensors.other-host~${uuid}.download`), 'partial');
    await utimes(path.join(modelsDir, `.killed.safetensors.other-host~${uuid}.download`), old, old);
    await writeFile(path.join(modelsDir, `.live.safetensors.other-host~${uuid}.download`), 'partial');
    await writeFile(path.join(modelsDir, `.mine.safetensors.${HOST_TAG}~${uuid}.download`), 'partial');
    await writeFile(path.join(modelsDir, 'kept.safetensors'), 'weights');
    await utimes(path.join(modelsDir, 'kept.safetensors'), old, old);

    const beforeADownload = await worker.downloader.removeStaleTemporaryFiles({ now });
    const atStartUp = await worker.downloader.removeStaleTemporaryFiles({ now, atStartUp: true });

    expect(beforeADownload).toEqual([`.killed.safetensors.other-host~${uuid}.download`]);
    expect(atStartUp).toEqual([`.mine.safetensors.${HOST_TAG}~${uuid}.download`]);
    expect((await readdir(modelsDir)).sort()).toEqual([
      `.live.safetensors.other-host~${uuid}.download`,
      'kept.safetensors',
    ]);
  });
});

describe('downloads the worker refuses', () => {
  it('sends the Hugging Face and Civitai tokens only to their own hosts, over https, without a cross-host redirect', () => {
    const settings = { hfToken: 'hf_abc', civitaiToken: 'civ_def' };
    const hf = new URL('https://huggingface.co/a/b/resolve/main/x.safetensors');
    const civitai = new URL('https://civitai.com/api/download/models/1');

    expect(tokenFor(hf, hf, settings)).toBe('hf_abc');
    expect(tokenFor(civitai, civitai, settings)).toBe('civ_def');
    expect(tokenFor(new URL('http://huggingface.co/x'), new URL('http://huggingface.co/x'), settings)).toBeUndefined();
    expect(tokenFor(new URL('https://cdn-lfs.huggingface.co/x'), hf, settings)).toBeUndefined();
    expect(tokenFor(new URL('https://example.com/x'), new URL('https://example.com/x'), settings)).toBeUndefined();
    expect(tokenFor(hf, hf, { hfToken: undefined, civitaiToken: 'civ_def' })).toBeUndefined();
  });

  it('refuses a file name with a path in it before anything happens', async () => {
    const { files, worker, sim } = await setup();
    for (const checkpoint of ['../evil.safetensors', 'sub/dir.safetensors', 'model.bin']) {
      const outcome = await worker.runner.run({
        id: 'job-traversal',
        input: jobWith({ checkpoint, url: `${files.url}/x.safetensors` }),
      });
      if (outcome.ok) throw new Error('expected a failure');
      expect(outcome.failure).toMatchObject({ code: 'INVALID_INPUT', phase: 'booting' });
      expect(outcome.failure.message).toContain('model.checkpoint');
    }
    expect(files.requests).toEqual([]);
    expect(sim.calls).toEqual([]);
  });

  it('refuses a private address that is not explicitly allowed', async () => {
    const { files, worker } = await setup({ MODEL_DOWNLOAD_PRIVATE_ALLOW: '' });
    files.add('/dream.safetensors', 1_000);

    const outcome = await worker.runner.run({
      id: 'job-private',
      input: jobWith({ checkpoint: 'dream.safetensors', url: `${files.url}/dream.safetensors` }),
    });

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure).toMatchObject({ code: 'MODEL_DOWNLOAD_FAILED', details: { reason: 'refused' } });
    expect(outcome.failure.message).toContain('127.0.0.1, a private, loopback or link-local address');
    expect(files.requests).toEqual([]);
  });

  it('refuses a redirect to a private address, checked on the redirect itself', async () => {
    const { files, worker } = await setup();
    files.add('/hop.safetensors', 1_000, { kind: 'redirect', to: 'http://169.254.169.254/latest/meta-data/iam' });

    const outcome = await worker.runner.run({
      id: 'job-redirect',
      input: jobWith({ checkpoint: 'hop.safetensors', url: `${files.url}/hop.safetensors` }),
    });

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure.details).toMatchObject({ reason: 'refused', host: '169.254.169.254' });
    expect(files.requests.map((r) => r.path)).toEqual(['/hop.safetensors']);
  });

  it('refuses a host that is not on the allowlist', async () => {
    const { files, worker } = await setup({ MODEL_DOWNLOAD_HOSTS: 'huggingface.co' });

    const outcome = await worker.runner.run({
      id: 'job-host',
      input: jobWith({ checkpoint: 'x.safetensors', url: `${files.url}/x.safetensors` }),
    });

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure.message).toContain('127.0.0.1 is not on MODEL_DOWNLOAD_HOSTS (huggingface.co)');
    expect(files.requests).toEqual([]);
  });

  it('refuses tokens in the job input without repeating them', async () => {
    const { worker, sim } = await setup();
    const inputs = [
      jobWith({
        checkpoint: 'x.safetensors',
        url: 'https://huggingface.co/a/b/resolve/main/x.safetensors?token=hf_secret123',
      }),
      jobWith({ checkpoint: 'x.safetensors', url: 'https://huggingface.co/x.safetensors', hf_token: 'hf_secret123' }),
      { ...jobWith({ checkpoint: 'x.safetensors' }), civitai_token: 'hf_secret123' },
    ];
    for (const input of inputs) {
      const outcome = await worker.runner.run({ id: 'job-token', input });
      if (outcome.ok) throw new Error('expected a failure');
      expect(outcome.failure.code).toBe('INVALID_INPUT');
      expect(outcome.failure.message).toContain('HF_TOKEN and CIVITAI_TOKEN');
      expect(JSON.stringify(outcome.failure)).not.toContain('hf_secret123');
    }
    expect(worker.logs.lines.join('\n')).not.toContain('hf_secret123');
    expect(sim.calls).toEqual([]);
  });
});
