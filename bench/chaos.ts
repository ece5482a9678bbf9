/**
 * `npm run chaos`: the chaos run of test/chaos.test.ts, longer and with any seeds.
 *
 *   npm run chaos                          # 20 random seeds, 200 jobs each
 *   npm run chaos -- --seeds 5 --jobs 1000 # 5 random seeds, 1000 jobs each
 *   npm run chaos -- --seed 42             # one given seed (repeats a run exactly)
 *   npm run chaos -- --logs /tmp/chaos     # keeps each run's worker log as /tmp/chaos/seed-<seed>.log
 *   npm run chaos -- --log-level debug     # the worker logs every post (this changes the timing)
 *
 * Exits 1 when any run has a violation or could not finish; prints each run's figures. A run that
 * could not finish (a job never answered, the worker exited) is reported with its seed and the next
 * seed runs.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ChaosRunError, runChaos } from '../test/support/chaos.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    seeds: { type: 'string' },
    jobs: { type: 'string' },
    logs: { type: 'string' },
    'log-level': { type: 'string' },
  },
});
if (values.logs) mkdirSync(values.logs, { recursive: true });
const jobs = Number(values.jobs ?? 200);
const seeds = values.seed
  ? [Number(values.seed)]
  : Array.from({ length: Number(values.seeds ?? 20) }, () => Math.floor(Math.random() * 2 ** 31));

let failed = 0;
for (const seed of seeds) {
  let report: Awaited<ReturnType<typeof runChaos>>;
  try {
    report = await runChaos({
      seed,
      jobs,
      timeoutMs: Math.max(120_000, jobs * 600),
      ...(values.logs ? { workerLogPath: path.join(values.logs, `seed-${seed}.log`) } : {}),
      ...(values['log-level'] ? { logLevel: values['log-level'] } : {}),
    });
  } catch (error) {
    // A ChaosRunError names its seed; any other error gets it here, so the run can be repeated.
    const message = error instanceof Error ? error.message : String(error);
    process.stdout.write(`${error instanceof ChaosRunError ? message : `seed ${seed}: ${message}`}\n`);
    process.stdout.write(`  VIOLATION the run did not finish\n`);
    failed++;
    continue;
  }
  const failures = Object.entries(report.failedByCode)
    .map(([code, n]) => `${code} ${n}`)
    .join(', ');
  process.stdout.write(
    `seed ${seed}: ${report.jobs} jobs in ${(report.durationMs / 1000).toFixed(1)} s, ${report.succeeded} succeeded` +
      `${failures ? `, failed: ${failures}` : ''}; faults ${JSON.stringify(report.faults)}; handles ${report.baseline?.handles} → ${report.end?.handles}, heap ${Math.round((report.baseline?.heapUsedBytes ?? 0) / 1e6)} → ${Math.round((report.end?.heapUsedBytes ?? 0) / 1e6)} MB\n`,
  );
  for (const violation of report.violations) process.stdout.write(`  VIOLATION ${violation}\n`);
  if (report.violations.length > 0) failed++;
}
process.stdout.write(`${seeds.length - failed} of ${seeds.length} runs without a violation\n`);
process.exitCode = failed > 0 ? 1 : 0;
