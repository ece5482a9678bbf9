/**
 * The composition root: builds every long-lived part of a worker from its configuration and wires
 * them together. RunPod's runtime (src/runpod/) gets what it needs through two interfaces: a
 * JobHandler that runs one job, and a Backend whose readiness and loss it can wait for.
 *
 *   config ─▶ A1111Process? ─▶ A1111 client ─▶ A1111Queue, A1111Catalog
 *                                   │            ModelDownloader, JournalStore
 *                                   ▼
 *                              job runner (one job machine per job)
 *                                   │
 *              JobHandler ◀─────────┴─────────▶ Backend (readiness, loss)
 */
import type { InspectionEvent } from 'xstate';
import { type A1111Client, createA1111Client } from './a1111/client.js';
import { A1111Process } from './a1111/process.js';
import type { Config } from './config/index.js';
import { ERROR_CODES } from './errors.js';
import { A1111Queue } from './job/a1111-queue.js';
import { A1111Catalog } from './job/catalog.js';
import { localFiles } from './job/local-files.js';
import type { JobOutcome } from './job/outcome.js';
import { progressOutput } from './job/progress.js';
import { waitForA1111 } from './job/readiness.js';
import { createJobRunner, type JobRunner } from './job/runner.js';
import type { Clock } from './job/settings.js';
import { JournalStore } from './journal/store.js';
import type { Logger } from './log/index.js';
import { ModelDownloader } from './models/downloads.js';
import type { Backend, HandlerOutcome, JobHandler } from './runpod/handler.js';

export interface WorkerOptions {
  /** Receives every inspection event of every job (the Stately inspector). */
  inspect?: (event: InspectionEvent) => void;
  /** Drives the job machines' named delays; tests pass a SimulatedClock. */
  clock?: Clock;
}

/** A worker's parts; `close` ends what `buildWorker` started. */
export interface Worker {
  runner: JobRunner;
  handler: JobHandler;
  backend: Backend;
  client: A1111Client;
  downloader: ModelDownloader;
  /** The WebUI, when the worker runs it (A1111_LAUNCH_COMMAND). */
  webui: A1111Process | undefined;
  /** Processes to kill outright if the worker must exit at once. */
  killNow(): void;
  close(): Promise<void>;
}

/**
 * The job runner and what it needs, around an A1111 client.
 *
 * @example
 * const runner = createRunner(config, log, createA1111Client(config.a1111, log));
 */
export function createRunner(
  config: Config,
  log: Logger,
  client: A1111Client,
  options: WorkerOptions & { downloader?: ModelDownloader } = {},
): JobRunner {
  const { journalDir, journalKeep } = config.observability;
  return createJobRunner({
    config,
    log,
    client,
    queue: new A1111Queue(client, log, config.a1111.interruptSettleTimeoutMs, config.a1111.requestTimeoutMs),
    catalog: new A1111Catalog(client),
    downloader: options.downloader ?? new ModelDownloader(config.models, log),
    ...(journalDir ? { journals: new JournalStore(journalDir, journalKeep) } : {}),
    ...(options.inspect ? { inspect: options.inspect } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  });
}

/** A job's outcome in the runtime's terms. */
export function toHandlerOutcome(outcome: JobOutcome): HandlerOutcome {
  if (outcome.ok) {
    const { worker } = outcome.output;
    return {
      ok: true,
      jobId: outcome.jobId,
      output: outcome.output,
      stats: { timingsMs: worker.timings_ms, recoveries: worker.recoveries },
    };
  }
  return {
    ok: false,
    jobId: outcome.jobId,
    failure: outcome.failure,
    stats: { timingsMs: outcome.report.timings_ms, recoveries: outcome.report.recoveries },
    crashClass: ERROR_CODES[outcome.failure.code].crashClass,
  };
}

/** The runner as RunPod's runtime calls it. */
export function asJobHandler(runner: JobRunner): JobHandler {
  return {
    async run(job, options = {}) {
      const { onProgress } = options;
      const outcome = await runner.run(job, {
        ...(options.signal ? { signal: options.signal } : {}),
        ...(onProgress ? { onProgress: (update) => onProgress(progressOutput(update)) } : {}),
      });
      return toHandlerOutcome(outcome);
    },
    localFiles,
  };
}

/**
 * Builds a worker: starts the WebUI when the worker runs it, and removes what killed downloads left.
 *
 * @example
 * const worker = await buildWorker(config, log);
 * const code = await new WorkerLoop({ settings: config.runpod, log, handler: worker.handler, backend: worker.backend }).run();
 * await worker.close();
 */
export async function buildWorker(config: Config, log: Logger, options: WorkerOptions = {}): Promise<Worker> {
  let webui: A1111Process | undefined;
  if (config.a1111.launchCommand) {
    webui = new A1111Process(config.a1111.launchCommand, log);
    webui.start();
  }
  const client = createA1111Client(config.a1111, log, webui);
  const downloader = new ModelDownloader(config.models, log);
  await downloader.removeStaleTemporaryFiles({ atStartUp: true });
  const runner = createRunner(config, log, client, { ...options, downloader });
  const process = webui;
  const backend: Backend = {
    async waitUntilReady(signal) {
      const ready = await waitForA1111({ client, config, log, signal });
      if (ready.status === 'ready') {
        return { ready: true, waitedMs: ready.waitedMs, detail: { probes: ready.probes, models: ready.models.length } };
      }
      const backendLog = ready.failure.details['backendLog'];
      return {
        ready: false,
        waitedMs: ready.waitedMs,
        message: ready.failure.message,
        detail: backendLog ? { a1111: backendLog } : {},
      };
    },
    lost: process
      ? process.exited.then(() =>
          process.stoppedOnPurpose ? new Promise<string>(() => undefined) : (process.describeExit() ?? 'A1111 exited'),
        )
      : new Promise<string>(() => undefined),
    get processAlive() {
      return process?.alive ?? false;
    },
  };
  return {
    runner,
    handler: asJobHandler(runner),
    backend,
    client,
    downloader,
    webui,
    killNow: () => webui?.kill(),
    async close() {
      client.close();
      await webui?.stop();
    },
  };
}
