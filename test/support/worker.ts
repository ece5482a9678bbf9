/**
 * Builds a job runner against a URL with settings tuned for tests (short backoffs and pauses), real
 * HTTP and real timers unless a clock is given.
 */
import { afterEach } from 'vitest';
import { type A1111Client, createA1111Client } from '../../src/a1111/client.js';
import { type Config, loadConfig } from '../../src/config/index.js';
import { A1111Queue } from '../../src/job/a1111-queue.js';
import { A1111Catalog } from '../../src/job/catalog.js';
import type { GenerationOutput, JobOutcome } from '../../src/job/outcome.js';
import { createJobRunner, type JobRunner } from '../../src/job/runner.js';
import type { Clock } from '../../src/job/settings.js';
import { JournalStore } from '../../src/journal/store.js';
import { ModelDownloader } from '../../src/models/downloads.js';
import { type ResultBody, resultBody } from '../../src/runpod/protocol.js';
import { resultBucket, toHandlerOutcome } from '../../src/worker.js';
import { type CapturedLog, captureLog } from './logs.js';

export const FAST_ENV = {
  A1111_RETRY_BASE_DELAY_MS: '5',
  A1111_RETRY_MAX_DELAY_MS: '20',
  A1111_READY_POLL_INTERVAL_MS: '20',
  A1111_ROUTE_RECOVERY_DELAY_MS: '50',
  A1111_INTERRUPT_SETTLE_TIMEOUT_MS: '5000',
  PROGRESS_POLL_INTERVAL_MS: '20',
  LOG_FORMAT: 'json',
  LOG_LEVEL: 'debug',
} as const;

export interface TestWorker {
  runner: JobRunner;
  /** The worker's view of A1111's queue. */
  queue: A1111Queue;
  downloader: ModelDownloader;
  client: A1111Client;
  config: Config;
  logs: CapturedLog;
  close(): void;
}

const open: TestWorker[] = [];

afterEach(() => {
  for (const worker of open.splice(0)) worker.close();
});

/** A job runner with fast test settings; closed after the current test. */
export function testWorker(
  baseUrl: string,
  env: Record<string, string> = {},
  options: { clock?: Clock } = {},
): TestWorker {
  const config = loadConfig({ ...FAST_ENV, A1111_BASE_URL: baseUrl, ...env });
  // Everything is captured (debug) unless the test sets LOG_LEVEL.
  const logs = captureLog(env['LOG_LEVEL'] ? { level: config.observability.logLevel } : {});
  const client = createA1111Client(config.a1111, logs.log);
  const queue = new A1111Queue(client, logs.log, config.a1111.interruptSettleTimeoutMs, config.a1111.requestTimeoutMs);
  const downloader = new ModelDownloader(config.models, logs.log);
  const { journalDir, journalKeep } = config.observability;
  const bucket = resultBucket(config);
  const runner = createJobRunner({
    config,
    log: logs.log,
    client,
    queue,
    catalog: new A1111Catalog(client),
    downloader,
    bucket,
    ...(journalDir ? { journals: new JournalStore(journalDir, journalKeep) } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const close = () => {
    client.close();
    bucket?.close();
  };
  const worker = { runner, client, queue, downloader, config, logs, close };
  open.push(worker);
  return worker;
}

/** The body RunPod would receive for an outcome. */
export function runPodResult(outcome: JobOutcome): ResultBody {
  return resultBody(toHandlerOutcome(outcome), { stopPod: false });
}

/** The output of a generation that succeeded (a test fails with the failure's message otherwise). */
export function generated(outcome: JobOutcome): GenerationOutput {
  if (!outcome.ok) throw new Error(`the job failed: ${outcome.failure.code} ${outcome.failure.message}`);
  return outcome.output as GenerationOutput;
}
