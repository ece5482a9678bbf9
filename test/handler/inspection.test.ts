/**
 * The job's actor system is inspected only when something wants its detail: XState then describes
 * every event, snapshot and action, which costs every job CPU for nothing at the default log level.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { simulator } from '../support/simulator.js';
import { testWorker } from '../support/worker.js';

const inspected: boolean[] = [];
vi.mock('xstate', async (importOriginal) => {
  const xstate = await importOriginal<typeof import('xstate')>();
  return {
    ...xstate,
    createActor: ((logic: unknown, options?: { inspect?: unknown }) => {
      inspected.push(options?.inspect !== undefined);
      return (xstate.createActor as (logic: unknown, options?: unknown) => unknown)(logic, options);
    }) as typeof xstate.createActor,
  };
});

async function inspectedFor(env: Record<string, string>): Promise<boolean> {
  const sim = await simulator();
  const { runner, logs } = testWorker(sim.url, env);
  inspected.length = 0;
  const outcome = await runner.run({ id: 'job-inspected', input: { prompt: 'x', steps: 2, seed: 1 } });
  expect(outcome.ok).toBe(true);
  // Transitions are logged either way.
  expect(logs.statePath()).toEqual([
    'waitingForApi',
    'verifyingModels',
    'ready',
    'inferring',
    'delivering',
    'succeeded',
  ]);
  expect(inspected).toHaveLength(1); // the job's own actor
  return inspected[0]!;
}

describe('the job’s actor system', () => {
  it('is not inspected at info level without a journal', async () => {
    expect(await inspectedFor({ LOG_LEVEL: 'info' })).toBe(false);
  });

  it('is inspected for debug lines', async () => {
    expect(await inspectedFor({ LOG_LEVEL: 'debug' })).toBe(true);
  });

  it('is inspected to write a journal', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'journal-'));
    expect(await inspectedFor({ LOG_LEVEL: 'info', JOURNAL_DIR: dir })).toBe(true);
  });
});
