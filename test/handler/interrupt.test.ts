import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
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

  it('interrupts a generation held up by a checkpoint load once it starts, without making the job wait for it', async () => {
    const modelsDir = await mkdtemp(path.join(tmpdir(), 'interrupt-models-'));
    await writeFile(path.join(modelsDir, 'beta.safetensors'), 'x');
    const sim = await simulator({ stepDelayMs: 50, modelLoadMs: 3_000, modelsDir });
    const { runner } = testWorker(sim.url, { JOB_TIMEOUT_MS: '300', A1111_INTERRUPT_SETTLE_TIMEOUT_MS: '500' });
    const input = { ...longJob, override_settings: { sd_model_checkpoint: 'beta.safetensors' } };

    const outcome = await runner.run({ id: 'job-deadline-loading', input });

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure).toMatchObject({
      code: 'BACKEND_TIMEOUT',
      phase: 'inferring',
      details: { jobTimeoutMs: 300, interrupt: 'pending', a1111Idle: false },
    });
    // The job ended while A1111 still loaded the checkpoint…
    expect(sim.engine.generations).toEqual([]);
    expect(sim.callsTo('POST', '/interrupt')).toEqual([]);
    // …and the generation it had asked for was stopped as soon as it began.
    await sim.engine.generationsEnded(1);
    expect(sim.callsTo('POST', '/interrupt')).toHaveLength(1);
    expect(sim.engine.generations).toEqual([expect.objectContaining({ interrupted: true })]);
  });
});

describe('a request A1111 does not answer in time', () => {
  it('interrupts the generation A1111 is still running, and fails BACKEND_TIMEOUT once A1111 is idle', async () => {
    const sim = await simulator({ stepDelayMs: 50 });
    const { runner } = testWorker(sim.url, { A1111_REQUEST_TIMEOUT_MS: '1000' });

    const outcome = await runner.run({ id: 'job-request-timeout', input: longJob });

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure).toMatchObject({
      code: 'BACKEND_TIMEOUT',
      phase: 'inferring',
      details: { interrupt: 'sent', a1111Idle: true },
    });
    expect(sim.callsTo('POST', '/txt2img')).toHaveLength(1); // a timeout is not retried
    expect(sim.callsTo('POST', '/interrupt')).toHaveLength(1);
    expect(sim.engine.generations).toEqual([expect.objectContaining({ interrupted: true })]);
    expect(sim.engine.busy).toBe(false);
  });

  it('lets the next job be interrupted when the timed-out request was never seen running', async () => {
    // A's generation takes 20 ms, but its answer comes 4 s later (A1111 encoding a large result), after
    // the worker's 3 s request timeout: the worker never sees A running. It stops counting A as A1111's
    // current request one settle timeout (300 ms) after A's job ended, not a whole request timeout later.
    const sim = await simulator({ stepDelayMs: 10, responseDelayMs: 4_000 });
    const { runner } = testWorker(sim.url, {
      A1111_REQUEST_TIMEOUT_MS: '3000',
      A1111_INTERRUPT_SETTLE_TIMEOUT_MS: '300',
    });
    const a = await runner.run({ id: 'job-a-timed-out', input: { prompt: 'a', steps: 2 } });
    if (a.ok) throw new Error('expected a failure');
    expect(a.failure).toMatchObject({ code: 'BACKEND_TIMEOUT', details: { a1111Idle: false } });

    sim.setResponseDelay(0);
    sim.setStepDelay(30);
    const controller = new AbortController();
    setTimeout(() => controller.abort('cancelled by its client'), 1_000);
    const b = await runner.run(
      { id: 'job-b-cancelled', input: { prompt: 'b', steps: 100 } },
      { signal: controller.signal },
    );

    // B's own generation was interrupted when B was cancelled, not left queued behind a ghost of A.
    if (b.ok) throw new Error('expected a failure');
    expect(b.failure).toMatchObject({ code: 'CANCELLED', details: { interrupt: 'sent' } });
    expect(sim.engine.generations.map((g) => g.interrupted)).toEqual([false, true]);
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
