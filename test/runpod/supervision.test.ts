/**
 * The worker running the WebUI itself (A1111_LAUNCH_COMMAND), with the simulator's command line as the
 * WebUI: its output reaches the worker's log; one that dies is restarted in place within the crash
 * policy's bound (the job it died under fails BACKEND_CRASHED, the next is served); past the bound the
 * worker answers with "stopPod" and exits 1.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { A1111Simulator } from '../../src/simulator/server.js';
import { FakeRunPod } from '../support/fake-runpod.js';
import { startWorker } from '../support/worker-process.js';

const SIMULATOR = fileURLToPath(new URL('../../dist/src/simulator/main.js', import.meta.url));
const planes: FakeRunPod[] = [];
afterEach(async () => {
  await Promise.all(planes.splice(0).map((plane) => plane.close()));
});

async function setup(simulatorFlags: string) {
  const runpod = new FakeRunPod();
  planes.push(runpod);
  await runpod.start();
  const url = await new A1111Simulator().reservePort();
  const port = new URL(url).port;
  const env = {
    ...runpod.env(),
    A1111_BASE_URL: url,
    A1111_LAUNCH_COMMAND: `"${process.execPath}" "${SIMULATOR}" --port ${port} --api --nowebui --no-hashing ${simulatorFlags}`,
  };
  return { runpod, env };
}

const job = (id: string, steps: number) => ({ id, input: { prompt: 'x', steps, seed: 1, width: 64, height: 64 } });

describe('a WebUI the worker runs itself', () => {
  it('serves jobs, with its output in the worker’s log in RunPod’s shape, and is stopped with the worker', async () => {
    const { runpod, env } = await setup('--boot-delay-ms 300');
    runpod.enqueue(job('job-supervised', 3));
    const worker = startWorker({ ...env, LOG_FORMAT: 'runpod' });

    await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-supervised');
    worker.child.kill('SIGTERM');
    const exit = await worker.exited;

    expect(exit.code).toBe(0);
    const forwarded = worker.records().find((r) => String(r['message']).startsWith('[A1111] A1111 SIMULATOR url='));
    expect(forwarded).toMatchObject({ requestId: null, level: 'INFO' });
    expect(worker.records().some((r) => String(r['message']).startsWith('A1111 stopped'))).toBe(true);
    expect(JSON.parse(runpod.results('job-supervised')[0]!.body)).toHaveProperty('output');
  });

  it('ends start-up at once, with its last words, when a WebUI that may not be restarted exits before its API answers', async () => {
    const { runpod, env } = await setup('');
    const worker = startWorker({
      ...env,
      A1111_RESTART_LIMIT: '0',
      A1111_LAUNCH_COMMAND: `"${process.execPath}" -e "console.error('RuntimeError: Torch is not able to use GPU'); process.exit(3)"`,
    });

    const exit = await worker.exited;

    expect(exit.code).toBe(1);
    const line = worker.records().find((r) => String(r['message']).startsWith('A1111 API did not become ready'));
    expect(String(line?.['message'])).toContain('the A1111 process exited with code 3');
    expect(JSON.stringify(line)).toContain('RuntimeError: Torch is not able to use GPU');
    expect(runpod.of('job-take')).toEqual([]);
  });

  it('restarts a WebUI that dies during boot as often as the policy allows, then gives up', async () => {
    const { runpod, env } = await setup('');
    const worker = startWorker({
      ...env,
      A1111_RESTART_LIMIT: '2',
      A1111_RESTART_DELAY_MS: '50',
      A1111_LAUNCH_COMMAND: `"${process.execPath}" -e "process.exit(3)"`,
    });

    const exit = await worker.exited;

    expect(exit.code).toBe(1);
    const messages = worker.records().map((r) => String(r['message']));
    expect(messages.filter((m) => m === 'A1111 started')).toHaveLength(3);
    expect(messages.filter((m) => m.includes('restarting it in place'))).toEqual([
      'the A1111 process exited with code 3; restarting it in place (restart 1 of at most 2 in 600 s)',
      'the A1111 process exited with code 3; restarting it in place (restart 2 of at most 2 in 600 s)',
    ]);
    expect(messages.some((m) => m.includes('after 2 restart(s) in 600 s; the crash policy allows 2'))).toBe(true);
    expect(runpod.of('job-take')).toEqual([]);
  });

  it('restarts a WebUI killed in the middle of a job: that job fails BACKEND_CRASHED, the next is served', async () => {
    const { runpod, env } = await setup('--step-delay-ms 30');
    runpod.enqueue(job('job-killed', 300));
    const worker = startWorker({ ...env, A1111_RESTART_DELAY_MS: '50' });

    const first = await worker.waitForLog((r) => r['message'] === 'A1111 started');
    await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-killed' && r.body.startsWith('{"status"'));
    process.kill(-Number(first['pid']), 'SIGKILL'); // the WebUI's whole process group
    await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-killed' && r.body.startsWith('{"error"'));
    runpod.enqueue(job('job-next', 3));
    const next = await runpod.waitFor(
      (r) => r.kind === 'job-done' && r.jobId === 'job-next' && !r.body.startsWith('{"status"'),
    );
    worker.child.kill('SIGTERM');
    const exit = await worker.exited;

    const killed = JSON.parse(runpod.results('job-killed')[0]!.body);
    expect(killed).not.toHaveProperty('stopPod');
    expect(JSON.parse(killed.error)).toMatchObject({ code: 'BACKEND_CRASHED', phase: 'inferring' });
    expect(JSON.parse(next.body)).toHaveProperty('output');
    const starts = worker.records().filter((r) => r['message'] === 'A1111 started');
    expect(starts).toHaveLength(2);
    expect(starts[1]!['pid']).not.toBe(first['pid']);
    expect(exit).toEqual({ code: 0, signal: null });
  });

  it('past the bound, answers the job the WebUI died under with "stopPod" and exits 1', async () => {
    const { runpod, env } = await setup('--step-delay-ms 30');
    runpod.enqueue(job('job-killed', 300), job('job-never', 3));
    const worker = startWorker({ ...env, A1111_RESTART_LIMIT: '0' });

    const started = await worker.waitForLog((r) => r['message'] === 'A1111 started');
    await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-killed' && r.body.startsWith('{"status"'));
    process.kill(-Number(started['pid']), 'SIGKILL');
    const exit = await worker.exited;

    const body = JSON.parse(runpod.results('job-killed')[0]!.body);
    expect(body.stopPod).toBe(true);
    expect(JSON.parse(body.error)).toMatchObject({ code: 'BACKEND_CRASHED', phase: 'inferring' });
    expect(exit.code).toBe(1);
    expect(runpod.results('job-never')).toEqual([]);
  });
});
