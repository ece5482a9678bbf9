/**
 * The warm-up generation before the first job-take: the built worker as its own process, the simulator
 * (whose first generation waits for its checkpoint load while /sd-models already answers, as v1.9.3's
 * does) and the fake control plane, over real HTTP.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { plane } from '../support/plane.js';
import { simulator } from '../support/simulator.js';
import { startWorker } from '../support/worker-process.js';

const job = { id: 'first-job', input: { prompt: 'a lighthouse', steps: 2, seed: 3, width: 64, height: 64 } };

describe('the warm-up', () => {
  it('loads the checkpoint before the first job-take, with the heartbeat beating, so the first job does not wait', async () => {
    const sim = await simulator({ modelLoadMs: 1_500 });
    const runpod = await plane();
    runpod.enqueue(job);
    const worker = startWorker({
      ...runpod.env({ RUNPOD_PING_INTERVAL: '200' }),
      A1111_BASE_URL: sim.url,
      WARMUP: 'on',
    });

    const done = await runpod.waitFor(
      (r) => r.kind === 'job-done' && r.jobId === 'first-job' && !r.body.startsWith('{"status"'),
      30_000,
    );
    worker.child.kill('SIGTERM');
    await worker.exited;

    const [warmup, first] = sim.callsTo('POST', '/txt2img');
    expect(warmup?.body).toEqual({ prompt: 'warm-up', steps: 1, width: 64, height: 64 });
    expect(first?.body).toMatchObject({ prompt: 'a lighthouse' });
    const firstTake = runpod.of('job-take')[0]!;
    // The warm-up was answered (after the 1.5 s load) before the worker asked for its first job.
    const warmed = worker.records().find((r) => r['message'] === 'warm-up generation done; taking jobs')!;
    expect(warmed['warmupMs']).toBeGreaterThanOrEqual(1_400);
    expect(warmup!.at).toBeLessThan(firstTake.at);
    expect(runpod.of('ping').filter((p) => p.at < firstTake.at).length).toBeGreaterThanOrEqual(3);
    const output = JSON.parse(done.body).output as { worker: { timings_ms: { inferring: number } } };
    expect(output.worker.timings_ms.inferring).toBeLessThan(1_000);
    const metrics = worker.records().find((r) => r['message'] === 'metrics at shutdown')!;
    expect(metrics['warmup']).toEqual({ ms: warmed['warmupMs'], ok: true });
  });

  it('stops at once on SIGTERM, takes no job and exits 0', async () => {
    const sim = await simulator({ modelLoadMs: 60_000 });
    const runpod = await plane();
    runpod.enqueue(job);
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url, WARMUP: 'on' });
    await worker.waitForLog((r) => String(r['message']).startsWith('warm-up generation:'), 20_000);

    const signalled = Date.now();
    worker.child.kill('SIGTERM');
    const exit = await worker.exited;

    expect(exit.code).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(5_000);
    expect(runpod.of('job-take')).toEqual([]);
  });

  it('logs a warm-up A1111 refuses with its error, then serves jobs all the same', async () => {
    const sim = await simulator();
    const runpod = await plane();
    runpod.enqueue(job);
    const dir = await mkdtemp(path.join(tmpdir(), 'warmup-'));
    const file = path.join(dir, 'warmup.json');
    await writeFile(
      file,
      JSON.stringify({ prompt: 'warm-up', steps: 1, width: 64, height: 64, sampler_name: 'No Such Sampler' }),
    );
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url, WARMUP: file });

    const done = await runpod.waitFor(
      (r) => r.kind === 'job-done' && r.jobId === 'first-job' && !r.body.startsWith('{"status"'),
      30_000,
    );
    worker.child.kill('SIGTERM');
    await worker.exited;

    const failed = worker.records().find((r) => String(r['message']).startsWith('warm-up generation failed'))!;
    expect(failed['level']).toBe('warn');
    expect(failed['code']).toBe('BACKEND_REJECTED');
    expect(String(failed['message'])).toContain('Sampler not found');
    expect(sim.callsTo('POST', '/txt2img')[0]?.body).toMatchObject({ sampler_name: 'No Such Sampler' });
    expect(JSON.parse(done.body).output.images).toHaveLength(1);
  });

  it('waits for A1111 to answer again when it dies during the warm-up, then serves jobs', async () => {
    const sim = await simulator();
    sim.crashDuringNextGeneration({ atStep: 0, restartAfterMs: 500 });
    const runpod = await plane();
    runpod.enqueue(job);
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url, WARMUP: 'on' });

    const done = await runpod.waitFor(
      (r) => r.kind === 'job-done' && r.jobId === 'first-job' && !r.body.startsWith('{"status"'),
      30_000,
    );
    worker.child.kill('SIGTERM');
    await worker.exited;

    const records = worker.records();
    const failed = records.find((r) => String(r['message']).startsWith('warm-up generation failed'))!;
    expect(failed['code']).toBe('BACKEND_CRASHED');
    expect(
      records.some(
        (r) =>
          r['message'] ===
          'crash policy: the warm-up failed BACKEND_CRASHED; no job is taken until A1111 answers again',
      ),
    ).toBe(true);
    const answered = records.find((r) => r['message'] === 'crash policy: A1111 answers again; taking jobs')!;
    expect(answered).toBeDefined();
    expect(JSON.parse(done.body).output.images).toHaveLength(1);
  });

  it('runs none with WARMUP=off', async () => {
    const sim = await simulator();
    const runpod = await plane();
    runpod.enqueue(job);
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url, WARMUP: 'off' });

    await runpod.waitFor(
      (r) => r.kind === 'job-done' && r.jobId === 'first-job' && !r.body.startsWith('{"status"'),
      30_000,
    );
    worker.child.kill('SIGTERM');
    await worker.exited;

    expect(sim.callsTo('POST', '/txt2img').map((call) => (call.body as { prompt: string }).prompt)).toEqual([
      'a lighthouse',
    ]);
    expect(worker.records().some((r) => r['message'] === 'no warm-up: WARMUP=off')).toBe(true);
  });
});
