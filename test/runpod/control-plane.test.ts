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
