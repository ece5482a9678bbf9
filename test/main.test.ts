/**
 * The README's main command: the built worker, run as its own process, processes a job against the
 * embedded simulator and writes the images to disk. Needs `npm run build` first (npm test does it).
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { decodePng } from './support/png.js';

const ENTRY = fileURLToPath(new URL('../dist/src/main.js', import.meta.url));
/** The one-file worker the image runs (the rest of the suite runs it too, through test/support/worker-process.ts). */
const BUNDLE = fileURLToPath(new URL('../dist/bundle/main.js', import.meta.url));

function runWorker(args: string[], cwd: string, env: Record<string, string> = {}, entry = ENTRY) {
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run npm run build`);
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [entry, ...args],
      { cwd, env: { PATH: process.env['PATH'] ?? '', LOG_FORMAT: 'json', ...env }, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('the worker command line', () => {
  it('runs ./test_input.json on the embedded simulator, says so, and writes decodable PNGs', async () => {
    const cwd = await mkdtemp(path.join(tmpdir(), 'worker-cli-'));
    await writeFile(
      path.join(cwd, 'test_input.json'),
      JSON.stringify({ input: { prompt: 'a lighthouse', steps: 4, seed: 77, batch_size: 2, width: 128, height: 128 } }),
    );

    const { code, stdout } = await runWorker(['--simulator'], cwd);

    expect(code).toBe(0);
    expect(stdout).toContain('Using the embedded A1111 SIMULATOR');
    const files = (await readdir(path.join(cwd, 'output', 'local_test'))).sort();
    expect(files).toEqual(['image-0.png', 'image-1.png', 'result.json']);
    const png = decodePng(await readFile(path.join(cwd, 'output', 'local_test', 'image-1.png')));
    expect([png.width, png.height]).toEqual([128, 128]);
    expect(png.text['parameters']).toContain('Seed: 78');
    const result = JSON.parse(await readFile(path.join(cwd, 'output', 'local_test', 'result.json'), 'utf8'));
    expect(result.output.images).toEqual(['output/local_test/image-0.png', 'output/local_test/image-1.png']);
    expect(result.output.worker.timings_ms.total).toBeGreaterThan(0);
    const lines = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    // The result is printed too, as written to result.json.
    const printed = lines.find((l) => String(l['message']).startsWith('Job result: '));
    expect(JSON.parse(String(printed!['message']).slice('Job result: '.length))).toEqual(result);
    expect(lines.filter((l) => l['message'] === 'transition').map((l) => l['to'])).toEqual([
      'waitingForApi',
      'verifyingModels',
      'ready',
      'inferring',
      'delivering',
      'succeeded',
    ]);
  });

  it('runs the same from the image’s one-file bundle: the embedded simulator, the images, its version', async () => {
    const cwd = await mkdtemp(path.join(tmpdir(), 'worker-cli-'));
    const input = JSON.stringify({ input: { prompt: 'a lighthouse', steps: 2, seed: 5, width: 64, height: 64 } });
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

    const { code, stdout } = await runWorker(['--simulator', '--test_input', input], cwd, {}, BUNDLE);

    expect(code).toBe(0);
    expect(stdout).toContain('Using the embedded A1111 SIMULATOR');
    const png = decodePng(await readFile(path.join(cwd, 'output', 'local_test', 'image-0.png')));
    expect([png.width, png.height]).toEqual([64, 64]);
    expect(png.text['parameters']).toContain('Seed: 5');
    expect(await runWorker(['--version'], cwd, {}, BUNDLE)).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
  });

  it('takes the job from --test_input and exits 1 with the error when it fails', async () => {
    const cwd = await mkdtemp(path.join(tmpdir(), 'worker-cli-'));

    const { code, stdout } = await runWorker(
      ['--simulator', '--test_input', '{"id":"bad-1","input":{"steps":0}}'],
      cwd,
    );

    expect(code).toBe(1);
    const result = JSON.parse(await readFile(path.join(cwd, 'output', 'bad-1', 'result.json'), 'utf8'));
    expect(JSON.parse(result.error)).toMatchObject({ code: 'INVALID_INPUT', phase: 'booting' });
    expect(stdout).toContain('Job bad-1 failed');
  });

  it('runs an envelope from --test_input: an upscale written as a picture, a listing as JSON', async () => {
    const cwd = await mkdtemp(path.join(tmpdir(), 'worker-cli-'));
    const image = PNG.sync.write(new PNG({ width: 40, height: 24 })).toString('base64');
    const upscale = {
      id: 'upscale-1',
      input: {
        api: { method: 'POST', endpoint: '/sdapi/v1/extra-single-image' },
        payload: { image, upscaler_1: 'Lanczos', upscaling_resize: 2 },
      },
    };
    const listing = { id: 'samplers-1', input: { api: { method: 'GET', endpoint: 'sdapi/v1/samplers' }, payload: {} } };

    const upscaled = await runWorker(['--simulator', '--test_input', JSON.stringify(upscale)], cwd);
    const listed = await runWorker(['--simulator', '--test_input', JSON.stringify(listing)], cwd);

    expect([upscaled.code, listed.code]).toEqual([0, 0]);
    const png = decodePng(await readFile(path.join(cwd, 'output', 'upscale-1', 'image-0.png')));
    expect([png.width, png.height]).toEqual([80, 48]);
    const result = JSON.parse(await readFile(path.join(cwd, 'output', 'upscale-1', 'result.json'), 'utf8'));
    expect(result.output).toMatchObject({
      image: 'output/upscale-1/image-0.png',
      html_info: '<p>Postprocess upscale by: 2.0, Postprocess upscaler: Lanczos</p>',
    });
    const samplers = JSON.parse(await readFile(path.join(cwd, 'output', 'samplers-1', 'result.json'), 'utf8'));
    expect(samplers.output).toContainEqual(expect.objectContaining({ name: 'DPM++ 2M' }));
  });

  it('exits 1 naming the variable, value and rule when the configuration is bad', async () => {
    const cwd = await mkdtemp(path.join(tmpdir(), 'worker-cli-'));

    const { code, stderr } = await runWorker(['--test_input', '{"input":{}}'], cwd, { A1111_HTTP_RETRIES: 'lots' });

    expect(code).toBe(1);
    expect(stderr).toContain('A1111_HTTP_RETRIES="lots": must be a whole number from 0 to 100');
  });

  it('removes partial downloads a killed worker left in MODELS_DIR when it starts', async () => {
    const cwd = await mkdtemp(path.join(tmpdir(), 'worker-cli-'));
    const modelsDir = await mkdtemp(path.join(tmpdir(), 'worker-models-'));
    const leftBehind = path.join(modelsDir, '.big.safetensors.0b1c.download');
    await writeFile(leftBehind, 'partial');
    const longAgo = new Date(Date.now() - 24 * 3600_000);
    await utimes(leftBehind, longAgo, longAgo);
    await writeFile(path.join(modelsDir, 'kept.safetensors'), 'weights');

    const { stdout } = await runWorker(['--test_input', '{"input":{"steps":0}}'], cwd, { MODELS_DIR: modelsDir });

    expect(await readdir(modelsDir)).toEqual(['kept.safetensors']);
    expect(stdout).toContain('removed stale partial downloads');
  });

  it('takes --rp_log_level WARNING as warn', async () => {
    const cwd = await mkdtemp(path.join(tmpdir(), 'worker-cli-'));

    const { code, stdout } = await runWorker(
      ['--simulator', '--rp_log_level', 'WARNING', '--test_input', '{"input":{"steps":2}}'],
      cwd,
    );

    expect(code).toBe(0);
    const levels = new Set(
      stdout
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { level: string }).level),
    );
    expect([...levels]).toEqual(['warn']);
  });

  it('takes the embedded simulator down with it, even when it is killed', async () => {
    const cwd = await mkdtemp(path.join(tmpdir(), 'worker-cli-'));
    const input = JSON.stringify({ input: { prompt: 'x', steps: 1000, width: 64, height: 64 } });
    const worker = spawn(process.execPath, [ENTRY, '--simulator', '--test_input', input], {
      cwd,
      env: { PATH: process.env['PATH'] ?? '', LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const url = await new Promise<string>((resolve, reject) => {
      createInterface({ input: worker.stdout }).on('line', (line) => {
        const found = /SIMULATOR at (http:\/\/[\d.]+:\d+)/.exec(line);
        if (found) resolve(found[1]!);
      });
      worker.once('exit', () => reject(new Error('the worker exited before starting the simulator')));
    });
    const answers = async () =>
      fetch(`${url}/sdapi/v1/progress`).then(
        () => true,
        () => false,
      );
    await expect.poll(answers, { timeout: 10_000 }).toBe(true);

    worker.kill('SIGKILL');

    await expect.poll(answers, { timeout: 10_000 }).toBe(false);
  });

  it('prints its usage on --help and its version on --version, and starts nothing, even beside a test_input.json', async () => {
    const cwd = await mkdtemp(path.join(tmpdir(), 'worker-cli-'));
    // A job that would wait 15 minutes for 127.0.0.1:3000 if it ran.
    await writeFile(path.join(cwd, 'test_input.json'), JSON.stringify({ input: { prompt: 'x' } }));
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

    for (const flag of ['--help', '-h']) {
      const help = await runWorker([flag], cwd, { A1111_READY_TIMEOUT_MS: '900000' });
      expect(help.code, flag).toBe(0);
      expect(help.stdout).toContain(`runpod-a1111-worker ${pkg.version}`);
      for (const word of ['--rp_serve_api', '--test_input', '--simulator', 'replay', 'A1111_BASE_URL', 'WARMUP'])
        expect(help.stdout).toContain(word);
      expect(help.stdout).not.toContain('"level"');
    }
    const version = await runWorker(['--version'], cwd);
    expect(version).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
  });

  it('refuses a flag it does not know, naming it, before anything runs', async () => {
    const cwd = await mkdtemp(path.join(tmpdir(), 'worker-cli-'));

    const { code, stdout, stderr } = await runWorker(['--simulator', '--tets_input', '{}', '-x'], cwd);

    expect(code).toBe(2);
    expect(stderr).toBe('unknown flags --tets_input, -x: see --help\n');
    expect(stdout).toBe('');
  });

  it('exits 1 when there is no job to run', async () => {
    const cwd = await mkdtemp(path.join(tmpdir(), 'worker-cli-'));

    const { code, stdout } = await runWorker([], cwd);

    expect(code).toBe(1);
    expect(stdout).toContain("no job to run: pass --test_input '<json>' or create");
  });
});
