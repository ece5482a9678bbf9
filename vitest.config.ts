import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests start real HTTP servers and child processes; keep a generous ceiling
    // for a busy 2-core CI machine. No test asserts on elapsed time.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
