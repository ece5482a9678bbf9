/**
 * `npm run chaos`: the chaos run of test/chaos.test.ts, longer and with any seeds.
 *
 *   npm run chaos                          # 20 random seeds, 200 jobs each
 *   npm run chaos -- --seeds 5 --jobs 1000 # 5 random seeds, 1000 jobs each
 *   npm run chaos -- --seed 42             # one given seed (repeats a run exactly)
 *
 * Exits 1 when any run has a violation; prints each run's figures.
 */
import { parseArgs } from 'node:util';
import { runChaos } from '../test/support/chaos.js';

const { values } = parseArgs({
  options: { seed: { type: 'string' }, seeds: { type: 'string' }, jobs: { type: 'string' } },
});
const jobs = Number(values.jobs ?? 200);
const seeds = values.seed
  ? [Number(values.seed)]
  : Array.from({ length: Number(values.seeds ?? 20) }, () => Math.floor(Math.random() * 2 ** 31));

let failed = 0;
for (const seed of seeds) {
  const report = await runChaos({ seed, jobs, timeoutMs: Math.max(120_000, jobs * 600) });
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
