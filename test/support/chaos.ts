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
 * - the worker is alive at the end (it serves one more job, once the faults still armed are disarmed),
 *   and its memory and open handles are back to where they were after the warm-up.
 *
 * A run that cannot finish (a job never answered, the worker exited) throws a ChaosRunError that names
 * the seed and, for each job without an accepted result, its job-done posts and the worker's last lines
 * about it.
 *
 * Used by test/chaos.test.ts (a fixed seed in CI) and `npm run chaos` (longer runs, any seeds).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { imageScript } from '../../bench/image.js';
import { A1111Simulator } from '../../src/simulator/server.js';
import { FakeRunPod } from './fake-runpod.js';

/** The project's root, wherever this file runs from (test/support/ or dist/test/support/). */
const ROOT = [
  fileURLToPath(new URL('../..', import.meta.url)),
  fileURLToPath(new URL('../../..', import.meta.url)),
].find((dir) => existsSync(path.join(dir, 'Dockerfile')))!;
/** The worker as the image runs it (the bundle the build writes). */
const WORKER = imageScript(ROOT);

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
  /** Writes every line the worker prints (stdout and stderr) to this file, for a run to be read later. */
  workerLogPath?: string;
  /** The worker's LOG_LEVEL (`info` unless given; `debug` shows every post, and changes the timing). */
  logLevel?: string;
}

/** How many of the worker's last lines a run keeps in memory for a failure's report. */
const KEPT_LINES = 20_000;

/**
 * A run that could not finish (a job never answered, the worker exited): the message names the seed,
 * so the run can be repeated, and for a job never answered, what the control plane and the worker last
 * did with it.
 */
export class ChaosRunError extends Error {
  override readonly name = 'ChaosRunError';
  constructor(
    readonly seed: number,
    message: string,
  ) {
    super(`seed ${seed}: ${message}`);
  }
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

/**
 * Which codes a failure may carry, and what the simulator must have done during the job for it. A cut
 * answer (status -2) still carried its status line: a cut 502 is a 502 to the worker, as well as a cut.
 */
const LEGITIMATE: Record<string, (call: { status: number; answered: number | undefined }) => boolean> = {
  BACKEND_UNAVAILABLE: (c) => c.answered === 502 || c.answered === 503 || c.answered === 504,
  BACKEND_ROUTE_MISSING: (c) => c.answered === 404,
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

/**
 * Before the run's last job, the one without faults: the faults armed during the run and not yet met
 * (a cut answer, 5xx answers, a crash at the next generation, missing routes, job-take and job-done
 * failures) are disarmed, or they fall on that job, which then fails for a fault after all. An A1111
 * restart already under way still happens, and the job waits for it as any job would.
 */
export function disarmFaults(sim: A1111Simulator, plane: FakeRunPod): void {
  sim.clearFaults();
  plane.clearFaults();
}

/** Milliseconds since the run started, for a report a person reads. */
function since(started: number, at: number | undefined): string {
  return at === undefined ? '-' : `+${Math.round(at - started)} ms`;
}

/**
 * One job without an accepted result: when it was handed out, every job-done post for it (progress or
 * final, and how the control plane answered), and the worker's last lines that name it.
 */
function describeUnfinished(id: string, run: { plane: FakeRunPod; lines: string[]; started: number }): string {
  const { plane, lines, started } = run;
  const posts = plane.of('job-done', id).map((post) => {
    const kind = post.body.startsWith('{"status":"IN_PROGRESS"') ? 'progress' : 'final';
    const answer = post.answeredStatus === undefined ? 'no answer (dropped or pending)' : post.answeredStatus;
    return `    ${kind} post at ${since(started, post.at)} answered ${answer}: ${post.body.slice(0, 160)}`;
  });
  const quoted = JSON.stringify(id);
  const mentions = lines.filter((line) => line.includes(quoted)).slice(-12);
  return [
    `  ${id}: handed out at ${since(started, plane.handedOutAt.get(id))}; ${posts.length} job-done post(s)`,
    ...posts.slice(-8),
    `    the worker's last ${mentions.length} line(s) naming it:`,
    ...mentions.map((line) => `    | ${line.slice(0, 600)}`),
  ].join('\n');
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
  if (!existsSync(WORKER)) throw new Error(`${WORKER} is missing: run npm run build`);
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
      ...(options.logLevel ? { LOG_LEVEL: options.logLevel } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const workerLog = options.workerLogPath ? createWriteStream(options.workerLogPath) : undefined;
  const lines: string[] = [];
  const keep = (line: string) => {
    if (workerLog?.writable) workerLog.write(`${line}\n`);
    lines.push(line);
    if (lines.length > KEPT_LINES * 1.5) lines.splice(0, lines.length - KEPT_LINES);
  };
  createInterface({ input: child.stderr! }).on('line', keep);
  const metrics: { at: number; figures: ProcessFigures }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    keep(line);
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
  const fail = (message: string) => new ChaosRunError(options.seed, message);
  /** What the control plane and the worker last did with the jobs that have no accepted result. */
  const unfinished = (ids: string[]) =>
    ids
      .filter((id) => !done(id))
      .map((id) => describeUnfinished(id, { plane, lines, started }))
      .join('\n');
  const waitUntil = async (ids: string[], what: string, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (!ids.every(done)) {
      if (!alive) throw fail(`the worker exited while waiting for ${what}: ${stderr.slice(-2000)}`);
      if (Date.now() > deadline) throw fail(`timed out waiting for ${what}\n${unfinished(ids)}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  const waitForMetrics = async (after: number, what: string) => {
    const deadline = Date.now() + 10_000;
    while (!metrics.some((m) => m.at > after)) {
      if (!alive) throw fail(`the worker exited while waiting for ${what}: ${stderr.slice(-2000)}`);
      if (Date.now() > deadline) throw fail(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return metrics.find((m) => m.at > after)!.figures;
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
    await waitUntil(warmup, 'the warm-up jobs', 30_000);
    // A job’s result is posted before it is counted, so the metrics line after its last post counts it
    // (both times are milliseconds since the epoch).
    const lastPost = (ids: string[]) => Math.max(...ids.flatMap((id) => finals(id).map((r) => r.at)));
    const afterWarmup = lastPost(warmup);
    baseline = await waitForMetrics(afterWarmup, 'a metrics line after the warm-up');

    const ids = Array.from({ length: options.jobs }, (_, i) => `chaos-${i}`);
    for (const id of ids) enqueue(id);
    let lastKill = 0;
    const deadline = started + (options.timeoutMs ?? 120_000);
    while (!ids.every(done)) {
      if (!alive) throw fail(`the worker exited during the run: ${stderr.slice(-2000)}\n${unfinished(ids)}`);
      if (Date.now() > deadline) {
        throw fail(
          `the run did not finish in time (${ids.filter(done).length} of ${ids.length} jobs)\n${unfinished(ids)}`,
        );
      }
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
    disarmFaults(sim, plane);
    await new Promise((resolve) => setTimeout(resolve, 300));
    enqueue('final');
    await waitUntil(['final'], 'the last job', 30_000);
    end = await waitForMetrics(lastPost(['final']), 'a metrics line after the last job');
    const last = JSON.parse(finals('final')[0]!.body) as { output?: unknown; error?: string };
    if (!last.output) {
      violations.push(`final: the last job, without faults, failed: ${last.error}; ${a1111During('final')}`);
    }

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
    // After the exit: the worker's shutdown lines belong to the log too.
    workerLog?.end();
  }

  /** The simulator's record of a job's life: each call and its status (-1 a crash, -2 a cut answer). */
  function a1111During(id: string): string {
    const from = plane.handedOutAt.get(id) ?? started;
    const to = finals(id)[0]?.at ?? Date.now();
    const calls = sim.calls.filter((c) => c.at >= from && c.at <= to).map((c) => `${c.method} ${c.path} ${c.status}`);
    const downtimes = sim.downtimes
      .filter((d) => (d.to ?? Number.POSITIVE_INFINITY) >= from && d.from <= to)
      .map((d) => `; A1111 down from ${since(started, d.from)} to ${d.to === null ? 'the end' : since(started, d.to)}`);
    return `A1111 during it: ${calls.join(', ') || 'no call'}${downtimes.join('')}`;
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
      (legit
        ? during.some((c) => legit({ status: c.status, answered: c.status === -2 ? c.cutStatus : c.status }))
        : false);
    if (!cause) {
      violations.push(
        `${id}: failed ${failure.code} without a fault that calls for it (${failure.message ?? ''}); ${a1111During(id)}`,
      );
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
