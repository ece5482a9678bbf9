/**
 * The production worker as RunPod runs it: the built entry point in its own process, RunPod's
 * environment variables, a fake control plane and the A1111 simulator, all on 127.0.0.1.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { A1111Simulator } from '../../src/simulator/server.js';
import { FakeRunPod } from '../support/fake-runpod.js';
import { decodePng } from '../support/png.js';
import { simulator } from '../support/simulator.js';
import { startWorker } from '../support/worker-process.js';

const planes: FakeRunPod[] = [];
afterEach(async () => {
  await Promise.all(planes.splice(0).map((plane) => plane.close()));
});

async function plane(options: { longPollMs?: number } = {}): Promise<FakeRunPod> {
  const fake = new FakeRunPod(options);
  planes.push(fake);
  await fake.start();
  return fake;
}

const job = (id: string, input: Record<string, unknown> = {}) => ({
  id,
  input: { prompt: 'a lighthouse', steps: 3, seed: 21, width: 128, height: 128, ...input },
});

describe('job-take → job-done', () => {
  it('takes a job and posts its result with the URL, headers and body RunPod’s protocol prescribes', async () => {
    const sim = await simulator();
    const runpod = await plane();
    runpod.enqueue(job('job-1'));
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url });

    const done = await runpod.waitFor((r) => r.kind === 'job-done');

    const take = runpod.of('job-take')[0]!;
    expect(take.url).toBe('/v2/test-ep/job-take/pod-1?gpu=NVIDIA+TEST&job_in_progress=0');
    expect(take.headers['authorization']).toBe('test-api-key');
    expect(done.method).toBe('POST');
    expect(done.url).toBe('/v2/test-ep/job-done/pod-1/job-1?gpu=NVIDIA+TEST&isStream=false');
    expect(done.headers).toMatchObject({
      authorization: 'test-api-key',
      'content-type': 'application/x-www-form-urlencoded',
      charset: 'utf-8',
      'x-request-id': 'job-1',
    });
    expect(String(done.headers['user-agent'])).toMatch(/^RunPod-A1111-Worker\/\d+\.\d+\.\d+ \(.+\) Language\/Node /);
    const body = JSON.parse(done.body) as { output: { images: string[]; info: string; worker: unknown } };
    expect(Object.keys(body)).toEqual(['output']);
    expect(decodePng(body.output.images[0]!).text['parameters']).toContain('Seed: 21');
    expect(JSON.parse(body.output.info).seed).toBe(21);
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toEqual({ code: 0, signal: null });
  });

  it('waits for A1111 before its first job-take and logs how long that took', async () => {
    const runpod = await plane();
    const sim = new A1111Simulator();
    const url = await sim.reservePort(); // nothing listens there yet
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: url, A1111_READY_LOG_EVERY: '1' });

    await worker.waitForLog((r) => r['message'] === 'A1111 API is not ready yet');
    expect(runpod.of('job-take')).toEqual([]);
    await sim.start();
    const ready = await worker.waitForLog((r) => r['message'] === 'A1111 API is ready');
    const firstTake = await runpod.waitFor((r) => r.kind === 'job-take');

    expect(ready['probes']).toBeGreaterThan(1);
    expect(ready['waitedMs']).toBeGreaterThan(0);
    expect(firstTake.at).toBeGreaterThanOrEqual(sim.calls.find((c) => c.status === 200)!.at);
    worker.child.kill('SIGTERM');
    await worker.exited;
    await sim.close();
  });
});

describe('job-take answers', () => {
  it('treats 204 and 400 as no job, waits 5 s after 429, backs off after 500, then takes the job', async () => {
    const sim = await simulator();
    const runpod = await plane();
    runpod.scriptTake({ status: 204 }, { status: 400 }, { status: 500, body: 'oops' }, { status: 429 });
    runpod.enqueue(job('job-after-errors'));
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url });

    await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-after-errors', 20_000);

    const takes = runpod.of('job-take');
    expect(takes.length).toBeGreaterThanOrEqual(5);
    const gap = (i: number) => takes[i + 1]!.at - takes[i]!.at;
    expect(gap(2)).toBeGreaterThanOrEqual(290); // after the 500: JOB_TAKE_ERROR_DELAY_MS
    expect(gap(3)).toBeGreaterThanOrEqual(4_900); // after the 429
    expect(worker.records().some((r) => r['message'] === 'Failed to get job.' && r['level'] === 'error')).toBe(true);
    worker.child.kill('SIGTERM');
    await worker.exited;
  });

  it('answers a job without input with an INVALID_INPUT error, logs one without an id, and goes on', async () => {
    const sim = await simulator();
    const runpod = await plane();
    runpod.enqueue({ id: 'job-no-input' }, { input: { prompt: 'no id' } }, job('job-fine'));
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url });

    const refused = await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-no-input');
    await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-fine');

    expect(JSON.parse(JSON.parse(refused.body).error)).toMatchObject({ code: 'INVALID_INPUT', phase: 'booting' });
    const noId = worker
      .records()
      .find((r) => String(r['message']).startsWith('Job has missing field(s): the job has no id'));
    expect(noId?.['level']).toBe('error');
    expect(sim.callsTo('POST', '/txt2img')).toHaveLength(1);
    worker.child.kill('SIGTERM');
    await worker.exited;
  });
});

describe('job-done delivery', () => {
  it('retries a result that got 500 and 503, and posts it once', async () => {
    const sim = await simulator();
    const runpod = await plane();
    runpod.scriptDone('job-retry', 500, 503);
    runpod.enqueue(job('job-retry'), job('job-next'));
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url });

    await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-next');

    const posts = runpod.results('job-retry');
    expect(posts).toHaveLength(3);
    expect(new Set(posts.map((p) => p.body)).size).toBe(1);
    worker.child.kill('SIGTERM');
    await worker.exited;
    expect(runpod.results('job-retry')).toHaveLength(3);
  });

  it('retries a result whose connection was dropped', async () => {
    const sim = await simulator();
    const runpod = await plane();
    runpod.scriptDone('job-drop', 'drop');
    runpod.enqueue(job('job-drop'));
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url });

    await runpod.waitFor(
      (r) => r.kind === 'job-done' && r.jobId === 'job-drop' && runpod.results('job-drop').length === 2,
    );

    const [first, second] = runpod.results('job-drop');
    expect(second!.body).toBe(first!.body);
    expect(JSON.parse(second!.body).output.images).toHaveLength(1);
    worker.child.kill('SIGTERM');
    await worker.exited;
  });

  it('answers RESULT_REJECTED when RunPod refuses the output itself (a 4xx), so the job ends FAILED', async () => {
    const sim = await simulator();
    const runpod = await plane();
    runpod.scriptDone('job-refused', 400);
    runpod.enqueue(job('job-refused'));
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url });

    await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-refused' && r.body.startsWith('{"error"'));

    const [refused, replacement] = runpod.results('job-refused');
    expect(JSON.parse(refused!.body)).toHaveProperty('output');
    expect(JSON.parse(JSON.parse(replacement!.body).error)).toMatchObject({
      code: 'RESULT_REJECTED',
      details: { status: 400, bytes: refused!.body.length },
    });
    worker.child.kill('SIGTERM');
    await worker.exited;
  });

  it('runs a job handed out twice only once', async () => {
    const sim = await simulator({ stepDelayMs: 10 });
    const runpod = await plane();
    runpod.enqueue(job('job-twice', { steps: 20 }), job('job-twice', { steps: 20 }));
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url, WORKER_CONCURRENCY: '2' });

    await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-twice' && r.body.startsWith('{"output"'));
    worker.child.kill('SIGTERM');
    await worker.exited;

    expect(runpod.results('job-twice')).toHaveLength(1);
    expect(sim.callsTo('POST', '/txt2img')).toHaveLength(1);
  });

  it('logs a result it could not deliver at error level, with the job id and the body size', async () => {
    const sim = await simulator();
    const runpod = await plane();
    runpod.scriptDone('job-lost', 500, 500, 500);
    runpod.enqueue(job('job-lost'));
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url, JOB_DONE_RETRIES: '2' });

    const line = await worker.waitForLog((r) => String(r['message']).startsWith('failed to post the job result'));

    expect(line).toMatchObject({ level: 'error', jobId: 'job-lost', attempts: 3, status: 500 });
    expect(line['bytes']).toBe(runpod.results('job-lost')[0]!.body.length);
    worker.child.kill('SIGTERM');
    await worker.exited;
  });
});

describe('progress', () => {
  it('posts IN_PROGRESS updates to job-done while A1111 generates, all before the final result, and nothing to the stream URL', async () => {
    const sim = await simulator({ stepDelayMs: 20 });
    const runpod = await plane();
    runpod.enqueue(job('job-progress', { steps: 40 }));
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url });

    await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-progress' && !r.body.includes('IN_PROGRESS'));
    worker.child.kill('SIGTERM');
    await worker.exited; // nothing the worker could still send is missed below

    const posts = runpod.of('job-done', 'job-progress');
    const progress = posts.filter((p) => p.body.startsWith('{"status":"IN_PROGRESS"'));
    expect(progress.length).toBeGreaterThan(0);
    expect(posts.at(-1)!.body).toMatch(/^\{"output":/);
    expect(JSON.parse(progress[0]!.body).output).toMatchObject({ steps: 40 });
    // runpod-python streams a generator handler's partial outputs only: a progress reading is posted once.
    expect(runpod.of('job-stream')).toEqual([]);
  });
});
