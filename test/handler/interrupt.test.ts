import { describe, expect, it } from 'vitest';
import { simulator } from '../support/simulator.js';
import { testWorker } from '../support/worker.js';

// A generation of 200 steps × 50 ms (10 s) that only an interrupt can end early.
const longJob = { prompt: 'a long one', steps: 200, seed: 5, n_iter: 3 };

describe('a job that runs past its deadline', () => {
  it('interrupts A1111, waits for it to be idle, and fails BACKEND_TIMEOUT', async () => {
    const sim = await simulator({ stepDelayMs: 50 });
    const { runner } = testWorker(sim.url, { JOB_TIMEOUT_MS: '1500' });

    const outcome = await runner.run({ id: 'job-deadline', input: longJob });

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure).toMatchObject({
      code: 'BACKEND_TIMEOUT',
      phase: 'inferring',
      retryable: true,
      details: { jobTimeoutMs: 1500 },
    });
    expect(sim.callsTo('POST', '/interrupt')).toHaveLength(1);
    expect(sim.engine.generations).toEqual([expect.objectContaining({ interrupted: true })]);
    expect(sim.engine.busy).toBe(false);
  });

  it('leaves the GPU free: the next job runs at once', async () => {
    const sim = await simulator({ stepDelayMs: 50 });
    const { runner } = testWorker(sim.url, { JOB_TIMEOUT_MS: '1500' });

    await runner.run({ id: 'job-deadline-1', input: longJob });
    const next = await runner.run({ id: 'job-deadline-2', input: { prompt: 'short', steps: 2 } });

    expect(next.ok).toBe(true);
    expect(sim.engine.generations.map((g) => g.interrupted)).toEqual([true, false]);
  });

  it('fails without interrupting anything when the deadline passes before generation starts', async () => {
    const sim = await simulator();
    sim.setRoutesMounted(false); // probes never succeed
    const { runner } = testWorker(sim.url, { JOB_TIMEOUT_MS: '300' });

    const outcome = await runner.run({ id: 'job-deadline-early', input: longJob });

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure).toMatchObject({ code: 'BACKEND_TIMEOUT', phase: 'waitingForApi' });
    expect(sim.callsTo('POST', '/interrupt')).toEqual([]);
  });
});

describe('a cancelled job', () => {
  it('interrupts the generation it started and fails CANCELLED', async () => {
    const sim = await simulator({ stepDelayMs: 50 });
    const { runner } = testWorker(sim.url);
    const controller = new AbortController();
    const progress: number[] = [];

    const outcome = await runner.run(
      { id: 'job-cancel', input: longJob },
      {
        signal: controller.signal,
        onProgress: (update) => {
          progress.push(update.step);
          controller.abort('the client cancelled the request');
        },
      },
    );

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure).toMatchObject({ code: 'CANCELLED', phase: 'inferring', retryable: false });
    expect(outcome.failure.message).toBe('the job was cancelled: the client cancelled the request');
    expect(progress.length).toBeGreaterThan(0);
    expect(sim.callsTo('POST', '/interrupt')).toHaveLength(1);
    expect(sim.engine.generations).toEqual([expect.objectContaining({ interrupted: true })]);
  });

  it('sends nothing to A1111 when cancelled before it started', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);
    const controller = new AbortController();
    controller.abort();

    const outcome = await runner.run({ id: 'job-cancel-early', input: longJob }, { signal: controller.signal });

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure).toMatchObject({ code: 'CANCELLED', phase: 'booting' });
    expect(sim.calls).toEqual([]);
  });
});

describe('progress while A1111 generates', () => {
  it('reports steps that move forward', async () => {
    const sim = await simulator({ stepDelayMs: 20 });
    const { runner } = testWorker(sim.url);
    const updates: { step: number; steps: number; progress: number }[] = [];

    const outcome = await runner.run(
      { id: 'job-progress', input: { prompt: 'x', steps: 30 } },
      { onProgress: (update) => updates.push(update) },
    );

    expect(outcome.ok).toBe(true);
    expect(updates.length).toBeGreaterThan(1);
    expect(updates.every((u) => u.steps === 30)).toBe(true);
    expect(updates.at(-1)!.progress).toBeGreaterThan(updates[0]!.progress);
  });
});
