/**
 * `npm run bench`: what the worker costs on top of A1111, measured side by side on this machine.
 *
 * Everything runs on 127.0.0.1 in one invocation: the fake RunPod control plane from the tests, the
 * A1111 simulator, and the built worker as its own process with RunPod's environment. The floor is
 * the same txt2img request sent straight to the same simulator, in the same run, interleaved with the
 * worker's jobs. Results: a table on stdout, bench/results.json, and the figures in
 * docs/performance.md.
 *
 *   npm run bench              # full run (a few minutes)
 *   npm run bench -- --quick   # a smoke run with few jobs; the numbers are not meaningful
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type LossyFormat, reencode } from '../src/results/encode.js';
import { A1111Simulator } from '../src/simulator/server.js';
import { FakeRunPod } from '../test/support/fake-runpod.js';
import { noisyPng } from '../test/support/images.js';
import { startMoto, TEST_KEYS } from '../test/support/s3.js';
import { imageRuntime, imageScript } from './image.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The script the image runs (the bundle `npm run bench` builds). */
const WORKER = imageScript(ROOT);
const PIPE = path.join(ROOT, 'dist', 'bench', 'pipe.js');

const { values } = parseArgs({
  options: { quick: { type: 'boolean' }, out: { type: 'string' }, doc: { type: 'string' }, only: { type: 'string' } },
});
/** Runs one scenario only (small0, small05, large, upload, formats, imageUrls, readiness, gap, soak), for profiling; writes nothing. */
const ONLY = values.only;
/** The worker runs as the image runs it (bench/image.ts): its allocator setting and its node flags. */
const IMAGE = imageRuntime(path.join(ROOT, 'Dockerfile'));
/** Node flags for the worker: the image's, then extra ones, e.g. BENCH_WORKER_NODE_ARGS=--cpu-prof. */
const WORKER_NODE_ARGS = [
  ...IMAGE.nodeFlags,
  ...(process.env['BENCH_WORKER_NODE_ARGS'] ?? '').split(' ').filter(Boolean),
];
const QUICK = values.quick === true;
const OUT = values.out ?? path.join(ROOT, 'bench', 'results.json');
const DOC = values.doc ?? (QUICK ? undefined : path.join(ROOT, 'docs', 'performance.md'));
const n = (full: number, quick: number) => (QUICK ? quick : full);

// ---- statistics -----------------------------------------------------------------------------------------

interface Summary {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  min: number;
  max: number;
}

function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
  const round = (v: number) => Math.round(v * 100) / 100;
  return {
    n: sorted.length,
    p50: round(at(50)),
    p95: round(at(95)),
    p99: round(at(99)),
    min: round(sorted[0] ?? 0),
    max: round(sorted.at(-1) ?? 0),
  };
}

// ---- the pieces ---------------------------------------------------------------------------------------

interface Worker {
  child: ChildProcess;
  /** The worker's `metrics` log lines so far. */
  metricLines(): Record<string, unknown>[];
  startedAt: number;
  /** SIGTERM; then `plane` (when given) answers the worker's waiting long-polls so it exits at once. */
  stop(plane?: FakeRunPod): Promise<void>;
}

function startWorker(env: Record<string, string>): Worker {
  const startedAt = Date.now();
  // The worker's log goes to a file, as a container's output goes to the runtime's collector: reading it
  // here would put the benchmark's own line handling in the event loop of the simulator and the control
  // plane, and into every figure.
  const logFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'bench-worker-')), 'worker.log');
  const out = openSync(logFile, 'w');
  const child = spawn(process.execPath, [...WORKER_NODE_ARGS, WORKER], {
    env: { PATH: process.env['PATH'] ?? '', LOG_FORMAT: 'json', ...IMAGE.env, ...env },
    stdio: ['ignore', out, 'inherit'],
  });
  closeSync(out);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    metricLines: () =>
      readFileSync(logFile, 'utf8')
        .split('\n')
        .filter((line) => line.includes('"metrics'))
        .flatMap((line) => {
          try {
            return [JSON.parse(line) as Record<string, unknown>];
          } catch {
            return []; // not a JSON line, or one still being written
          }
        }),
    startedAt,
    stop: async (plane?: FakeRunPod) => {
      child.kill('SIGTERM');
      await plane?.close();
      await exited;
      rmSync(path.dirname(logFile), { recursive: true, force: true });
    },
  };
}

/** Reads a field of /proc/<pid>/status in bytes (VmRSS, VmHWM). */
function procStatus(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) * 1024;
}

/** Open file descriptors of a process (sockets included). */
function openFiles(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
}

/** The direct call: the same request, straight to the simulator, until the last byte of the answer. */
const directAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function directCall(baseUrl: string, input: unknown): Promise<number> {
  return timedDirectCall(baseUrl, input).then((call) => call.ms);
}

/** The direct call, with when its answer's last byte came (`performance.timeOrigin` + `performance.now()`). */
function timedDirectCall(baseUrl: string, input: unknown): Promise<{ ms: number; endAt: number }> {
  const body = JSON.stringify(input);
  const url = new URL('/sdapi/v1/txt2img', baseUrl);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const request = http.request(
      url,
      {
        method: 'POST',
        agent: directAgent,
        headers: {
          'Content-Type': 'application/json',
          'Content-Length': Buffer.byteLength(body),
          'Accept-Encoding': 'identity',
        },
      },
      (response) => {
        response.on('data', () => undefined);
        response.on('end', () =>
          resolve({ ms: performance.now() - started, endAt: performance.timeOrigin + performance.now() }),
        );
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

const input = (steps: number, extra: Record<string, unknown> = {}) => ({
  prompt: 'a lighthouse',
  steps,
  seed: 7,
  width: 512,
  height: 512,
  ...extra,
});

async function setup(
  options: {
    stepDelayMs?: number;
    concurrency?: number;
    env?: Record<string, string>;
    /** A1111's answers and RunPod's reads paced at this many bytes a second. */
    linkBytesPerSecond?: number;
  } = {},
) {
  const link = options.linkBytesPerSecond;
  const sim = new A1111Simulator({
    stepDelayMs: options.stepDelayMs ?? 0,
    ...(link ? { answerBytesPerSecond: link } : {}),
  });
  await sim.start();
  const plane = new FakeRunPod({ longPollMs: 5_000, ...(link ? { jobDoneBytesPerSecond: link } : {}) });
  await plane.start();
  const worker = startWorker({
    ...plane.env({ RUNPOD_PING_INTERVAL: '10000' }),
    A1111_BASE_URL: sim.url,
    WORKER_CONCURRENCY: String(options.concurrency ?? 1),
    ...options.env,
  });
  const close = async () => {
    await worker.stop(plane);
    await sim.close();
  };
  return { sim, plane, worker, close };
}

let jobCounter = 0;
/** Runs one job through the worker; resolves with (job-take answered → job-done received) in ms. */
async function workerJob(
  plane: FakeRunPod,
  jobInput: unknown,
): Promise<{ ms: number; bytes: number; body: string; at: number }> {
  const id = `bench-${++jobCounter}`;
  const done = plane.waitFor(
    (r) => r.kind === 'job-done' && r.jobId === id && !r.body.startsWith('{"status"'),
    120_000,
  );
  plane.enqueue({ id, input: jobInput });
  const request = await done;
  const handed = plane.handedOutAt.get(id) ?? request.at;
  plane.requests.length = 0; // keep the recorder small over thousands of jobs
  plane.handedOutAt.delete(id);
  return { ms: request.at - handed, bytes: request.body.length, body: request.body, at: request.at };
}

// ---- scenarios ----------------------------------------------------------------------------------------

/**
 * The large result again (8 × 1024² PNG, 27 MB of base64), this time past RESULT_INLINE_MAX_BYTES with a
 * bucket (moto_server on loopback): the job's time against the direct call, which is what uploading
 * the eight images and presigning their URLs adds, and the worker's peak memory.
 */
async function uploadScenario() {
  const moto = await startMoto();
  await moto.createBucket('bench-results');
  const { sim, plane, worker, close } = await setup({
    env: {
      BUCKET_ENDPOINT_URL: moto.url,
      BUCKET_ACCESS_KEY_ID: TEST_KEYS.accessKeyId,
      BUCKET_SECRET_ACCESS_KEY: TEST_KEYS.secretAccessKey,
      BUCKET_NAME: 'bench-results',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
  });
  const jobInput = input(1, { width: 1024, height: 1024, batch_size: 8 });
  const added: number[] = [];
  const delivering: number[] = [];
  let uploaded = 0;
  let postedBytes = 0;
  for (let i = 0; i < n(5, 1) + n(30, 2); i++) {
    const floor = await directCall(sim.url, jobInput);
    const job = await workerJob(plane, jobInput);
    if (i < n(5, 1)) continue;
    added.push(job.ms - floor);
    const report = JSON.parse(job.body) as {
      output?: { worker?: { timings_ms?: { delivering?: number }; uploads?: unknown[] } };
    };
    delivering.push(report.output?.worker?.timings_ms?.delivering ?? Number.NaN);
    uploaded = report.output?.worker?.uploads?.length ?? 0;
    postedBytes = job.bytes;
  }
  const peakRss = procStatus(worker.child.pid!, 'VmHWM');
  await close();
  await moto.stop();
  return {
    name: 'large result uploaded (8 × 1024² PNG to moto_server)',
    imagesPerJob: uploaded,
    postedBytes,
    addedMs: summarize(added),
    deliveringMs: summarize(delivering),
    workerPeakRssBytes: peakRss,
  };
}

/**
 * The large result (8 × 1024² PNG) inline with both of its transfers at network speed, as on RunPod: A1111
 * writes its answer at LINK bytes a second (the simulator paced), and RunPod reads the job-done body at
 * the same rate (the control plane paced). Each job goes through the worker, through the pipe (the
 * floor: the answer streamed into the job-done body as it arrives), and through a second worker that
 * reads every answer before posting it (RESULT_STREAM_MIN_BYTES=0), each after a direct call of its own.
 */
async function linkScenario() {
  const link = 125_000_000; // 1 Gbit/s
  const env = { RESULT_INLINE_MAX_BYTES: '100000000' };
  const { sim, plane, close } = await setup({ env, linkBytesPerSecond: link });
  const piped = await startPipe(sim.url, link);
  const readFirstPlane = new FakeRunPod({ longPollMs: 5_000, jobDoneBytesPerSecond: link });
  await readFirstPlane.start();
  const readFirst = startWorker({
    ...readFirstPlane.env({ RUNPOD_PING_INTERVAL: '10000' }),
    A1111_BASE_URL: sim.url,
    ...env,
    RESULT_STREAM_MIN_BYTES: '0',
  });
  const jobInput = input(1, { width: 1024, height: 1024, batch_size: 8 });
  const added = { worker: [] as number[], pipe: [] as number[], readFirst: [] as number[] };
  const delivery = { direct: [] as number[], worker: [] as number[], pipe: [] as number[], readFirst: [] as number[] };
  const direct: number[] = [];
  let bytes = 0;
  for (let i = 0; i < n(5, 1) + n(30, 2); i++) {
    const runs: [keyof typeof added, FakeRunPod][] = [
      ['worker', plane],
      ['pipe', piped.plane],
      ['readFirst', readFirstPlane],
    ];
    for (const [which, target] of runs) {
      const floor = await timedDirectCall(sim.url, jobInput);
      const floorDelivery = floor.endAt - lastAnswerStart(sim);
      const job = await workerJob(target, jobInput);
      if (i < n(5, 1)) continue;
      added[which].push(job.ms - floor.ms);
      delivery[which].push(job.at - lastAnswerStart(sim));
      if (which === 'worker') {
        direct.push(floor.ms);
        delivery.direct.push(floorDelivery);
        bytes = job.bytes;
      }
    }
  }
  await readFirst.stop(readFirstPlane);
  await piped.close();
  await close();
  return {
    name: 'large result inline at 1 Gbit/s (A1111 answer and job-done post paced)',
    linkBytesPerSecond: link,
    resultBytes: bytes,
    directMs: summarize(direct),
    addedMs: summarize(added.worker),
    pipeAddedMs: summarize(added.pipe),
    readFirstAddedMs: summarize(added.readFirst),
    deliveryMs: {
      direct: summarize(delivery.direct),
      worker: summarize(delivery.worker),
      pipe: summarize(delivery.pipe),
      readFirst: summarize(delivery.readFirst),
    },
  };
}

/** A measured value against twice the floor's. */
function ratioTarget(value: number, floor: number): { value: number; target: number; ok: boolean } {
  const ratio = Math.round((value / floor) * 100) / 100;
  return { value: ratio, target: 2, ok: ratio <= 2 };
}

/** When the simulator began writing its last txt2img answer. */
function lastAnswerStart(sim: A1111Simulator): number {
  const calls = sim.callsTo('POST', '/txt2img');
  const started = calls.at(-1)?.answerStartedAt;
  if (started === undefined) throw new Error('the simulator has not answered a txt2img yet');
  // Thousands of jobs: the recorder keeps only what the next lookup needs.
  sim.calls.length = 0;
  return started;
}

/**
 * Re-encoding one of the simulator's pictures as WebP and JPEG (quality 90, the worker's default), at
 * 512² and 1024²: the bytes of each format and the time per image. The simulator's pictures are noisier
 * than a model's, so PNG is larger against the lossy formats than it is for real images.
 */
async function formatScenario() {
  const sim = new A1111Simulator({ stepDelayMs: 0 });
  await sim.start();
  const sizes = [512, 1024];
  const rows: { size: number; format: string; bytes: number; msP50: number; ratioToPng: number }[] = [];
  for (const size of sizes) {
    const answer = (await (
      await fetch(`${sim.url}/sdapi/v1/txt2img`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(input(1, { width: size, height: size })),
      })
    ).json()) as { images: string[]; info: string };
    const png = Buffer.from(answer.images[0]!, 'base64');
    rows.push({ size, format: 'png', bytes: png.length, msP50: 0, ratioToPng: 1 });
    for (const format of ['webp', 'jpeg'] as LossyFormat[]) {
      const times: number[] = [];
      let bytes = 0;
      for (let i = 0; i < n(12, 2); i++) {
        const started = performance.now();
        bytes = (await reencode(png, format, 90, null)).length;
        times.push(performance.now() - started);
      }
      rows.push({
        size,
        format,
        bytes,
        msP50: summarize(times).p50,
        ratioToPng: Math.round((png.length / bytes) * 10) / 10,
      });
    }
  }
  await sim.close();
  return { name: 'image formats (quality 90)', rows };
}

/**
 * Jobs through a fresh worker, each after the same request sent straight to the simulator. The first
 * `warmup` pairs are reported on their own (`warmupAddedMs`): V8 compiles the job path's hot functions
 * over the first few hundred jobs, and a worker serves thousands in its life.
 */
async function latencyScenario(
  name: string,
  options: {
    stepDelayMs: number;
    steps: number;
    jobs: number;
    warmup: number;
    extra?: Record<string, unknown>;
    env?: Record<string, string>;
    /** Each job also goes through the pipe (bench/pipe.ts), the floor for large results. */
    pipe?: boolean;
  },
) {
  const { stepDelayMs, steps, jobs, warmup } = options;
  const { sim, plane, worker, close } = await setup({ stepDelayMs, ...(options.env ? { env: options.env } : {}) });
  const piped = options.pipe ? await startPipe(sim.url) : null;
  const jobInput = input(steps, options.extra);
  const warmupAdded: number[] = [];
  for (let i = 0; i < warmup; i++) {
    const floor = await directCall(sim.url, jobInput);
    warmupAdded.push((await workerJob(plane, jobInput)).ms - floor);
    if (piped) await workerJob(piped.plane, jobInput);
  }
  const direct: number[] = [];
  const viaWorker: number[] = [];
  const added: number[] = [];
  const pipeAdded: number[] = [];
  const delivery = { worker: [] as number[], pipe: [] as number[] };
  let bytes = 0;
  for (let i = 0; i < jobs; i++) {
    const floor = await directCall(sim.url, jobInput);
    const job = await workerJob(plane, jobInput);
    direct.push(floor);
    viaWorker.push(job.ms);
    added.push(job.ms - floor);
    bytes = job.bytes;
    if (piped) {
      delivery.worker.push(job.at - lastAnswerStart(sim));
      const pipeFloor = await directCall(sim.url, jobInput);
      const pipeJob = await workerJob(piped.plane, jobInput);
      pipeAdded.push(pipeJob.ms - pipeFloor);
      delivery.pipe.push(pipeJob.at - lastAnswerStart(sim));
    } else {
      sim.calls.length = 0;
    }
  }
  const peakRss = procStatus(worker.child.pid!, 'VmHWM');
  await piped?.close();
  await close();
  const d = summarize(direct);
  const w = summarize(viaWorker);
  return {
    name,
    jobs,
    generationMs: stepDelayMs * steps,
    resultBytes: bytes,
    directMs: d,
    workerMs: w,
    addedMs: summarize(added),
    warmupAddedMs: summarize(warmupAdded),
    ratioP50: Math.round((w.p50 / d.p50) * 1000) / 1000,
    workerPeakRssBytes: peakRss,
    ...(piped
      ? {
          pipeAddedMs: summarize(pipeAdded),
          deliveryMs: { worker: summarize(delivery.worker), pipe: summarize(delivery.pipe) },
        }
      : {}),
  };
}

/** The pipe (bench/pipe.ts) as its own process, with a control plane of its own, on the same simulator. */
async function startPipe(a1111Url: string, linkBytesPerSecond?: number) {
  const plane = new FakeRunPod({
    longPollMs: 5_000,
    ...(linkBytesPerSecond ? { jobDoneBytesPerSecond: linkBytesPerSecond } : {}),
  });
  await plane.start();
  const child = spawn(process.execPath, [PIPE], {
    env: { PATH: process.env['PATH'] ?? '', ...plane.env(), A1111_BASE_URL: a1111Url },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    plane,
    close: async () => {
      child.kill('SIGTERM');
      await plane.close();
      await exited;
    },
  };
}

/**
 * An img2img with four init images of about 2 MB each, given as URLs the worker fetches from a server on
 * loopback, against the same job with the same images inline as base64: what fetching costs the job.
 * The pairs are interleaved, each the other's floor.
 */
async function imageUrlScenario() {
  const images = [1, 2, 3, 4].map((seed) => noisyPng(2 * 1024 * 1024, seed));
  const server = http.createServer((req, res) => {
    const image = images[Number(/\/(\d)\.png$/.exec(req.url ?? '')?.[1] ?? -1)];
    if (!image) return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': image.length }).end(image);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const { plane, close } = await setup({ env: { IMAGE_URL_PRIVATE_ALLOW: '127.0.0.1' } });
  const job = (initImages: string[]) => ({
    api: { method: 'POST', endpoint: '/sdapi/v1/img2img' },
    payload: {
      prompt: 'a lighthouse',
      init_images: initImages,
      batch_size: 4,
      steps: 1,
      width: 64,
      height: 64,
      seed: 7,
    },
  });
  const byUrl = job(images.map((_, i) => `${base}/${i}.png`));
  const inline = job(images.map((image) => image.toString('base64')));
  const warmup = n(10, 1);
  const urlMs: number[] = [];
  const inlineMs: number[] = [];
  const added: number[] = [];
  const fetching: number[] = [];
  for (let i = 0; i < warmup + n(60, 3); i++) {
    const a = await workerJob(plane, inline);
    const b = await workerJob(plane, byUrl);
    if (i < warmup) continue;
    inlineMs.push(a.ms);
    urlMs.push(b.ms);
    added.push(b.ms - a.ms);
    const report = JSON.parse(b.body) as { output?: { worker?: { timings_ms?: { fetchingImages?: number } } } };
    fetching.push(report.output?.worker?.timings_ms?.fetchingImages ?? Number.NaN);
  }
  await close();
  await new Promise((resolve) => server.close(resolve));
  return {
    imageBytes: images.reduce((sum, image) => sum + image.length, 0),
    inlineMs: summarize(inlineMs),
    urlMs: summarize(urlMs),
    addedMs: summarize(added),
    fetchingImagesMs: summarize(fetching),
  };
}

async function readinessScenario() {
  const afterApi: number[] = [];
  const fromStart: number[] = [];
  for (let i = 0; i < n(30, 1); i++) {
    // (a) the API starts answering while the worker already probes
    const sim = new A1111Simulator();
    const url = await sim.reservePort();
    const plane = new FakeRunPod({ longPollMs: 5_000 });
    await plane.start();
    const worker = startWorker({ ...plane.env({ RUNPOD_PING_INTERVAL: '10000' }), A1111_BASE_URL: url });
    await new Promise((resolve) => setTimeout(resolve, 700));
    await sim.start();
    const listening = Date.now();
    const take = await plane.waitFor((r) => r.kind === 'job-take');
    afterApi.push(take.at - listening);
    await worker.stop(plane);
    await sim.close();

    // (b) the worker process starts with the API already up
    const up = new A1111Simulator();
    await up.start();
    const plane2 = new FakeRunPod({ longPollMs: 5_000 });
    await plane2.start();
    const worker2 = startWorker({ ...plane2.env({ RUNPOD_PING_INTERVAL: '10000' }), A1111_BASE_URL: up.url });
    const take2 = await plane2.waitFor((r) => r.kind === 'job-take');
    fromStart.push(take2.at - worker2.startedAt);
    await worker2.stop(plane2);
    await up.close();
  }
  return { afterApiAnswersMs: summarize(afterApi), processStartToFirstTakeMs: summarize(fromStart) };
}

async function idleGapScenario(concurrency: number) {
  const { sim, plane, close } = await setup({ stepDelayMs: 10, concurrency });
  const jobs = n(200, 4);
  const ids = Array.from({ length: jobs }, (_, i) => `gap-${concurrency}-${i}`);
  const done = Promise.all(
    ids.map((id) =>
      plane.waitFor((r) => r.kind === 'job-done' && r.jobId === id && !r.body.startsWith('{"status"'), 120_000),
    ),
  );
  plane.enqueue(...ids.map((id) => ({ id, input: input(10) })));
  await done;
  const generations = sim.engine.generations;
  const gaps = generations.slice(1).map((g, i) => g.startedAt - generations[i]!.endedAt);
  await close();
  return { concurrency, jobs, gapMs: summarize(gaps) };
}

async function soakScenario() {
  // At info level, as RunPod runs workers by default: the periodic metrics line (with the active handles) is info.
  const { plane, worker, close } = await setup({ env: { METRICS_LOG_INTERVAL_MS: '100', LOG_LEVEL: 'info' } });
  const jobs = n(10_000, 60);
  const marker = Math.min(1_000, Math.floor(jobs / 3));
  const pid = worker.child.pid!;
  let atMarker = { rss: 0, fds: 0, resources: {} as Record<string, number> };
  let linesAtMarker = 0;
  const series: { job: number; rssBytes: number }[] = [];
  const every = Math.max(1, Math.floor(jobs / 10));
  const started = Date.now();
  for (let i = 1; i <= jobs; i++) {
    await workerJob(plane, input(1, { width: 64, height: 64 }));
    if (i === marker) {
      atMarker = { rss: procStatus(pid, 'VmRSS'), fds: openFiles(pid), resources: {} };
      linesAtMarker = worker.metricLines().filter((l) => l['message'] === 'metrics').length;
    }
    if (i % every === 0) series.push({ job: i, rssBytes: procStatus(pid, 'VmRSS') });
  }
  const end = { rss: procStatus(pid, 'VmRSS'), fds: openFiles(pid) };
  // The periodic metrics lines logged after the marker job: the first and the last give the handles.
  const metricLines = worker
    .metricLines()
    .filter((l) => l['message'] === 'metrics')
    .slice(linesAtMarker);
  const resources = (line: Record<string, unknown> | undefined) =>
    (line?.['process'] as { activeResources?: Record<string, number> } | undefined)?.activeResources ?? {};
  await close();
  return {
    jobs,
    seconds: Math.round((Date.now() - started) / 100) / 10,
    rssAfterMarkerBytes: atMarker.rss,
    rssAtEndBytes: end.rss,
    rssGrowthPercent: Math.round(((end.rss - atMarker.rss) / atMarker.rss) * 1000) / 10,
    openFilesAfterMarker: atMarker.fds,
    openFilesAtEnd: end.fds,
    rssSeries: series,
    activeResourcesEarly: resources(metricLines[0]),
    activeResourcesLate: resources(metricLines.at(-1)),
    // Sockets and timers come and go with each job: a leak shows as the mean of the late readings rising
    // well above that of the early ones, not as two single readings differing by one or two.
    activeHandlesSeries: metricLines.map((line) => handles(resources(line))),
    markerJob: marker,
  };
}

// ---- report -------------------------------------------------------------------------------------------

/**
 * The mean number of handles over the first third of the soak's readings and over the last third.
 * A reading falls at a random moment of a job, whose sockets and timers come and go (3 to 7 handles,
 * a standard deviation of about 1.4); over some fifty readings a window's mean is good to about 0.3
 * (readings 100 ms apart are not quite independent). A leak repeats, job after job, and adds whole
 * handles to every later reading.
 */
function handleMeans(series: number[]): { early: number; late: number; perWindow: number } {
  const third = Math.max(1, Math.floor(series.length / 3));
  const mean = (values: number[]) =>
    values.length === 0 ? 0 : Math.round((values.reduce((a, b) => a + b, 0) / values.length) * 100) / 100;
  return { early: mean(series.slice(0, third)), late: mean(series.slice(-third)), perWindow: third };
}

function handles(resources: Record<string, number>): number {
  return Object.values(resources).reduce((sum, count) => sum + count, 0);
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

async function main(): Promise<void> {
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryBytes: os.totalmem(),
    node: process.version,
    platform: `${os.type()} ${os.release()}`,
    workerNodeFlags: WORKER_NODE_ARGS,
    workerEnv: IMAGE.env,
  };
  process.stdout.write(
    `machine: ${machine.cpus} cores (${machine.cpuModel}), ${mb(machine.memoryBytes)}, Node ${machine.node}\n`,
  );
  const scenarios = {
    small0: () =>
      latencyScenario('small result, generation 0 s', { stepDelayMs: 0, steps: 1, jobs: n(300, 5), warmup: n(200, 2) }),
    small05: () =>
      latencyScenario('small result, generation 0.5 s', {
        stepDelayMs: 25,
        steps: 20,
        jobs: n(200, 3),
        warmup: n(20, 2),
      }),
    large: () =>
      latencyScenario('large result (8 × 1024² PNG)', {
        stepDelayMs: 0,
        steps: 1,
        jobs: n(100, 2),
        warmup: n(20, 2),
        extra: { width: 1024, height: 1024, batch_size: 8 },
        // Inline past the default RESULT_INLINE_MAX_BYTES: the fake control plane takes any size.
        env: { RESULT_INLINE_MAX_BYTES: '100000000' },
        pipe: true,
      }),
    link: linkScenario,
    upload: uploadScenario,
    formats: formatScenario,
    imageUrls: imageUrlScenario,
    readiness: readinessScenario,
    gap: async () => [await idleGapScenario(1), await idleGapScenario(2)] as const,
    soak: soakScenario,
  };
  if (ONLY) {
    const scenario = (scenarios as Record<string, () => Promise<unknown>>)[ONLY];
    if (!scenario) throw new Error(`--only takes one of ${Object.keys(scenarios).join(', ')}`);
    process.stdout.write(`${JSON.stringify(await scenario(), null, 2)}\n`);
    return;
  }

  const small0 = await scenarios.small0();
  process.stdout.write(`small/0s done\n`);
  const small05 = await scenarios.small05();
  process.stdout.write(`small/0.5s done\n`);
  const large = await scenarios.large();
  process.stdout.write(`large done\n`);
  const link = await scenarios.link();
  process.stdout.write(`link done\n`);
  const upload = await scenarios.upload();
  process.stdout.write(`upload done\n`);
  const formats = await scenarios.formats();
  process.stdout.write(`formats done\n`);
  const imageUrls = await scenarios.imageUrls();
  process.stdout.write(`image URLs done\n`);
  const readiness = await scenarios.readiness();
  process.stdout.write(`readiness done\n`);
  const [gap1, gap2] = await scenarios.gap();
  process.stdout.write(`idle gaps done\n`);
  const soak = await scenarios.soak();
  process.stdout.write(`soak done\n`);
  const soakHandles = handleMeans(soak.activeHandlesSeries);

  const targets = {
    smallAddedP50Ms: { value: small0.addedMs.p50, target: 2, ok: small0.addedMs.p50 <= 2 },
    smallRatioAt05s: { value: small05.ratioP50, target: 1.05, ok: small05.ratioP50 <= 1.05 },
    largeAddedP50Ms: { value: large.addedMs.p50, target: 60, ok: large.addedMs.p50 <= 60 },
    // A1111's first answer byte → RunPod's last result byte: within 2× the pipe's, on loopback and at 1 Gbit/s.
    largeDeliveryVsPipe: ratioTarget(large.deliveryMs!.worker.p50, large.deliveryMs!.pipe.p50),
    linkDeliveryVsPipe: ratioTarget(link.deliveryMs.worker.p50, link.deliveryMs.pipe.p50),
    largePeakRssBytes: {
      value: large.workerPeakRssBytes,
      target: Math.round(2.5 * large.resultBytes + 100 * 1024 * 1024),
      ok: large.workerPeakRssBytes <= 2.5 * large.resultBytes + 100 * 1024 * 1024,
    },
    uploadPeakRssBytes: {
      value: upload.workerPeakRssBytes,
      target: Math.round(2.5 * large.resultBytes + 100 * 1024 * 1024),
      ok: upload.workerPeakRssBytes <= 2.5 * large.resultBytes + 100 * 1024 * 1024,
    },
    imageUrlAddedP50Ms: { value: imageUrls.addedMs.p50, target: 25, ok: imageUrls.addedMs.p50 <= 25 },
    imageUrlFetchP50Ms: {
      value: imageUrls.fetchingImagesMs.p50,
      target: 60,
      ok: imageUrls.fetchingImagesMs.p50 <= 60,
    },
    readinessAfterApiP50Ms: {
      value: readiness.afterApiAnswersMs.p50,
      target: 250,
      ok: readiness.afterApiAnswersMs.p50 <= 250,
    },
    startToFirstTakeP50Ms: {
      value: readiness.processStartToFirstTakeMs.p50,
      target: 400,
      ok: readiness.processStartToFirstTakeMs.p50 <= 400,
    },
    idleGapConcurrency2P50Ms: { value: gap2.gapMs.p50, target: 5, ok: gap2.gapMs.p50 <= 5 },
    soakRssGrowthPercent: { value: soak.rssGrowthPercent, target: 5, ok: soak.rssGrowthPercent <= 5 },
    soakOpenFilesGrowth: {
      value: soak.openFilesAtEnd - soak.openFilesAfterMarker,
      target: 0,
      ok: soak.openFilesAtEnd <= soak.openFilesAfterMarker,
    },
    // Sockets, pipes, timers and message ports the worker's event loop holds (process.getActiveResourcesInfo):
    // the mean of the last third of the soak's readings, less than 1.5 handles above that of the first third.
    soakActiveHandlesGrowth: {
      value: Math.round((soakHandles.late - soakHandles.early) * 100) / 100,
      target: 1.5,
      ok: soak.activeHandlesSeries.length >= 30 && soakHandles.late - soakHandles.early < 1.5,
    },
  };
  const results = {
    recordedAt: new Date().toISOString(),
    quick: QUICK,
    machine,
    scenarios: { small0, small05, large, link, upload, formats, imageUrls, readiness, idleGap: [gap1, gap2], soak },
    targets,
  };
  await mkdir(path.dirname(OUT), { recursive: true });
  await writeFile(OUT, `${JSON.stringify(results, null, 2)}\n`);

  const rows: [string, string, string, string][] = [
    [
      'small, 0 s: added latency p50 / p95 / p99',
      `${small0.addedMs.p50} / ${small0.addedMs.p95} / ${small0.addedMs.p99} ms`,
      '≤ 2 ms (p50)',
      targets.smallAddedP50Ms.ok ? 'ok' : 'MISSED',
    ],
    ['small, 0 s: worker / floor (p50)', `${small0.workerMs.p50} / ${small0.directMs.p50} ms`, '', ''],
    [
      `small, 0 s: added latency p50 / p95 over a fresh worker's first ${small0.warmupAddedMs.n} jobs (not counted above)`,
      `${small0.warmupAddedMs.p50} / ${small0.warmupAddedMs.p95} ms`,
      '',
      '',
    ],
    [
      'small, 0.5 s: end-to-end / floor (p50)',
      `${small05.ratioP50} (${small05.workerMs.p50} / ${small05.directMs.p50} ms)`,
      '≤ 1.05',
      targets.smallRatioAt05s.ok ? 'ok' : 'MISSED',
    ],
    [
      'large: added latency p50 / p95',
      `${large.addedMs.p50} / ${large.addedMs.p95} ms (${mb(large.resultBytes)} result)`,
      '≤ 60 ms',
      targets.largeAddedP50Ms.ok ? 'ok' : 'MISSED',
    ],
    [
      "large: delivery, A1111's first answer byte → RunPod's last result byte, worker / pipe (p50)",
      `${large.deliveryMs!.worker.p50} / ${large.deliveryMs!.pipe.p50} ms (${targets.largeDeliveryVsPipe.value} ×; added latency of the pipe ${large.pipeAddedMs!.p50} ms)`,
      '≤ 2 × the pipe',
      targets.largeDeliveryVsPipe.ok ? 'ok' : 'MISSED',
    ],
    [
      'large at 1 Gbit/s (A1111 and RunPod paced): delivery, worker / pipe (p50)',
      `${link.deliveryMs.worker.p50} / ${link.deliveryMs.pipe.p50} ms (${targets.linkDeliveryVsPipe.value} ×; the answer alone ${link.deliveryMs.direct.p50} ms)`,
      '≤ 2 × the pipe',
      targets.linkDeliveryVsPipe.ok ? 'ok' : 'MISSED',
    ],
    [
      'large at 1 Gbit/s: added latency p50, worker / pipe / a worker that reads the answer before posting',
      `${link.addedMs.p50} / ${link.pipeAddedMs.p50} / ${link.readFirstAddedMs.p50} ms (read first: delivery ${link.deliveryMs.readFirst.p50} ms)`,
      '',
      '',
    ],
    [
      'large: worker peak RSS',
      mb(large.workerPeakRssBytes),
      `≤ ${mb(targets.largePeakRssBytes.target)}`,
      targets.largePeakRssBytes.ok ? 'ok' : 'MISSED',
    ],
    [
      `large, uploaded (${upload.imagesPerJob} images to moto_server on loopback; ${upload.postedBytes} bytes posted): job time minus the direct call, and \`delivering\` (p50 / p95)`,
      `${upload.addedMs.p50} / ${upload.addedMs.p95} ms; ${upload.deliveringMs.p50} / ${upload.deliveringMs.p95} ms`,
      '',
      '',
    ],
    [
      'large, uploaded: worker peak RSS',
      mb(upload.workerPeakRssBytes),
      `≤ ${mb(targets.uploadPeakRssBytes.target)}`,
      targets.uploadPeakRssBytes.ok ? 'ok' : 'MISSED',
    ],
    ...formats.rows
      .filter((row) => row.format !== 'png')
      .map((row): [string, string, string, string] => {
        const png = formats.rows.find((other) => other.size === row.size && other.format === 'png')!;
        return [
          `${row.size}² image as ${row.format}, quality 90: bytes (PNG ${png.bytes}), re-encoding time p50`,
          `${row.bytes} (${row.ratioToPng} × smaller), ${row.msP50} ms`,
          '',
          '',
        ];
      }),
    [
      `img2img, 4 init images (${mb(imageUrls.imageBytes)}) by URL: job time minus the same job with base64 inputs (p50 / p95)`,
      `${imageUrls.addedMs.p50} / ${imageUrls.addedMs.p95} ms (${imageUrls.urlMs.p50} / ${imageUrls.inlineMs.p50} ms)`,
      '≤ 25 ms (p50)',
      targets.imageUrlAddedP50Ms.ok ? 'ok' : 'MISSED',
    ],
    [
      'img2img, 4 init images by URL: fetching them, concurrently (p50 / p95)',
      `${imageUrls.fetchingImagesMs.p50} / ${imageUrls.fetchingImagesMs.p95} ms`,
      '≤ 60 ms (p50)',
      targets.imageUrlFetchP50Ms.ok ? 'ok' : 'MISSED',
    ],
    [
      'readiness: API answers → first job-take (p50 / p95)',
      `${readiness.afterApiAnswersMs.p50} / ${readiness.afterApiAnswersMs.p95} ms`,
      '≤ 250 ms',
      targets.readinessAfterApiP50Ms.ok ? 'ok' : 'MISSED',
    ],
    [
      'readiness: process start → first job-take (p50 / p95)',
      `${readiness.processStartToFirstTakeMs.p50} / ${readiness.processStartToFirstTakeMs.p95} ms`,
      '≤ 400 ms',
      targets.startToFirstTakeP50Ms.ok ? 'ok' : 'MISSED',
    ],
    ['GPU idle gap, concurrency 1 (p50 / p95)', `${gap1.gapMs.p50} / ${gap1.gapMs.p95} ms`, '', ''],
    [
      'GPU idle gap, concurrency 2 (p50 / p95)',
      `${gap2.gapMs.p50} / ${gap2.gapMs.p95} ms`,
      '≤ 5 ms',
      targets.idleGapConcurrency2P50Ms.ok ? 'ok' : 'MISSED',
    ],
    [
      `soak: RSS after job ${soak.markerJob} → after ${soak.jobs}`,
      `${mb(soak.rssAfterMarkerBytes)} → ${mb(soak.rssAtEndBytes)} (${soak.rssGrowthPercent} %)`,
      '≤ 5 %',
      targets.soakRssGrowthPercent.ok ? 'ok' : 'MISSED',
    ],
    [
      'soak: open files',
      `${soak.openFilesAfterMarker} → ${soak.openFilesAtEnd}`,
      'no growth',
      targets.soakOpenFilesGrowth.ok ? 'ok' : 'MISSED',
    ],
    [
      'soak: active handles (sockets, pipes, timers, ports), mean of the first third → of the last third of the readings',
      `${soakHandles.early} → ${soakHandles.late} (${soakHandles.perWindow} readings each)`,
      'no growth (< 1.5 handles)',
      targets.soakActiveHandlesGrowth.ok ? 'ok' : 'MISSED',
    ],
  ];
  const table = [
    '| Figure | Measured | Target | |',
    '|---|---|---|---|',
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ].join('\n');
  process.stdout.write(`\n${table}\n\nwrote ${OUT}\n`);
  if (DOC) await writeDoc(DOC, table, results);
}

async function writeDoc(
  file: string,
  table: string,
  results: { recordedAt: string; machine: Record<string, unknown> },
): Promise<void> {
  const doc = await readFile(file, 'utf8');
  const start = '<!-- bench:start (written by npm run bench) -->';
  const end = '<!-- bench:end -->';
  const a = doc.indexOf(start);
  const b = doc.indexOf(end);
  if (a < 0 || b < a) throw new Error(`${file} has no bench markers`);
  const m = results.machine as {
    cpus: number;
    cpuModel: string;
    node: string;
    memoryBytes: number;
    workerNodeFlags: string[];
  };
  const flags =
    m.workerNodeFlags.length > 0
      ? ` The worker ran as the image runs it: \`node ${m.workerNodeFlags.join(' ')}\`.`
      : '';
  const block = `${start}\nRecorded ${results.recordedAt} on ${m.cpus} cores (${m.cpuModel}), ${mb(m.memoryBytes)} RAM, Node ${m.node}.${flags}\n\n${table}\n`;
  await writeFile(file, `${doc.slice(0, a)}${block}${doc.slice(b)}`);
  process.stdout.write(`updated ${file}\n`);
}

await main();
process.exit(0);
