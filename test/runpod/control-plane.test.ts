/**
 * The control-plane client on its own, against the fake control plane on loopback.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { ControlPlane } from '../../src/runpod/control-plane.js';
import { runPodUrls } from '../../src/runpod/urls.js';
import { FakeRunPod } from '../support/fake-runpod.js';

const planes: FakeRunPod[] = [];
afterEach(async () => {
  await Promise.all(planes.splice(0).map((plane) => plane.close()));
});

async function clientFor(longPollMs: number, longPollTimeoutMs: number) {
  const runpod = new FakeRunPod({ longPollMs });
  planes.push(runpod);
  await runpod.start();
  const config = loadConfig({ ...runpod.env(), A1111_BASE_URL: 'http://127.0.0.1:3000' });
  const plane = new ControlPlane({ urls: runPodUrls(config.runpod, 'pod-1'), apiKey: 'k', longPollTimeoutMs });
  return { runpod, plane };
}

describe('job-take', () => {
  it('takes a long-poll that outlasts its timeout as an empty queue, not as an error', async () => {
    const { plane } = await clientFor(5_000, 200);

    await expect(plane.takeJobs(1, false)).resolves.toEqual({ jobs: [], malformed: [], timedOut: true });
  });

  it('hands out the job the long-poll brings', async () => {
    const { runpod, plane } = await clientFor(5_000, 5_000);
    runpod.enqueue({ id: 'job-1', input: { prompt: 'x' } });

    await expect(plane.takeJobs(1, false)).resolves.toEqual({
      jobs: [{ id: 'job-1', input: { prompt: 'x' } }],
      malformed: [],
    });
  });

  it('still fails on a refused connection', async () => {
    const { runpod, plane } = await clientFor(5_000, 5_000);
    await runpod.close();

    await expect(plane.takeJobs(1, false)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

describe('job-stop', () => {
  it('takes a long-poll that outlasts its timeout as no job to stop', async () => {
    const { plane } = await clientFor(5_000, 200);

    await expect(plane.pollStop()).resolves.toEqual([]);
  });

  it('gives the ids RunPod asks to stop', async () => {
    const { runpod, plane } = await clientFor(5_000, 5_000);
    runpod.stop('job-a', 'job-b');

    await expect(plane.pollStop()).resolves.toEqual(['job-a', 'job-b']);
  });
});

describe('a job-done post written as it comes (openJobDone)', () => {
  it('answered before its end: writes nothing more, and a 2xx then is no delivery but a refusal is', async () => {
    for (const [early, expected] of [
      [413, { ok: false, status: 413 }],
      [200, { ok: false, error: expect.stringContaining("answered 200 before the body's end") }],
    ] as const) {
      const { runpod, plane } = await clientFor(5_000, 5_000);
      runpod.scriptDone('job-1', { early });
      const post = plane.openJobDone('job-1');
      post.write(Buffer.from('{"output":{"images":["'));
      await expect.poll(() => runpod.unfinished.length, { timeout: 10_000 }).toBe(1);
      // Written after RunPod has answered: nothing reaches it.
      for (let i = 0; i < 16; i++) post.write(Buffer.alloc(65_536, 'A'));

      await expect(post.end([Buffer.from('"]}}')])).resolves.toMatchObject(expected);
      expect(runpod.unfinished[0]).toMatchObject({ answeredStatus: early, bytesAfterAnswer: 0 });
      expect(runpod.of('job-done')).toEqual([]);
    }
  });
});
