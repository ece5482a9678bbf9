/**
 * Issue 15: the chaos run's last job, "without faults", failed BACKEND_CRASHED now and then (seed
 * 547410368). Its txt2img met a fault the run had armed after the last of its own jobs had passed the
 * point the fault waits for: a cut answer, a crash at the next generation, 5xx answers. The worker
 * answered that fault as it should; the run now disarms what is left (`disarmFaults`) before that job.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { disarmFaults } from '../support/chaos.js';
import { FakeRunPod } from '../support/fake-runpod.js';
import { simulator } from '../support/simulator.js';
import { startWorker } from '../support/worker-process.js';

const planes: FakeRunPod[] = [];
afterEach(async () => {
  await Promise.all(planes.splice(0).map((plane) => plane.close()));
});

const job = (id: string, seed: number) => ({
  id,
  input: { prompt: `a lighthouse ${id}`, steps: 2, seed, width: 64, height: 64 },
});

describe('the faults a chaos run armed and no job met', () => {
  it('fall on the next job unless disarmed; disarmed, the next job meets a healthy WebUI and RunPod', async () => {
    const sim = await simulator({ stepDelayMs: 1 });
    const runpod = new FakeRunPod({ longPollMs: 200 });
    planes.push(runpod);
    await runpod.start();
    const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: sim.url, WORKER_CONCURRENCY: '2' });
    const accepted = (id: string) =>
      runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === id && !r.body.startsWith('{"status":"IN_PROGRESS"'));

    // A cut answer armed once the run's jobs were past txt2img: the next job meets it.
    sim.cutNextResponses(1, '/txt2img');
    runpod.enqueue(job('job-meets-the-cut', 1));
    const cut = await accepted('job-meets-the-cut');
    expect(JSON.parse(JSON.parse(cut.body).error)).toMatchObject({ code: 'BACKEND_CRASHED', phase: 'inferring' });

    // Every kind of fault the chaos run arms, then disarmed, as before its last job.
    sim.failNext(7, 502);
    sim.routesMissingFor(5_000);
    sim.cutNextResponses(1, '/txt2img');
    sim.crashDuringNextGeneration({ atStep: 0, restartAfterMs: 100 });
    runpod.faultNextDone(2, 500);
    runpod.faultNextDone(1, 'drop');
    disarmFaults(sim, runpod);
    const from = Date.now();
    runpod.enqueue(job('final', 2));
    const final = await accepted('final');
    worker.child.kill('SIGTERM');
    expect((await worker.exited).code).toBe(0);

    expect(JSON.parse(final.body).output.images).toHaveLength(1);
    expect(runpod.results('final').map((r) => r.answeredStatus)).toEqual([200]);
    expect(sim.crashes).toBe(0);
    const during = sim.calls.filter((c) => c.at >= from && c.path.startsWith('/sdapi/v1/'));
    expect(during.map((c) => `${c.method} ${c.path} ${c.status}`)).toContain('POST /sdapi/v1/txt2img 200');
    expect(during.filter((c) => c.status !== 200)).toEqual([]);
  });
});
