/**
 * The worker running the WebUI itself (A1111_LAUNCH_COMMAND), with the simulator's command line as the
 * WebUI: its output reaches the worker's log, a WebUI that dies during boot ends start-up at once, and
 * one killed in the middle of a job fails that job BACKEND_CRASHED with "stopPod".
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

  it('ends start-up at once, with its last words, when the WebUI exits before its API answers', async () => {
    const { runpod, env } = await setup('');
    const worker = startWorker({
      ...env,
      A1111_LAUNCH_COMMAND: `"${process.execPath}" -e "console.error('RuntimeError: Torch is not able to use GPU'); process.exit(3)"`,
    });

    const exit = await worker.exited;

    expect(exit.code).toBe(1);
    const line = worker.records().find((r) => String(r['message']).startsWith('A1111 API did not become ready'));
    expect(String(line?.['message'])).toContain('the A1111 process exited with code 3');
    expect(JSON.stringify(line)).toContain('RuntimeError: Torch is not able to use GPU');
    expect(runpod.of('job-take')).toEqual([]);
  });

  it('fails the running job BACKEND_CRASHED with "stopPod" when the WebUI is killed, then exits', async () => {
    const { runpod, env } = await setup('--step-delay-ms 30');
    runpod.enqueue(job('job-killed', 300), job('job-never', 3));
    const worker = startWorker(env);

    const started = await worker.waitForLog((r) => r['message'] === 'A1111 started');
    await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'job-killed' && r.body.startsWith('{"status"'));
    process.kill(-Number(started['pid']), 'SIGKILL'); // the WebUI's whole process group
    const exit = await worker.exited;

    const body = JSON.parse(runpod.results('job-killed')[0]!.body);
    expect(body.stopPod).toBe(true);
    expect(JSON.parse(body.error)).toMatchObject({ code: 'BACKEND_CRASHED', phase: 'inferring' });
    expect(exit.code).toBe(1);
    expect(runpod.results('job-never')).toEqual([]);
  });
});
