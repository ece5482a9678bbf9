/**
 * The production worker's life around its jobs: heartbeat, stop channel, signals, concurrency and
 * crash-class failures. Built entry point, real processes, real HTTP on 127.0.0.1.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { plane } from '../support/plane.js';
import { simulator } from '../support/simulator.js';
import { startWorker } from '../support/worker-process.js';

const job = (id: string, input: Record<string, unknown> = {}) => ({
  id,
  input: { prompt: 'a lighthouse', steps: 3, seed: 8, width: 128, height: 128, ...input },
});

describe('the heartbeat', () => {
  it('keeps its cadence and names the running job, while a large result is parsed and posted', async () => {
    const sim = await simulator({ stepDelayMs: 10 });
    const runpod = await plane();
    // 8 × 1024×1024 PNGs: about 25 MB of base64 for the worker to parse, re-encode and post. One direct
    // call first fills the simulator's render cache, so this test process is not busy encoding PNGs
    // while it timestamps the pings.
    const large = job('job-large', { width: 1024, height: 1024, batch_size: 8, steps: 150 });
    await fetch(`${sim.url}/sdapi/v1/txt2img`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ ...large.input, steps: 1 }),
    });
    runpod.enqueue(large);
    // Past RESULT_INLINE_MAX_BYTES, posted inline all the same (this control plane takes any size).
    const worker = startWorker({
      ...runpod.env({ RUNPOD_PING_INTERVAL: '200' }),
      A1111_BASE_URL: sim.url,
      RESULT_INLINE_MAX_BYTES: '100000000',
    });

    const done = await runpod.waitFor((r) => r.kind === 'job-done' && !r.body.startsWith('{"status"'), 60_000);
    // The first ping after the result that no longer names the job; then one more, to see none names it again.
    const cleared = await runpod.waitFor((r) => r.kind === 'ping' && r.at > done.at && !r.query.has('job_id'));
    await runpod.waitFor((r) => r.kind === 'ping' && r.at > cleared.at);
    worker.child.kill('SIGTERM');
    await worker.exited;

    expect(done.body.length).toBeGreaterThan(20_000_000);
    const pings = runpod.of('ping');
    const first = pings[0]!;
    expect(first.url).toMatch(
      /^\/v2\/test-ep\/ping\/pod-1\?gpu=NVIDIA\+TEST(&job_id=job-large)?&runpod_version=\d+\.\d+\.\d+$/,
    );
    expect(first.headers['authorization']).toBe('test-api-key');
    const during = pings.filter((p) => p.query.get('job_id') === 'job-large');
    expect(during.length).toBeGreaterThan(3);
    const gaps = pings.slice(1).map((p, i) => p.at - pings[i]!.at);
    // 200 ms apart; the bound is loose because this test process is busy too. The precise cadence under a
    // blocked main thread is shown in heartbeat.test.ts.
    expect(Math.max(...gaps)).toBeLessThan(2_000);
    // A ping already on its way when the result was posted may still name the job; none after it does.
    expect(pings.filter((p) => p.at > cleared.at).every((p) => !p.query.has('job_id'))).toBe(true);
    expect(cleared.at - done.at).toBeLessThan(2_000);
  });
});

describe('the stop channel', () => {
  it('cancels a running job: A1111 is interrupted and CANCELLED is posted', async () => {
    const sim = await simulator({ stepDelayMs: 30 });
    const runpod = await plane();
    runpod.enqueue(job('job-stop', { steps: 300 }));
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url });

    await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-stop' && r.body.startsWith('{"status"'));
    runpod.stop('job-stop');
    const result = await runpod.waitFor(
      (r) => r.kind === 'job-done' && r.jobId === 'job-stop' && r.body.startsWith('{"error"'),
    );

    expect(JSON.parse(JSON.parse(result.body).error)).toMatchObject({ code: 'CANCELLED', phase: 'inferring' });
    expect(sim.callsTo('POST', '/interrupt')).toHaveLength(1);
    expect(sim.engine.generations).toEqual([expect.objectContaining({ interrupted: true })]);
    worker.child.kill('SIGTERM');
    await worker.exited;
  });

  it('still cancels a job while the worker drains after SIGTERM', async () => {
    const sim = await simulator({ stepDelayMs: 30 });
    const runpod = await plane();
    runpod.enqueue(job('job-drain-stop', { steps: 300 }));
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url });

    await runpod.waitFor(
      (r) => r.kind === 'job-done' && r.jobId === 'job-drain-stop' && r.body.startsWith('{"status"'),
    );
    worker.child.kill('SIGTERM');
    await worker.waitForLog((r) => String(r['message']).startsWith('shutting down'));
    runpod.stop('job-drain-stop');
    const exit = await worker.exited;

    expect(exit).toEqual({ code: 0, signal: null });
    const [result] = runpod.results('job-drain-stop');
    expect(JSON.parse(JSON.parse(result!.body).error)).toMatchObject({ code: 'CANCELLED', phase: 'inferring' });
    expect(sim.callsTo('POST', '/interrupt')).toHaveLength(1);
    expect(sim.engine.generations).toEqual([expect.objectContaining({ interrupted: true })]);
  });
});

describe('signals', () => {
  it('SIGTERM during a job: no new job-take, the result is posted, then exit 0', async () => {
    const sim = await simulator({ stepDelayMs: 20 });
    const runpod = await plane();
    runpod.enqueue(job('job-term', { steps: 50 }), job('job-never'));
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url });

    await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-term' && r.body.startsWith('{"status"'));
    const takesBefore = runpod.of('job-take').length;
    worker.child.kill('SIGTERM');
    const exit = await worker.exited;

    expect(exit).toEqual({ code: 0, signal: null });
    expect(JSON.parse(runpod.results('job-term')[0]!.body).output.images).toHaveLength(1);
    expect(runpod.of('job-take').length).toBe(takesBefore);
    expect(runpod.results('job-never')).toEqual([]);
    expect(worker.records().some((r) => r['message'] === 'metrics at shutdown')).toBe(true);
  });

  it('a second signal exits at once', async () => {
    const sim = await simulator({ stepDelayMs: 50 });
    const runpod = await plane();
    runpod.enqueue(job('job-abandoned', { steps: 500 }));
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url });

    await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-abandoned');
    worker.child.kill('SIGTERM');
    await worker.waitForLog((r) => String(r['message']).startsWith('shutting down'));
    worker.child.kill('SIGTERM');

    expect(await worker.exited).toEqual({ code: 143, signal: null });
    // The last word names the job it leaves unanswered.
    expect(worker.records().find((r) => String(r['message']).includes('received again'))).toMatchObject({
      level: 'warn',
      abandonedJobs: ['job-abandoned'],
    });
  });
});

describe('a defect that escapes every handler', () => {
  it('is logged with the jobs it takes down, and the worker exits 1 so RunPod replaces it', async () => {
    // Preloaded into the worker: on SIGUSR2, an exception nothing catches (the worker has no such hook).
    const dir = await mkdtemp(path.join(tmpdir(), 'worker-defect-'));
    const preload = path.join(dir, 'defect.cjs');
    await writeFile(preload, "process.on('SIGUSR2', () => setImmediate(() => { throw new Error('a defect'); }));\n");
    const sim = await simulator({ stepDelayMs: 30 });
    const runpod = await plane();
    runpod.enqueue(job('job-taken-down', { steps: 300 }));
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url }, [], ['--require', preload]);

    await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-taken-down');
    worker.child.kill('SIGUSR2');

    expect(await worker.exited).toEqual({ code: 1, signal: null });
    expect(worker.records().find((r) => String(r['message']).startsWith('the worker crashed'))).toMatchObject({
      level: 'error',
      errorMessage: 'a defect',
      runningJobs: ['job-taken-down'],
    });
  });
});

describe('concurrency 2', () => {
  it('takes jobs from the batch route and keeps the next generation queued in A1111', async () => {
    const sim = await simulator({ stepDelayMs: 10 });
    const runpod = await plane();
    runpod.enqueue(job('job-a', { steps: 20 }), job('job-b', { steps: 20 }), job('job-c', { steps: 20 }));
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url, WORKER_CONCURRENCY: '2' });

    await Promise.all(
      ['job-a', 'job-b', 'job-c'].map((id) =>
        runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === id && r.body.startsWith('{"output"')),
      ),
    );
    worker.child.kill('SIGTERM');
    await worker.exited;

    const first = runpod.requests.find((r) => r.kind === 'job-take-batch')!;
    expect(first.url).toBe('/v2/test-ep/job-take-batch/pod-1?gpu=NVIDIA+TEST&batch_size=2&job_in_progress=0');
    const generations = sim.engine.generations;
    expect(generations).toHaveLength(3);
    // While one generation ran, the next already waited in A1111's queue, so A1111 never stood idle.
    for (let i = 1; i < generations.length; i++) {
      expect(generations[i]!.requestedAt).toBeLessThan(generations[i - 1]!.endedAt);
    }
  });

  it('cancelling the queued job leaves the running one alone and stops the queued one when it starts', async () => {
    const sim = await simulator({ stepDelayMs: 20 });
    const runpod = await plane();
    runpod.enqueue(job('job-running', { steps: 40 }), job('job-queued', { steps: 200 }));
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url, WORKER_CONCURRENCY: '2' });

    await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-running' && r.body.startsWith('{"status"'));
    runpod.stop('job-queued');
    const cancelled = await runpod.waitFor(
      (r) => r.kind === 'job-done' && r.jobId === 'job-queued' && r.body.startsWith('{"error"'),
    );
    const finished = await runpod.waitFor(
      (r) => r.kind === 'job-done' && r.jobId === 'job-running' && r.body.startsWith('{"output"'),
    );
    await worker.waitForLog(
      (r) => r['message'] === 'sent POST /sdapi/v1/interrupt to A1111' && r['jobId'] === 'job-queued',
    );
    await sim.engine.generationsEnded(2);
    worker.child.kill('SIGTERM');
    await worker.exited;

    expect(JSON.parse(JSON.parse(cancelled.body).error).code).toBe('CANCELLED');
    expect(cancelled.at).toBeLessThan(finished.at);
    const [running, queued] = sim.engine.generations;
    expect(running).toMatchObject({ interrupted: false });
    expect(queued).toMatchObject({ interrupted: true });
  });
});

describe('the crash policy, for an A1111 the worker does not run', () => {
  it('fails the job A1111 crashed under without stopPod, waits for A1111 to answer again, and serves the next job', async () => {
    const sim = await simulator({ stepDelayMs: 5 });
    sim.crashDuringNextGeneration({ atStep: 2, restartAfterMs: 1_000 });
    const runpod = await plane();
    runpod.enqueue(job('job-crash', { steps: 20 }));
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url });
    await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-crash' && r.body.startsWith('{"error"'));
    runpod.enqueue(job('job-after'));

    const after = await runpod.waitFor(
      (r) => r.kind === 'job-done' && r.jobId === 'job-after' && r.body.startsWith('{"output"'),
    );
    worker.child.kill('SIGTERM');
    const exit = await worker.exited;

    const body = JSON.parse(runpod.results('job-crash')[0]!.body);
    expect(body).not.toHaveProperty('stopPod');
    expect(JSON.parse(body.error)).toMatchObject({ code: 'BACKEND_CRASHED' });
    expect(JSON.parse(after.body).output.images).toHaveLength(1);
    // No job was taken while A1111 was down: the one after the crash was handed out once it answered.
    expect(runpod.handedOutAt.get('job-after')).toBeGreaterThan(sim.downtimes[0]!.to!);
    const messages = worker.records().map((r) => String(r['message']));
    expect(messages).toContain('crash policy: a job failed BACKEND_CRASHED; no job is taken until A1111 answers again');
    expect(messages).toContain('crash policy: A1111 answers again; taking jobs');
    expect(exit).toEqual({ code: 0, signal: null });
  });

  it('after a crash, takes no job while A1111 is down, and exits 1 once it stays unreachable past the readiness deadline', async () => {
    const sim = await simulator({ stepDelayMs: 5 });
    sim.crashDuringNextGeneration({ atStep: 2 });
    const runpod = await plane();
    runpod.enqueue(job('job-crash', { steps: 20 }));
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url, A1111_READY_TIMEOUT_MS: '1500' });
    await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-crash' && r.body.startsWith('{"error"'));
    runpod.enqueue(job('job-queued'));

    const exit = await worker.exited;

    const crashed = JSON.parse(runpod.results('job-crash')[0]!.body);
    expect(crashed).not.toHaveProperty('stopPod');
    expect(JSON.parse(crashed.error)).toMatchObject({ code: 'BACKEND_CRASHED' });
    // The job queued meanwhile stays with RunPod, for a worker that can serve it.
    expect(runpod.handedOutAt.has('job-queued')).toBe(false);
    expect(exit.code).toBe(1);
    const last = worker.records().find((r) => String(r['message']).startsWith('crash policy: A1111 is gone for good'));
    expect(String(last?.['message'])).toContain('A1111 did not answer again');
  });

  it('answers a job that waited for A1111 past the readiness deadline with stopPod, then exits 1', async () => {
    const sim = await simulator({ stepDelayMs: 5 });
    const runpod = await plane();
    runpod.enqueue(job('job-before'));
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url, A1111_READY_TIMEOUT_MS: '1500' });
    await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-before' && r.body.startsWith('{"output"'));
    await sim.close(); // A1111 is gone while the worker is idle
    // A probe within a second of A1111's last answer is answered from that answer (client.ts): the next
    // job is to find A1111 gone at its own probe, so it comes once that second is over.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    runpod.enqueue(job('job-waiting'));

    const exit = await worker.exited;

    const waited = JSON.parse(runpod.results('job-waiting')[0]!.body);
    expect(waited.stopPod).toBe(true);
    expect(JSON.parse(waited.error)).toMatchObject({ code: 'BACKEND_UNAVAILABLE', phase: 'waitingForApi' });
    expect(exit.code).toBe(1);
  });

  it('asks for no fresh worker when WORKER_REFRESH_ON_CRASH is false, and still exits 1', async () => {
    const sim = await simulator({ stepDelayMs: 5 });
    const runpod = await plane();
    runpod.enqueue(job('job-before-2'));
    const worker = startWorker({
      ...runpod.env(),
      A1111_BASE_URL: sim.url,
      A1111_READY_TIMEOUT_MS: '1500',
      WORKER_REFRESH_ON_CRASH: 'false',
    });
    await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-before-2' && r.body.startsWith('{"output"'));
    await sim.close();
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // past the probe's one-second reuse, as above
    runpod.enqueue(job('job-waiting-2'));

    const exit = await worker.exited;

    expect(JSON.parse(runpod.results('job-waiting-2')[0]!.body)).not.toHaveProperty('stopPod');
    expect(exit.code).toBe(1);
  });
});
