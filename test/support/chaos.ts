/**
 * A chaos run: many jobs at concurrency 2 through the built worker process, against the A1111
 * simulator and the fake RunPod control plane, while faults are injected on both sides at random
 * (seeded, so a run can be repeated). The report lists every violation of what must hold whatever
 * happens:
 *
 * - every job has exactly one final result (a post retried after a lost answer carries the same body),
 *   and RunPod accepted it;
 * - every success is a valid output: PNGs that decode, the job's seed in `info`;
 * - every failure has a fault behind it that makes it legitimate, and the code that fault calls for
 *   (read from the simulator's own record of what it did, during the job's life);
 * - no progress post arrives after a job's result;
 * - the worker is alive at the end (it serves one more job), and its memory and open handles are back
 *   to where they were after the warm-up.
 *
 * Used by test/chaos.test.ts (a fixed seed in CI) and `npm run chaos` (longer runs, any seeds).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { A1111Simulator } from '../../src/simulator/server.js';
import { FakeRunPod } from './fake-runpod.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The compiled worker, wherever this file runs from (test/support/ or dist/test/support/). */
const WORKER = [path.join(ROOT, 'dist', 'src', 'main.js'), path.join(ROOT, 'src', 'main.js')].find(existsSync) ?? '';

export type FaultKind =
  | 'a1111-5xx'
  | 'route-404'
  | 'cut-response'
  | 'a1111-killed'
  | 'job-done-500'
  | 'job-done-dropped'
  | 'job-done-slow'
  | 'job-take-500'
  | 'job-take-429';

export interface ChaosOptions {
  seed: number;
  jobs: number;
  /** Fails the run when it takes longer. */
  timeoutMs?: number;
  /** Progress lines. */
  onLine?: (line: string) => void;
}

export interface ChaosReport {
  seed: number;
  jobs: number;
  durationMs: number;
  succeeded: number;
  failedByCode: Record<string, number>;
  faults: Record<string, number>;
  violations: string[];
  baseline: ProcessFigures | undefined;
  end: ProcessFigures | undefined;
}

interface ProcessFigures {
  heapUsedBytes: number;
  rssBytes: number;
  handles: number;
}

/** mulberry32: small, fast, seedable. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORKER_ENV = {
  WORKER_CONCURRENCY: '2',
  A1111_HTTP_RETRIES: '4',
  A1111_RETRY_BASE_DELAY_MS: '5',
  A1111_RETRY_MAX_DELAY_MS: '20',
  A1111_READY_POLL_INTERVAL_MS: '20',
  A1111_READY_TIMEOUT_MS: '20000',
  A1111_ROUTE_RECOVERY_ATTEMPTS: '2',
  A1111_ROUTE_RECOVERY_DELAY_MS: '50',
  A1111_INTERRUPT_SETTLE_TIMEOUT_MS: '1000',
  PROGRESS_POLL_INTERVAL_MS: '20',
  PROGRESS_POST_INTERVAL_MS: '40',
  JOB_DONE_RETRIES: '6',
  JOB_DONE_RETRY_DELAY_MS: '20',
  JOB_TAKE_ERROR_DELAY_MS: '20',
  JOB_TAKE_ERROR_DELAY_MAX_MS: '100',
  JOB_TAKE_THROTTLE_WAIT_MS: '100',
  METRICS_LOG_INTERVAL_MS: '100',
  LOG_FORMAT: 'json',
  LOG_LEVEL: 'info',
};

/** Which codes a failure may carry, and what the simulator must have done during the job for it. */
const LEGITIMATE: Record<string, (call: { status: number; body404: boolean }) => boolean> = {
  BACKEND_UNAVAILABLE: (c) => c.status === 502 || c.status === 503 || c.status === 504,
  BACKEND_ROUTE_MISSING: (c) => c.status === 404 && c.body404,
  BACKEND_CRASHED: (c) => c.status === -2,
};

function figuresOf(record: Record<string, unknown>): ProcessFigures | undefined {
  const process = record['process'] as
    | { heapUsedBytes: number; rssBytes: number; activeResources: Record<string, number> }
    | undefined;
  if (!process) return undefined;
  const handles = Object.values(process.activeResources).reduce((sum, n) => sum + n, 0);
  return { heapUsedBytes: process.heapUsedBytes, rssBytes: process.rssBytes, handles };
}

function checkPng(base64: string): string | null {
  try {
    const png = PNG.sync.read(Buffer.from(base64, 'base64'));
    return png.width > 0 && png.height > 0 ? null : 'an empty picture';
  } catch (error) {
    return `not a PNG (${error instanceof Error ? error.message : String(error)})`;
  }
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  if (!WORKER) throw new Error('dist/src/main.js is missing: run npm run build');
  const rng = random(options.seed);
  const started = Date.now();
  const say = options.onLine ?? (() => undefined);
  const sim = new A1111Simulator({ stepDelayMs: 1 });
  await sim.start();
  const plane = new FakeRunPod({ longPollMs: 200 });
  await plane.start();
  const child: ChildProcess = spawn(process.execPath, [WORKER], {
    env: {
      PATH: process.env['PATH'] ?? '',
      ...WORKER_ENV,
      ...plane.env({ RUNPOD_PING_INTERVAL: '1000' }),
      A1111_BASE_URL: sim.url,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const metrics: { at: number; figures: ProcessFigures }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (!line.includes('"metrics')) return;
    try {
      const figures = figuresOf(JSON.parse(line) as Record<string, unknown>);
      if (figures) metrics.push({ at: Date.now(), figures });
    } catch {
      // not a JSON line
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let alive = true;
  void exited.then(() => {
    alive = false;
  });

  const violations: string[] = [];
  const faults: Record<string, number> = {};
  const inputs = new Map<string, { seed: number; batch: number }>();
  const finals = (id: string) => plane.results(id);
  const done = (id: string) => finals(id).some((r) => r.answeredStatus !== undefined && r.answeredStatus < 300);
  const waitUntil = async (predicate: () => boolean, what: string, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (!alive) throw new Error(`the worker exited while waiting for ${what}: ${stderr.slice(-2000)}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  const enqueue = (id: string) => {
    const seed = 1000 + inputs.size;
    const batch = rng() < 0.3 ? 2 : 1;
    inputs.set(id, { seed, batch });
    plane.enqueue({
      id,
      input: {
        prompt: `a lighthouse ${id}`,
        seed,
        steps: 1 + Math.floor(rng() * 3),
        width: 64,
        height: 64,
        batch_size: batch,
      },
    });
  };

  let baseline: ProcessFigures | undefined;
  let end: ProcessFigures | undefined;
  try {
    // Warm-up, without faults: the baseline the end is compared with.
    const warmup = Array.from({ length: 10 }, (_, i) => `warmup-${i}`);
    for (const id of warmup) enqueue(id);
    await waitUntil(() => warmup.every(done), 'the warm-up jobs', 30_000);
    // A job’s result is posted before it is counted, so the metrics line after its last post counts it
    // (both times are milliseconds since the epoch).
    const lastPost = (ids: string[]) => Math.max(...ids.flatMap((id) => finals(id).map((r) => r.at)));
    const afterWarmup = lastPost(warmup);
    await waitUntil(() => metrics.some((m) => m.at > afterWarmup), 'a metrics line after the warm-up', 10_000);
    baseline = metrics.find((m) => m.at > afterWarmup)!.figures;

    const ids = Array.from({ length: options.jobs }, (_, i) => `chaos-${i}`);
    for (const id of ids) enqueue(id);
    let lastKill = 0;
    const deadline = started + (options.timeoutMs ?? 120_000);
    while (!ids.every(done)) {
      if (!alive) throw new Error(`the worker exited during the run: ${stderr.slice(-2000)}`);
      if (Date.now() > deadline)
        throw new Error(`the run did not finish in time (${ids.filter(done).length} of ${ids.length} jobs)`);
      await new Promise((resolve) => setTimeout(resolve, 20 + rng() * 120));
      const roll = rng();
      let kind: FaultKind;
      if (roll < 0.2) {
        kind = 'a1111-5xx';
        const statuses = [502, 503, 504] as const;
        sim.failNext(1 + Math.floor(rng() * 7), statuses[Math.floor(rng() * 3)]!);
      } else if (roll < 0.32) {
        kind = 'route-404';
        sim.routesMissingFor(30 + rng() * 300);
      } else if (roll < 0.42) {
        kind = 'cut-response';
        sim.cutNextResponses(1, '/txt2img');
      } else if (roll < 0.48 && Date.now() - lastKill > 1_500) {
        kind = 'a1111-killed';
        lastKill = Date.now();
        sim.crashDuringNextGeneration({ atStep: 0, restartAfterMs: 100 + rng() * 600 });
      } else if (roll < 0.6) {
        kind = 'job-done-500';
        plane.faultNextDone(1 + Math.floor(rng() * 2), 500);
      } else if (roll < 0.7) {
        kind = 'job-done-dropped';
        plane.faultNextDone(1, 'drop');
      } else if (roll < 0.8) {
        kind = 'job-done-slow';
        plane.faultNextDone(1, 200, 100 + rng() * 500);
      } else if (roll < 0.9) {
        kind = 'job-take-500';
        plane.scriptTake({ status: 500, body: '{"error":"internal"}' });
      } else {
        kind = 'job-take-429';
        plane.scriptTake({ status: 429 });
      }
      faults[kind] = (faults[kind] ?? 0) + 1;
    }
    say(`seed ${options.seed}: ${ids.length} jobs answered after ${Date.now() - started} ms`);

    // The worker is alive and serves one more job; its figures then are compared with the baseline.
    await new Promise((resolve) => setTimeout(resolve, 300));
    enqueue('final');
    await waitUntil(() => done('final'), 'the last job', 30_000);
    const afterFinal = lastPost(['final']);
    await waitUntil(() => metrics.some((m) => m.at > afterFinal), 'a metrics line after the last job', 10_000);
    end = metrics.find((m) => m.at > afterFinal)!.figures;
    if (!JSON.parse(finals('final')[0]!.body).output) violations.push('final: the last job, without faults, failed');

    for (const id of [...warmup, ...ids]) checkJob(id);
    if (end.handles > baseline.handles + 4) {
      violations.push(`open handles grew from ${baseline.handles} after the warm-up to ${end.handles} at the end`);
    }
    if (end.heapUsedBytes > baseline.heapUsedBytes + 48 * 1024 * 1024) {
      violations.push(`the heap grew from ${baseline.heapUsedBytes} to ${end.heapUsedBytes} bytes`);
    }
  } finally {
    child.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<'hung'>((resolve) => setTimeout(resolve, 15_000, 'hung'))]);
    if (code === 'hung') {
      child.kill('SIGKILL');
      violations.push('the worker did not exit within 15 s of SIGTERM');
    } else if (code !== 0) violations.push(`the worker exited with code ${code} on SIGTERM`);
    await plane.close();
    await sim.close();
  }

  function checkJob(id: string): void {
    const posts = finals(id);
    const bodies = new Set(posts.map((p) => p.body));
    if (bodies.size !== 1) violations.push(`${id}: ${bodies.size} different final results`);
    const accepted = posts.find((p) => p.answeredStatus !== undefined && p.answeredStatus < 300);
    if (!accepted) return void violations.push(`${id}: no final result accepted`);
    const first = posts[0]!;
    const late = plane.of('job-done', id).filter((p) => !posts.includes(p) && p.at > first.at);
    if (late.length > 0) violations.push(`${id}: ${late.length} progress post(s) after its result`);
    const body = JSON.parse(accepted.body) as { output?: { images: string[]; info: string }; error?: string };
    const input = inputs.get(id)!;
    if (body.output) {
      const { images, info } = body.output;
      if (images.length !== input.batch) violations.push(`${id}: ${images.length} image(s), ${input.batch} asked for`);
      for (const [index, image] of images.entries()) {
        const problem = checkPng(image);
        if (problem) violations.push(`${id}: images[${index}] is ${problem}`);
      }
      const seeds = (JSON.parse(info) as { all_seeds?: number[] }).all_seeds ?? [];
      if (seeds[0] !== input.seed)
        violations.push(`${id}: info says seed ${seeds[0]}, the job asked for ${input.seed}`);
      return;
    }
    const failure = JSON.parse(body.error ?? '{}') as { code?: string; message?: string };
    const legit = failure.code ? LEGITIMATE[failure.code] : undefined;
    const from = (plane.handedOutAt.get(id) ?? first.at) - 50;
    const during = sim.calls.filter((c) => c.at >= from && c.at <= first.at);
    const down = sim.downtimes.some((d) => d.from <= first.at && (d.to ?? Number.POSITIVE_INFINITY) >= from);
    const crashCode = failure.code === 'BACKEND_UNAVAILABLE' || failure.code === 'BACKEND_CRASHED';
    const cause =
      (crashCode && down) ||
      (legit ? during.some((c) => legit({ status: c.status, body404: c.status === 404 })) : false);
    if (!cause) {
      violations.push(`${id}: failed ${failure.code} without a fault that calls for it (${failure.message ?? ''})`);
    }
  }

  const results = [...inputs.keys()].map((id) => JSON.parse(finals(id)[0]?.body ?? '{}') as Record<string, unknown>);
  const failedByCode: Record<string, number> = {};
  for (const result of results) {
    if (typeof result['error'] !== 'string') continue;
    const code = (JSON.parse(result['error']) as { code: string }).code;
    failedByCode[code] = (failedByCode[code] ?? 0) + 1;
  }
  return {
    seed: options.seed,
    jobs: options.jobs,
    durationMs: Date.now() - started,
    succeeded: results.filter((r) => r['output'] !== undefined).length,
    failedByCode,
    faults,
    violations,
    baseline,
    end,
  };
}
