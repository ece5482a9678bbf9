/**
 * The composition root: builds every long-lived part of a worker from its configuration and wires
 * them together. RunPod's runtime (src/runpod/) gets what it needs through two interfaces: a
 * JobHandler that runs one job, and a Backend whose readiness and loss it can wait for.
 *
 *   config ─▶ WebUiSupervisor? ─▶ A1111 client ─▶ A1111Queue, A1111Catalog
 *                                   │            ModelDownloader, JournalStore, ResultBucket?
 *                                   ▼
 *                              job runner (one job machine per job)
 *                                   │
 *              JobHandler ◀─────────┴─────────▶ Backend (readiness, loss)
 */
import type { InspectionEvent } from 'xstate';
import { type A1111Client, createA1111Client } from './a1111/client.js';
import { TXT2IMG } from './a1111/operations.js';
import { WebUiSupervisor } from './a1111/supervisor.js';
import type { Config } from './config/index.js';
import { ERROR_CODES, type JobFailure, toJobFailure } from './errors.js';
import { A1111Queue } from './job/a1111-queue.js';
import { A1111Catalog } from './job/catalog.js';
import { localFiles } from './job/local-files.js';
import type { JobOutcome } from './job/outcome.js';
import { progressOutput } from './job/progress.js';
import { waitForA1111 } from './job/readiness.js';
import { createJobRunner, type JobRunner } from './job/runner.js';
import type { Clock } from './job/settings.js';
import { JournalStore } from './journal/store.js';
import { releaseSourceBytes } from './json/source-bytes.js';
import type { Logger } from './log/index.js';
import { ModelDownloader } from './models/downloads.js';
import { folderVariables, placeOnVolume } from './models/volume-layout.js';
import { ResultBucket } from './results/bucket.js';
import type { Backend, BackendVerdict, HandlerOutcome, JobHandler, WarmUpResult } from './runpod/handler.js';

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
  webui: WebUiSupervisor | undefined;
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
  options: WorkerOptions & { downloader?: ModelDownloader; bucket?: ResultBucket | null } = {},
): JobRunner {
  const { journalDir, journalKeep } = config.observability;
  return createJobRunner({
    config,
    log,
    client,
    bucket: options.bucket === undefined ? resultBucket(config) : options.bucket,
    queue: new A1111Queue(client, log, config.a1111.interruptSettleTimeoutMs, config.a1111.requestTimeoutMs),
    catalog: new A1111Catalog(client),
    downloader: options.downloader ?? new ModelDownloader(config.models, log),
    ...(journalDir ? { journals: new JournalStore(journalDir, journalKeep) } : {}),
    ...(options.inspect ? { inspect: options.inspect } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  });
}

/** The bucket of BUCKET_ENDPOINT_URL, when it is set. */
export function resultBucket(config: Config): ResultBucket | null {
  const { bucket, partBytes, urlExpiresSeconds } = config.results;
  return bucket ? new ResultBucket(bucket, { partBytes, urlExpiresSeconds }) : null;
}

/**
 * What a failure says of A1111, for the crash policy: nothing, unless it is a crash-class failure;
 * `gone` when A1111 did not answer within the job's readiness deadline or the supervisor gave up
 * restarting it; `suspect` otherwise (it dropped a connection or stopped answering, and may come back).
 */
export function backendVerdict(failure: JobFailure): BackendVerdict | undefined {
  if (!ERROR_CODES[failure.code].crashClass) return undefined;
  if (failure.details['backendGone'] === true) return 'gone';
  if (failure.phase === 'waitingForApi' && failure.details['readyTimeoutMs'] !== undefined) return 'gone';
  return 'suspect';
}

/** A job's outcome in the runtime's terms. */
export function toHandlerOutcome(outcome: JobOutcome): HandlerOutcome {
  if (outcome.ok) {
    const { report } = outcome;
    return {
      ok: true,
      jobId: outcome.jobId,
      output: outcome.output,
      stats: { timingsMs: report.timings_ms, recoveries: report.recoveries },
    };
  }
  const verdict = backendVerdict(outcome.failure);
  return {
    ok: false,
    jobId: outcome.jobId,
    failure: outcome.failure,
    stats: { timingsMs: outcome.report.timings_ms, recoveries: outcome.report.recoveries },
    ...(verdict ? { backend: verdict } : {}),
  };
}

/**
 * The warm-up generation (WARMUP): A1111 v1.9.3 loads its checkpoint in the background after its API
 * answers, and the first generation waits for that; the warm-up pays it instead of the first job. Its
 * answer is thrown away. A failure is reported with what it says of A1111 (the crash policy acts on it).
 */
export async function warmUp(
  config: Config,
  client: A1111Client,
  log: Logger,
  signal: AbortSignal,
  webui?: WebUiSupervisor,
): Promise<WarmUpResult> {
  const request = config.a1111.warmup;
  if (!request) return { ran: false, reason: 'WARMUP=off' };
  const started = performance.now();
  log.info('warm-up generation: A1111 loads its checkpoint now, not during the first job', { request });
  try {
    releaseSourceBytes(await client.send(TXT2IMG, { ...request }, signal));
    return { ran: true, ok: true, ms: performance.now() - started };
  } catch (error) {
    const ms = performance.now() - started;
    const failure = toJobFailure(error, 'inferring');
    if (webui && failure.code === 'BACKEND_CRASHED') {
      await webui.decided(DECISION_WAIT_MS);
      if (webui.isGone) failure.details['backendGone'] = true;
    }
    const verdict = backendVerdict(failure);
    return {
      ran: true,
      ok: false,
      ms,
      message: failure.message,
      code: failure.code,
      ...(verdict ? { backend: verdict } : {}),
    };
  }
}

/** How long a job that failed because the WebUI died waits for the supervisor's decision. */
const DECISION_WAIT_MS = 2_000;

/** The runner as RunPod's runtime calls it. */
export function asJobHandler(runner: JobRunner, webui?: WebUiSupervisor): JobHandler {
  return {
    async run(job, options = {}) {
      const { onProgress } = options;
      const outcome = await runner.run(job, {
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.openResult ? { openResult: options.openResult } : {}),
        ...(onProgress ? { onProgress: (update) => onProgress(progressOutput(update)) } : {}),
      });
      if (!outcome.ok && webui && outcome.failure.code === 'BACKEND_CRASHED') {
        // The WebUI died under this job: whether it comes back decides what the answer asks of RunPod.
        await webui.decided(DECISION_WAIT_MS);
        if (webui.isGone) outcome.failure.details['backendGone'] = true;
      }
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
export async function buildWorker(given: Config, log: Logger, options: WorkerOptions = {}): Promise<Worker> {
  const { settings: models, volume } = placeOnVolume(given.models, process.env);
  const config: Config = { ...given, models };
  if (volume) {
    const layout =
      volume.layout === 'webui-install'
        ? 'a WebUI install on the volume (the layout of ashleykleynhans/runpod-worker-a1111)'
        : "the worker's layout";
    log.info(`model folders on the network volume: ${layout}, below ${volume.root}`, {
      layout: volume.layout,
      ...Object.fromEntries(volume.found.map((variable) => [variable, folderVariables(models)[variable]])),
    });
  }
  const { launchCommand, restartLimit, restartWindowMs, restartDelayMs, readyTimeoutMs } = config.a1111;
  let webui: WebUiSupervisor | undefined;
  if (launchCommand) {
    const policy = { restartLimit, restartWindowMs, restartDelayMs };
    webui = new WebUiSupervisor(launchCommand, log, policy, Date.now, folderVariables(config.models));
    webui.start();
  }
  const client = createA1111Client(config.a1111, log, webui);
  const downloader = new ModelDownloader(config.models, log);
  await downloader.removeStaleTemporaryFiles({ atStartUp: true });
  const bucket = resultBucket(config);
  const runner = createRunner(config, log, client, { ...options, downloader, bucket });
  const supervised = webui;
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
    warmUp: (signal) => warmUp(config, client, log, signal, supervised),
    lost: supervised ? supervised.gone : new Promise<string>(() => undefined),
    crashPolicy: supervised
      ? `the worker runs A1111 and restarts it when it dies, at most ${restartLimit} time(s) in ${Math.round(restartWindowMs / 1000)} s; past that it asks RunPod for a fresh worker`
      : `A1111 runs on its own; after a crash the worker waits up to ${readyTimeoutMs} ms (A1111_READY_TIMEOUT_MS) for it to answer again, and asks RunPod for a fresh worker only if it does not`,
  };
  return {
    runner,
    handler: asJobHandler(runner, webui),
    backend,
    client,
    downloader,
    webui,
    killNow: () => webui?.kill(),
    async close() {
      client.close();
      bucket?.close();
      await webui?.stop();
    },
  };
}
