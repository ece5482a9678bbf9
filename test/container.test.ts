/**
 * What can be checked of the container without a Docker engine: every version in the Dockerfile is
 * pinned, the WebUI launch flags agree with the worker's configuration, the image's entry point starts
 * and serves a job with its own environment (the WebUI swapped for the simulator), the RunPod Hub
 * files agree with the worker, and the shell scripts pass shellcheck.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { imageRuntime } from '../bench/image.js';
import { declaredSettings, loadConfig } from '../src/config/index.js';
import { prepareJob } from '../src/job/prepare.js';
import { folderVariables, placeOnVolume } from '../src/models/volume-layout.js';
import { A1111Simulator } from '../src/simulator/server.js';
import { args, dockerfile, instructions, ROOT, stageEnv } from './support/dockerfile.js';
import { FakeRunPod } from './support/fake-runpod.js';
import { captureLog } from './support/logs.js';
import { decodePng } from './support/png.js';
import { simulator } from './support/simulator.js';
import { generated, testWorker } from './support/worker.js';
import { startWorker, WORKER_ENTRY } from './support/worker-process.js';

describe('the Dockerfile', () => {
  it('pins every base image by tag and digest', () => {
    const defaults = args();
    const stages = new Set(instructions.flatMap((l) => /^FROM \S+ AS (\S+)$/.exec(l)?.[1] ?? []));
    for (const line of instructions.filter((l) => l.startsWith('FROM '))) {
      const image = line.split(' ')[1]!.replace(/^\$\{(\w+)\}$/, (_, name: string) => defaults[name] ?? '');
      if (stages.has(image)) continue;
      expect(image, line).toMatch(/^[\w./-]+:\d+(\.\d+){1,2}[\w.-]*@sha256:[0-9a-f]{64}$/);
    }
    // A maintained LTS line (even-numbered, 22 or later: Node 20 reached its end of life in April 2026).
    const major = Number(/^node:(\d+)\.\d+\.\d+-/.exec(defaults['NODE_IMAGE'] ?? '')?.[1]);
    expect(major % 2 === 0 && major >= 22, defaults['NODE_IMAGE']).toBe(true);
  });

  it('takes Debian packages from a dated snapshot, and pins every Python package and the A1111 release (tag and commit)', () => {
    // The packages are whatever the snapshot had at that moment: no version pin, which would break
    // when Debian replaces a version, and no drift between rebuilds.
    expect(args()['DEBIAN_SNAPSHOT']).toMatch(/^\d{8}T\d{6}Z$/);
    const apt = instructions.find((l) => l.includes('apt-get install'))!;
    expect(apt).toContain('http://snapshot.debian.org/archive/%s/%s');
    expect(apt).toMatch(/debian "\$\{DEBIAN_SNAPSHOT\}" 'bookworm bookworm-updates'/);
    expect(apt).toMatch(/debian-security "\$\{DEBIAN_SNAPSHOT\}" bookworm-security/);
    expect(apt).toContain('> /etc/apt/sources.list.d/debian.sources');
    expect(apt).toContain('apt-get -o Acquire::Check-Valid-Until=false update');
    const packages = apt.split('--no-install-recommends')[1]!.split('&&')[0]!.trim().split(/\s+/);
    expect(packages).toEqual([
      'ca-certificates',
      'git',
      'libgl1',
      'libglib2.0-0',
      'libgoogle-perftools4',
      'libtcmalloc-minimal4',
    ]);

    const pipInstalls = instructions.join(' ').matchAll(/pip install ((?:(?!&&).)+)/g);
    for (const [, rest] of pipInstalls) {
      const words = rest!.trim().split(/\s+/);
      for (let i = 0; i < words.length; i++) {
        const word = words[i]!;
        if (word === '-r' || word === '--extra-index-url' || word === '--index-url') {
          i++;
          continue;
        }
        if (word.startsWith('-')) continue;
        // A package name at an exact version, or a GitHub archive at a commit.
        expect(word, 'pip package').toMatch(
          /^([\w.-]+==[\w.+-]+|https:\/\/github\.com\/[\w.-]+\/[\w.-]+\/archive\/[0-9a-f]{40}\.zip)$/,
        );
      }
    }
    // The installer's repositories: the stablediffusion mirror (the original is gone) and CLIP built
    // against a setuptools that still has pkg_resources.
    expect(dockerfile).toContain('STABLE_DIFFUSION_REPO=https://github.com/w-e-w/stablediffusion.git');
    expect(dockerfile).toMatch(/setuptools==(\d+)\./);
    expect(Number(/setuptools==(\d+)\./.exec(dockerfile)![1])).toBeLessThan(81);
    expect(dockerfile).toMatch(
      /--no-build-isolation[\s\\]+https:\/\/github\.com\/openai\/CLIP\/archive\/d50d76daa670286dd6cacf3bcd80b5e4823fc8e1\.zip/,
    );
    expect(args()['MODEL_SHA256']).toMatch(/^[0-9a-f]{64}$/);
    expect(args()['A1111_TAG']).toBe('v1.9.3');
    expect(args()['A1111_COMMIT']).toBe('1c0a0c4c26f78c32095ebc7f8af82f5c04fca8c0');
    expect(dockerfile).toContain(`test "$(git rev-parse HEAD)" = "\${A1111_COMMIT}"`);
  });

  for (const stage of ['baked', 'volume']) {
    it(`launches A1111 (${stage}) with the flags RunPod A1111 workers use, on the port the worker calls`, () => {
      const env = stageEnv(stage);
      const command = env['A1111_LAUNCH_COMMAND']!;
      for (const flag of [
        '--api',
        '--nowebui',
        '--no-hashing',
        '--skip-version-check',
        '--no-download-sd-model',
        '--skip-install',
      ]) {
        expect(command.split(' '), flag).toContain(flag);
      }
      // Nothing that would load a pickle without checks, listen beyond the container, or run extensions' installers.
      for (const flag of ['--disable-safe-unpickle', '--listen', '--share', '--enable-insecure-extension-access']) {
        expect(command.split(' '), flag).not.toContain(flag);
      }
      // The shell prefix: the clone the image made, and the allocator library the image installed.
      expect(command).toMatch(
        /^cd \/stable-diffusion-webui && (if [^;]+; then [^;]+; fi && )?LD_PRELOAD=libtcmalloc_minimal\.so\.4 exec python webui\.py /,
      );
      expect(dockerfile).toContain(
        'git clone https://github.com/AUTOMATIC1111/stable-diffusion-webui.git /stable-diffusion-webui',
      );
      expect(dockerfile).toMatch(/\blibtcmalloc-minimal4\b/);
      const port = /--port (\d+)/.exec(command)?.[1];
      expect(new URL(env['A1111_BASE_URL']!).port).toBe(port);
      const config = loadConfig(env);
      expect(config.a1111.launchCommand).toBe(command);
      if (stage === 'baked') {
        expect(command).toContain('--ckpt /model.safetensors');
        expect(dockerfile).toContain('COPY --from=checkpoint /model.safetensors /model.safetensors');
        expect(config.models.dir).toBe('/stable-diffusion-webui/models/Stable-diffusion');
      } else {
        // The models a job brings go where this WebUI looks for them, on either layout of the volume:
        // the folders the worker finds are the ones the WebUI's shell expands.
        expect(env['MODEL_VOLUME_DIR']).toBe('/runpod-volume');
        for (const install of [true, false]) {
          const { settings } = placeOnVolume(config.models, env, () => install);
          const folders = folderVariables(settings);
          const expanded = command.replace(/\$\{(\w+)\}/g, (_, name: string) => folders[name] ?? `<${name}?>`);
          // Each in quotes, so a folder with a space in its name stays one argument.
          expect(/--ckpt-dir "([^"]+)"/.exec(expanded)?.[1]).toBe(settings.dir);
          expect(/--lora-dir "([^"]+)"/.exec(expanded)?.[1]).toBe(settings.loraDir);
          expect(/--vae-dir "([^"]+)"/.exec(expanded)?.[1]).toBe(settings.vaeDir);
          expect(/--embeddings-dir "([^"]+)"/.exec(expanded)?.[1]).toBe(settings.embeddingsDir);
          expect(/--controlnet-dir "([^"]+)"/.exec(expanded)?.[1]).toBe(settings.controlnetDir);
          expect(expanded.endsWith(' "$@"')).toBe(true);
          expect(
            settings.dir.startsWith(install ? '/runpod-volume/stable-diffusion-webui/' : '/runpod-volume/models/'),
          ).toBe(true);
        }
      }
    });
  }

  it('runs the worker with its memory settings, and the benchmark runs it the same way', () => {
    const malloc = { MALLOC_MMAP_THRESHOLD_: '131072', MALLOC_TOP_PAD_: '2097152', MALLOC_ARENA_MAX: '2' };
    expect(stageEnv('baked')).toMatchObject(malloc);
    expect(imageRuntime(path.join(ROOT, 'Dockerfile'))).toEqual({
      env: malloc,
      nodeFlags: ['--heap-growing-percent=150', '--max-semi-space-size=8'],
      script: 'dist/bundle/main.js',
    });
  });

  it('takes only the flags before the script as node flags', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'dockerfile-'));
    const file = path.join(dir, 'Dockerfile');
    await writeFile(
      file,
      'FROM node:20\nENTRYPOINT ["node"]\nENTRYPOINT ["node", "--max-old-space-size=512", "--enable-source-maps", "/w/main.js", "--rp_serve_api"]\n',
    );
    expect(imageRuntime(file)).toEqual({
      env: {},
      nodeFlags: ['--max-old-space-size=512', '--enable-source-maps'],
      script: '/w/main.js',
    });
  });

  it('uses node flags this node accepts', () => {
    const { nodeFlags } = imageRuntime(path.join(ROOT, 'Dockerfile'));
    const result = spawnSync(process.execPath, [...nodeFlags, '-e', 'process.exit(0)'], { encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('is built last as the baked variant, with the worker as the entry point', () => {
    expect(instructions.filter((l) => l.startsWith('FROM ')).at(-1)).toBe('FROM a1111 AS baked');
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", ("--[\w=-]+", )*"\/worker\/dist\/bundle\/main\.js"\]$/m);
  });
});

describe('the image’s entry point', () => {
  const planes: FakeRunPod[] = [];
  afterEach(async () => {
    await Promise.all(planes.splice(0).map((p) => p.close()));
  });

  it('starts with the image’s environment and node flags, runs the WebUI it is told to, and serves a job', async () => {
    const runpod = new FakeRunPod();
    planes.push(runpod);
    await runpod.start();
    const free = new URL(await new A1111Simulator().reservePort()).port;
    const env = stageEnv('baked');
    // The same launch command and flags, with the simulator in place of `python webui.py` and a free port.
    const simulator = fileURLToPath(new URL('../dist/src/simulator/main.js', import.meta.url));
    const launch = env['A1111_LAUNCH_COMMAND']!.replace(
      /^.*exec python webui\.py/,
      `exec "${process.execPath}" "${simulator}"`,
    ).replace('--port 3000', `--port ${free}`);
    runpod.enqueue({
      id: 'job-image',
      input: JSON.parse(readFileSync(path.join(ROOT, 'test_input.json'), 'utf8')).input,
    });
    const worker = startWorker(
      {
        ...env,
        ...runpod.env(),
        A1111_LAUNCH_COMMAND: launch,
        A1111_BASE_URL: `http://127.0.0.1:${free}`,
        MODELS_DIR: await mkdtemp(path.join(tmpdir(), 'image-models-')),
        LOG_FORMAT: 'json',
      },
      [],
      imageRuntime(path.join(ROOT, 'Dockerfile')).nodeFlags,
    );

    const done = await runpod.waitFor(
      (r) => r.kind === 'job-done' && r.jobId === 'job-image' && r.body.startsWith('{"output"'),
    );
    worker.child.kill('SIGTERM');
    expect((await worker.exited).code).toBe(0);
    expect(JSON.parse(done.body).output.images).toHaveLength(2);
    expect(WORKER_ENTRY).toBe(path.join(ROOT, 'dist', 'bundle', 'main.js'));
  });
});

describe('RunPod Hub packaging', () => {
  const hub = JSON.parse(readFileSync(path.join(ROOT, '.runpod', 'hub.json'), 'utf8')) as {
    type: string;
    config: { env: { key: string; input: { default: unknown } }[] };
  };
  const tests = JSON.parse(readFileSync(path.join(ROOT, '.runpod', 'tests.json'), 'utf8')) as {
    tests: { name: string; input: Record<string, unknown> }[];
  };

  it('allows every CUDA version RunPod offers from the one torch was built for upwards', () => {
    // RunPod's host CUDA versions (its API's CudaVersion values); a newer driver runs an older runtime.
    const offered = ['11.8', '12.0', '12.1', '12.2', '12.3', '12.4', '12.5', '12.6', '12.7', '12.8', '12.9', '13.0'];
    const built = /download\.pytorch\.org\/whl\/cu(\d+)(\d)\b/.exec(dockerfile)!;
    const runtime = `${built[1]}.${built[2]}`;
    const atLeast = (version: string) => {
      const [major, minor] = version.split('.').map(Number) as [number, number];
      const [wantMajor, wantMinor] = runtime.split('.').map(Number) as [number, number];
      return major > wantMajor || (major === wantMajor && minor >= wantMinor);
    };
    const allowed = (hub.config as unknown as { allowedCudaVersions: string[] }).allowedCudaVersions;
    expect(runtime).toBe('12.1');
    expect([...allowed].sort()).toEqual(offered.filter(atLeast).sort());
  });

  it('offers settings the worker has, with the worker’s defaults', () => {
    expect(hub.type).toBe('serverless');
    const settings = new Map(declaredSettings().map(({ setting }) => [setting.env, setting.meta]));
    for (const { key, input } of hub.config.env) {
      expect(settings.get(key), key).toBeDefined();
      const documented = settings.get(key)?.default;
      expect(String(input.default), key).toBe(documented === '(unset)' ? '' : documented);
    }
  });

  it('gives each Hub test its raw job input, as the Hub guide defines it, and it renders what it asks for', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);
    expect(tests.tests.length).toBeGreaterThan(0);
    for (const test of tests.tests) {
      // Not wrapped in another "input": a wrapped one would be an unknown key A1111 ignores.
      expect(Object.keys(test.input), test.name).not.toContain('input');
      const callsBefore = sim.callsTo('POST', '/txt2img').length;
      const outcome = await runner.run({ id: `hub-${test.name}`, input: test.input });
      const output = generated(outcome);
      const sent = sim.callsTo('POST', '/txt2img')[callsBefore]?.body as Record<string, unknown>;
      for (const [key, value] of Object.entries(test.input)) expect(sent[key], `${test.name}: ${key}`).toEqual(value);
      const picture = decodePng(Buffer.from(output.images[0]!, 'base64'));
      expect([picture.width, picture.height]).toEqual([test.input['width'] ?? 512, test.input['height'] ?? 512]);
      expect(JSON.parse(output.info).seed).toBe(test.input['seed']);
      expect(output.worker.notes, test.name).toEqual([]);
    }
  });

  it('sends test inputs and test_input.json with real A1111 field names, which the worker accepts', () => {
    const sample = JSON.parse(readFileSync(path.join(ROOT, 'test_input.json'), 'utf8')) as { input: unknown };
    for (const input of [sample.input, ...tests.tests.map((t) => t.input)]) {
      const { log, lines } = captureLog();
      const prepared = prepareJob(input, { maxPixels: 16_777_216, bucket: false }, log);
      expect(prepared.notes).toEqual([]);
      expect(lines.filter((l) => l.includes('unknown input keys'))).toEqual([]);
    }
  });
});

describe('shell scripts', () => {
  it('pass shellcheck', () => {
    const found = spawnSync('shellcheck', ['--version']);
    if (found.error) {
      if (process.env['REQUIRE_SHELLCHECK'] === '1') throw new Error('shellcheck is not installed');
      return; // outside CI, shellcheck is optional; .ci/run installs it
    }
    const scripts = execFileSync('git', ['ls-files', '*.sh', '.ci/run'], { cwd: ROOT, encoding: 'utf8' })
      .split('\n')
      .filter(Boolean);
    expect(scripts).toContain('.ci/run');
    const result = spawnSync('shellcheck', scripts, { cwd: ROOT, encoding: 'utf8' });
    expect(result.stdout + result.stderr).toBe('');
    expect(result.status).toBe(0);
  });
});
