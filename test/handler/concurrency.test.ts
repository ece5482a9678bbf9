/**
 * Several jobs in one worker at once, sharing one A1111: the generation line must keep interrupts
 * and shared lookups with the job they belong to.
 */
import { describe, expect, it } from 'vitest';
import type { InspectionEvent } from 'xstate';
import { simulator } from '../support/simulator.js';
import { generated, testWorker } from '../support/worker.js';

const input = (steps: number, seed: number) => ({ prompt: 'x', steps, seed, width: 64, height: 64, batch_size: 2 });

/** An inspect callback that runs `then` once, when the job's machine enters `state`. */
function onEnter(state: string, then: () => void): (event: InspectionEvent) => void {
  let fired = false;
  return (event) => {
    if (fired || event.type !== '@xstate.snapshot') return;
    const value = (event.snapshot as { value?: unknown }).value;
    const top = typeof value === 'string' ? value : Object.keys(value ?? {})[0];
    if (top === state) {
      fired = true;
      then();
    }
  };
}

describe('jobs sharing A1111', () => {
  it('cancelling a job queued behind another never interrupts the job queued behind it', async () => {
    // A1111 answers a request after releasing its queue lock: with a slow answer, the next generation is
    // already running when the cancelled one's answer arrives. A blind interrupt would stop it.
    const sim = await simulator({ stepDelayMs: 15, responseDelayMs: 150 });
    const { runner, queue } = testWorker(sim.url);
    // [steps of the cancelled job, steps of the job behind it]; the last round makes them look alike.
    const rounds = [
      [2, 10],
      [3, 10],
      [8, 10],
      [10, 10],
    ] as const;
    for (const [round, [cancelledSteps, nextSteps]] of rounds.entries()) {
      const cancel = new AbortController();
      const running = runner.run({ id: `a-${round}`, input: input(20, 1) });
      await new Promise<void>((resolve) => {
        const wait = () => (queue.jobIds.includes(`a-${round}`) ? resolve() : setImmediate(wait));
        wait();
      });
      const cancelled = runner.run(
        { id: `b-${round}`, input: input(cancelledSteps, 2) },
        { signal: cancel.signal, inspect: onEnter('inferring', () => cancel.abort('changed my mind')) },
      );
      const after = runner.run({ id: `c-${round}`, input: input(nextSteps, 3) });
      const [a, b, c] = await Promise.all([running, cancelled, after]);

      expect(a.ok).toBe(true);
      expect(b.ok ? 'ok' : b.failure.code).toBe('CANCELLED');
      expect(generated(c).images).toHaveLength(2);
      await sim.engine.generationsEnded(3 * (round + 1));
      const [, , next] = sim.engine.generations.slice(-3);
      expect(next, `round ${round}: the job behind the cancelled one`).toMatchObject({ interrupted: false });
    }
    // The wanted jobs (a and c of each round) ran to the end.
    const wanted = sim.engine.generations.filter((_, index) => index % 3 !== 1);
    expect(wanted.every((g) => !g.interrupted)).toBe(true);
  });

  it('a job cancelled while A1111 still loads the model is interrupted once its generation starts', async () => {
    const sim = await simulator({ stepDelayMs: 20, modelLoadMs: 600 });
    const { runner } = testWorker(sim.url);
    const cancel = new AbortController();

    const outcome = await runner.run(
      { id: 'job-early-cancel', input: input(200, 1) },
      { signal: cancel.signal, inspect: onEnter('inferring', () => cancel.abort('too slow')) },
    );

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure.code).toBe('CANCELLED');
    await sim.engine.generationsEnded(1);
    expect(sim.engine.generations[0]).toMatchObject({ interrupted: true });
    expect(sim.callsTo('POST', '/interrupt')).toHaveLength(1);
  });

  it('one job cancelled while the sampler lists load does not cancel another job waiting for them', async () => {
    const sim = await simulator();
    sim.failNext(4, 503, '/samplers'); // the lists take a few retries to load
    const { runner } = testWorker(sim.url);
    const cancel = new AbortController();

    const [first, second] = await Promise.all([
      runner.run(
        { id: 'job-cancelled', input: { ...input(2, 1), sampler_name: 'Euler a' } },
        { signal: cancel.signal, inspect: onEnter('verifyingModels', () => cancel.abort('gone')) },
      ),
      runner.run({ id: 'job-kept', input: { ...input(2, 2), sampler_name: 'Euler a' } }),
    ]);

    expect(first.ok ? 'ok' : first.failure.code).toBe('CANCELLED');
    expect(second.ok).toBe(true);
  });
});
