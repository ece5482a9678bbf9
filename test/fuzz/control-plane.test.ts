/**
 * Job-take answers of every shape, through the worker's real job loop (in this process, with a stub
 * handler: the loop, not A1111, is under test): bodies without an id, inputs of any type, batches with
 * duplicates, non-JSON, the wrong content type.
 *
 * Properties: the loop stays up and asks again after every answer, and every job it could identify
 * (an object with a non-empty string id) gets a result posted.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import type { Backend, JobHandler } from '../../src/runpod/handler.js';
import { WorkerLoop } from '../../src/runpod/worker-loop.js';
import { FakeRunPod } from '../support/fake-runpod.js';
import { fuzzRuns, fuzzTimeout, reportFuzz } from '../support/fuzz.js';
import { captureLog } from '../support/logs.js';

const planes: FakeRunPod[] = [];
afterEach(async () => {
  await Promise.all(planes.splice(0).map((plane) => plane.close()));
});

const handler: JobHandler = {
  async run(job) {
    await new Promise((resolve) => setImmediate(resolve));
    return {
      ok: true,
      jobId: job.id,
      output: { input: typeof job.input },
      stats: { timingsMs: { total: 0 }, recoveries: 0 },
    };
  },
  localFiles: (output) => ({ files: [], output }),
};
const backend: Backend = {
  waitUntilReady: async () => ({ ready: true, waitedMs: 0, detail: {} }),
  warmUp: async () => ({ ran: false, reason: 'a stub backend' }),
  lost: new Promise<string>(() => undefined),
  crashPolicy: 'a stub backend',
};

const id = fc.oneof(
  { arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }).map((s) => `job-${s}`), weight: 6 },
  { arbitrary: fc.constantFrom('', 0, 7, null, true, ['x'], { id: 'x' }), weight: 2 },
);
const item = fc.oneof(
  {
    arbitrary: fc.record({ id, input: fc.jsonValue({ maxDepth: 3 }) }, { requiredKeys: [] }),
    weight: 6,
  },
  { arbitrary: fc.jsonValue({ maxDepth: 2 }), weight: 1 },
);
const answer = fc.oneof(
  { arbitrary: item.map((value) => ({ body: JSON.stringify(value), contentType: 'application/json' })), weight: 4 },
  {
    arbitrary: fc
      .array(item, { maxLength: 5 })
      .chain((items) => fc.constantFrom(items, [...items, ...items]))
      .map((items) => ({ body: JSON.stringify(items), contentType: 'application/json' })),
    weight: 4,
  },
  { arbitrary: fc.string({ maxLength: 60 }).map((body) => ({ body, contentType: 'application/json' })), weight: 1 },
  { arbitrary: item.map((value) => ({ body: JSON.stringify(value), contentType: 'text/html' })), weight: 1 },
);

/** The jobs of a body a worker can answer: objects with a non-empty string id. */
function identifiable(body: string, contentType: string): string[] {
  if (!contentType.includes('json')) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return [];
  }
  const items = Array.isArray(parsed) ? parsed : [parsed];
  return items.flatMap((item) =>
    typeof item === 'object' && item !== null && !Array.isArray(item) && typeof item.id === 'string' && item.id !== ''
      ? [item.id as string]
      : [],
  );
}

describe('job-take answers of every shape', () => {
  it(
    'keep the loop up and asking, and every job it can identify gets a result',
    async () => {
      const plane = new FakeRunPod({ longPollMs: 60_000 });
      planes.push(plane);
      await plane.start();
      const settings = loadConfig({
        ...plane.env(),
        WORKER_CONCURRENCY: '4',
        JOB_TAKE_ERROR_DELAY_MS: '10',
        JOB_TAKE_ERROR_DELAY_MAX_MS: '10',
        JOB_DONE_RETRIES: '0',
      }).runpod;
      const loop = new WorkerLoop({
        settings: { ...settings, pingUrl: undefined },
        log: captureLog({ level: 'error' }).log,
        handler,
        backend,
      });
      const running = loop.run();
      // Counted as the requests come, so a case costs the same at the 100,000th as at the first.
      let takesSeen = 0;
      let scanned = 0;
      const takes = () => {
        for (; scanned < plane.requests.length; scanned++) {
          const kind = plane.requests[scanned]!.kind;
          if (kind === 'job-take' || kind === 'job-take-batch') takesSeen++;
        }
        return takesSeen;
      };
      const waitFor = async (predicate: () => boolean, what: string) => {
        const deadline = Date.now() + 10_000;
        while (!predicate()) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      };
      await waitFor(() => takes() > 0, 'the first job-take');
      const runs = fuzzRuns(1_500);
      const started = performance.now();
      await fc.assert(
        fc.asyncProperty(answer, async ({ body, contentType }) => {
          const before = takes();
          const answered = plane.requests.length;
          plane.scriptTake({ status: 200, body, contentType });
          const ids = identifiable(body, contentType);
          const posted = () =>
            new Set(
              plane.requests
                .slice(answered)
                .filter((r) => r.kind === 'job-done')
                .map((r) => r.jobId),
            );
          await waitFor(
            () =>
              takes() >= before + 1 &&
              [...new Set(ids)].every((jobId) => posted().has(encodeURIComponent(jobId)) || posted().has(jobId)),
            `the results of ${JSON.stringify(ids)}`,
          );
          expect(loop.runningJobIds.length).toBeLessThanOrEqual(4);
        }),
        { numRuns: runs },
      );
      reportFuzz('job-take answers', runs, started);
      loop.shutdown('the test is over');
      await plane.close();
      expect(await running).toBe(0);
    },
    fuzzTimeout(30),
  );
});
