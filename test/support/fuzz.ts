/**
 * How many cases a property runs: a few thousand in the test suite, FUZZ_RUNS in `npm run fuzz`; and
 * the line each property writes with what it ran.
 */
export function fuzzRuns(inSuite: number): number {
  const asked = Number(process.env['FUZZ_RUNS']);
  return Number.isInteger(asked) && asked > 0 ? asked : inSuite;
}

/**
 * The time a property may take: ten minutes in the suite's few thousand cases (they take seconds), and
 * for FUZZ_RUNS, `msPerCase` for each case (a generous guess from the suite's rate) on top.
 */
export function fuzzTimeout(msPerCase: number): number {
  const asked = Number(process.env['FUZZ_RUNS']);
  return 600_000 + (Number.isInteger(asked) && asked > 0 ? asked * msPerCase : 0);
}

/** Writes `name: N cases in S s` to standard error (vitest shows it beside the test). */
export function reportFuzz(name: string, cases: number, startedAt: number): void {
  process.stderr.write(`fuzz ${name}: ${cases} cases in ${((performance.now() - startedAt) / 1000).toFixed(1)} s\n`);
}
