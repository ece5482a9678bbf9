/**
 * The chaos run (test/support/chaos.ts) with a fixed seed: 200 jobs at concurrency 2 while A1111 and
 * RunPod misbehave at random, and nothing is lost. `npm run chaos` runs it longer and with other seeds.
 */
import { describe, expect, it } from 'vitest';
import { runChaos } from './support/chaos.js';

describe('a worker under random faults on both sides', () => {
  it('answers every job once, legitimately, and is still serving at the end', async () => {
    const report = await runChaos({ seed: 20261207, jobs: 200, timeoutMs: 110_000 });

    expect(report.violations).toEqual([]);
    expect(report.succeeded).toBeGreaterThan(100);
    // The run did meet the faults it is about.
    expect(Object.keys(report.faults).length).toBeGreaterThanOrEqual(7);
    expect(report.faults['a1111-killed']).toBeGreaterThanOrEqual(1);
  }, 120_000);
});
