/**
 * Issue 15: a finished job's result was posted `JOB_DONE_RETRIES + 1` times at most; when RunPod failed
 * all of them (5xx or dropped connections, under a second with the chaos run's settings), the worker
 * logged the failure and moved on, and RunPod never heard of the job again: it waited for a result the
 * worker no longer held. The result is now posted again, round after round, until RunPod takes it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FakeRunPod } from '../support/fake-runpod.js';
import { simulator } from '../support/simulator.js';
import { startWorker } from '../support/worker-process.js';

const planes: FakeRunPod[] = [];
afterEach(async () => {
  await Promise.all(planes.splice(0).map((plane) => plane.close()));
});

describe('a result RunPod fails to take for longer than the retries last', () => {
  it('is posted again until RunPod takes it, the same body each time, each failed round logged', async () => {
    const sim = await simulator();
    const runpod = new FakeRunPod();
    planes.push(runpod);
    await runpod.start();
    // Seven failures in a row: more than two rounds of three attempts (JOB_DONE_RETRIES=2).
    runpod.scriptDone('job-outlasted', 500, 'drop', 500, 500, 'drop', 500, 500);
    runpod.enqueue({
      id: 'job-outlasted',
      input: { prompt: 'a lighthouse', steps: 2, seed: 7, width: 64, height: 64 },
    });
    const worker = startWorker({
      ...runpod.env(),
      A1111_BASE_URL: sim.url,
      JOB_DONE_RETRIES: '2',
      JOB_DONE_RETRY_DELAY_MS: '10',
      // The scripted answers are for the result alone: no progress post may take one.
      PROGRESS_POST_INTERVAL_MS: '0',
    });

    await worker.waitForLog((r) => r['message'] === 'result posted' && r['jobId'] === 'job-outlasted', 10_000);
    worker.child.kill('SIGTERM');
    expect((await worker.exited).code).toBe(0);

    const posts = runpod.results('job-outlasted');
    expect(posts).toHaveLength(8);
    expect(new Set(posts.map((p) => p.body)).size).toBe(1);
    expect(JSON.parse(posts[0]!.body).output.images).toHaveLength(1);
    expect(posts.map((p) => p.answeredStatus)).toEqual([500, undefined, 500, 500, undefined, 500, 500, 200]);
    const rounds = worker.records().filter((r) => String(r['message']).startsWith('failed to post the job result'));
    expect(rounds.map((r) => [r['level'], r['jobId'], r['attempts']])).toEqual([
      ['error', 'job-outlasted', 3],
      ['error', 'job-outlasted', 6],
    ]);
  });
});
