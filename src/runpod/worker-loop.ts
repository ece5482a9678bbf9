/**
 * The production worker: RunPod's serverless protocol around the job runner.
 *
 * 1. Wait for A1111 (the job machine's readiness rules) and log how long it took.
 * 2. Heartbeat on its own thread, the stop channel and the job-take loop run side by side.
 * 3. Each job: run it, post progress while A1111 generates, post the result exactly once.
 * 4. SIGTERM/SIGINT: stop taking jobs, finish and post the running ones, exit 0.
 *
 * Where RunPod's Python runtime is weak, this loop differs on purpose: failed job-takes back off (a
 * floor delay doubling to a cap) instead of spinning; job-done is retried on network errors too; a
 * job without an input is answered with an error rather than dropped; progress can never overwrite a
 * final result; a cancelled job really stops A1111's generation.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { A1111Client } from '../a1111/client.js';
import type { A1111Process } from '../a1111/process.js';
import type { Config } from '../config/index.js';
import { ERROR_CODES, errorFields, type JobFailure } from '../errors.js';
import { type JobOutcome, type JobRunner, type RunPodJob, toRunPodResult } from '../handler.js';
import { waitForA1111 } from '../job/readiness.js';
import { releaseSourceBytes } from '../json/source-bytes.js';
import type { Logger } from '../log.js';
import { afterResult } from '../memory.js';
import { USER_AGENT, WORKER_VERSION } from '../version.js';
import { ControlPlane, ThrottledError } from './control-plane.js';
import { type Heartbeat, startHeartbeat } from './heartbeat.js';
import { JobReporter } from './job-reporter.js';
import { WorkerMetrics } from './metrics.js';
import { type RunPodUrls, runPodUrls } from './urls.js';

const LONG_POLL_MS = 90_000;
const THROTTLE_WAIT_MS = 5_000;

interface RunningJob {
  controller: AbortController;
  done: Promise<void>;
}

export interface WorkerLoopDeps {
  config: Config;
  log: Logger;
  client: A1111Client;
  runner: JobRunner;
  /** The WebUI, when the worker runs it (A1111_LAUNCH_COMMAND). */
  webui?: A1111Process;
}

/** The result body for a job: RunPod's shape, with `stopPod` for crash-class failures when configured. */
export function resultBody(outcome: JobOutcome, refreshOnCrash: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = { ...toRunPodResult(outcome) };
  if (!outcome.ok && refreshOnCrash && ERROR_CODES[outcome.failure.code].crashClass) body['stopPod'] = true;
  return body;
}

/** Memory and open resources of this process, for the metrics line (leaks show up here first). */
export function processFigures(): Record<string, unknown> {
  const resources: Record<string, number> = {};
  for (const name of process.getActiveResourcesInfo()) resources[name] = (resources[name] ?? 0) + 1;
  const memory = process.memoryUsage();
  return {
    rssBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    heapTotalBytes: memory.heapTotal,
    externalBytes: memory.external,
    activeResources: resources,
  };
}

export class WorkerLoop {
  readonly workerId: string;
  readonly metrics = new WorkerMetrics();
  private readonly urls: RunPodUrls;
  private readonly plane: ControlPlane;
  private readonly running = new Map<string, RunningJob>();
  private readonly stopping = new AbortController();
  /** Aborted once the running jobs have finished after a shutdown: the stop channel is needed until then. */
  private readonly drained = new AbortController();
  private heartbeat: Heartbeat | undefined;
  private slotWaiters: (() => void)[] = [];
  private stopReason = '';
  private exitCode = 0;
  private crashed = false;

  constructor(private readonly deps: WorkerLoopDeps) {
    this.workerId = deps.config.runpod.podId ?? randomUUID();
    this.urls = runPodUrls(deps.config.runpod, this.workerId);
    this.plane = new ControlPlane({
      urls: this.urls,
      apiKey: deps.config.runpod.apiKey,
      longPollTimeoutMs: LONG_POLL_MS,
    });
  }

  /** Runs until shut down; resolves with the process exit code. */
  async run(): Promise<number> {
    const { log, config } = this.deps;
    log.info('--- Starting Serverless Worker ---', {
      version: WORKER_VERSION,
      workerId: this.workerId,
      concurrency: config.runpod.concurrency,
      a1111: config.a1111.baseUrl,
    });
    const ready = await waitForA1111({ client: this.deps.client, config, log, signal: this.stopping.signal });
    if (this.stopping.signal.aborted) return this.drain();
    if (ready.status === 'failed') {
      log.error(`A1111 API did not become ready: ${ready.failure.message}; exiting so RunPod can replace this worker`, {
        waitedMs: ready.waitedMs,
        ...(ready.failure.details['backendLog'] ? { a1111: ready.failure.details['backendLog'] } : {}),
      });
      return 1;
    }
    void this.deps.webui?.exited.then(() => {
      if (this.deps.webui?.stoppedOnPurpose) return;
      // A WebUI that died makes this worker useless: exit non-zero, whatever else is ending it.
      this.exitCode = 1;
      if (this.stopping.signal.aborted) return;
      log.error(`${this.deps.webui?.describeExit() ?? 'A1111 exited'}; this worker stops so RunPod replaces it`);
      this.shutdown('A1111 exited');
    });
    log.info('A1111 API is ready', { waitedMs: ready.waitedMs, probes: ready.probes, models: ready.models.length });

    this.heartbeat = this.startHeartbeat();
    const metricsTimer = setInterval(() => this.logMetrics(false), config.runpod.metricsLogIntervalMs);
    metricsTimer.unref();
    const stopChannel = this.watchStopChannel();
    await this.takeJobs();
    clearInterval(metricsTimer);
    const code = await this.drain();
    await stopChannel;
    return code;
  }

  /** The ids of the jobs running now. */
  get runningJobIds(): string[] {
    return [...this.running.keys()];
  }

  /** Stops taking jobs; running jobs finish and post their results. Idempotent. */
  shutdown(reason: string): void {
    if (this.stopping.signal.aborted) return;
    this.stopReason = reason;
    this.deps.log.info('shutting down: no new jobs; finishing the running ones', {
      reason,
      running: [...this.running.keys()].join(','),
    });
    this.stopping.abort(new Error(reason));
    for (const wake of this.slotWaiters.splice(0)) wake();
  }

  /** Cancels a running job: its machine interrupts A1111 and the job ends CANCELLED. */
  cancel(jobId: string, reason: string): boolean {
    const job = this.running.get(jobId);
    if (!job) return false;
    this.deps.log.info('Stopping job.', { jobId, reason });
    job.controller.abort(reason);
    return true;
  }

  private startHeartbeat(): Heartbeat | undefined {
    const { runpod } = this.deps.config;
    const url = this.urls.ping([], WORKER_VERSION);
    if (!runpod.pingUrl || !runpod.apiKey || !runpod.podId || !url) {
      this.deps.log.info('no heartbeat: RUNPOD_WEBHOOK_PING, RUNPOD_AI_API_KEY and RUNPOD_POD_ID are not all set');
      return undefined;
    }
    return startHeartbeat(
      {
        url: runpod.pingUrl.replaceAll('$RUNPOD_POD_ID', this.workerId),
        intervalMs: runpod.pingIntervalMs,
        apiKey: runpod.apiKey,
        version: WORKER_VERSION,
        userAgent: USER_AGENT,
      },
      this.deps.log,
    );
  }

  private async takeJobs(): Promise<void> {
    const { config, log } = this.deps;
    let errorDelay = config.runpod.jobTakeErrorDelayMs;
    let emptyStreak = 0;
    while (!this.stopping.signal.aborted) {
      const free = config.runpod.concurrency - this.running.size;
      if (free <= 0) {
        await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
        continue;
      }
      const askedAt = Date.now();
      try {
        // Not aborted on shutdown: a job RunPod hands out in this answer is run and answered, not lost.
        const taken = await this.plane.takeJobs(free, this.running.size > 0);
        errorDelay = config.runpod.jobTakeErrorDelayMs;
        if (taken.timedOut) log.debug('job-take long-poll timed out without a job; asking again');
        for (const bad of taken.malformed) this.answerMalformed(bad);
        for (const job of taken.jobs) this.start(job);
        // RunPod holds job-take open until a job comes; an empty answer that comes back at once would
        // otherwise turn this loop into a busy one.
        if (taken.jobs.length === 0 && Date.now() - askedAt < 100) {
          emptyStreak++;
          await this.pause(Math.min(1_000, 10 * 2 ** Math.min(emptyStreak, 7)));
        } else {
          emptyStreak = 0;
        }
      } catch (error) {
        if (this.stopping.signal.aborted) break;
        if (error instanceof ThrottledError) {
          log.warn('RunPod throttles job-take (429); waiting 5 s');
          await this.pause(THROTTLE_WAIT_MS);
          continue;
        }
        log.error('Failed to get job.', { ...errorFields(error), retryInMs: errorDelay });
        await this.pause(errorDelay);
        errorDelay = Math.min(errorDelay * 2, config.runpod.jobTakeErrorDelayMaxMs);
      }
    }
  }

  /** Waits `ms`, or less when `signal` (the shutdown, by default) ends the wait. */
  private async pause(ms: number, signal = this.stopping.signal): Promise<void> {
    await sleep(ms, undefined, { signal }).catch(() => undefined);
  }

  private answerMalformed(bad: { id: string | undefined; raw: unknown; reason: string }): void {
    const { log } = this.deps;
    if (!bad.id) {
      log.error(`Job has missing field(s): ${bad.reason}; it cannot be answered without an id`, { job: bad.raw });
      return;
    }
    // A job with an id but no input still runs through the machine, which refuses it INVALID_INPUT.
    this.start({ id: bad.id, input: undefined });
  }

  private start(job: RunPodJob): void {
    if (this.running.has(job.id)) {
      this.deps.log.warn('RunPod handed out a job this worker is already running; ignoring the copy', {
        jobId: job.id,
      });
      return;
    }
    const controller = new AbortController();
    this.metrics.jobTaken();
    const done = this.execute(job, controller)
      .catch((error: unknown) => {
        this.deps.log.error('a job ended without its result being posted', { jobId: job.id, ...errorFields(error) });
      })
      .finally(() => {
        this.running.delete(job.id);
        this.heartbeat?.setJobIds([...this.running.keys()]);
        this.slotWaiters.shift()?.();
      });
    this.running.set(job.id, { controller, done });
    this.heartbeat?.setJobIds([...this.running.keys()]);
    this.deps.log.debug('Jobs in progress', { count: this.running.size, jobId: job.id });
  }

  private async execute(job: RunPodJob, controller: AbortController): Promise<void> {
    const { config, log, runner } = this.deps;
    const jobLog = log.child({ jobId: job.id });
    const reporter = new JobReporter(
      job.id,
      this.plane,
      {
        progressIntervalMs: config.runpod.progressPostIntervalMs,
        retries: config.runpod.jobDoneRetries,
        retryDelayMs: config.runpod.jobDoneRetryDelayMs,
        streamProgress: config.runpod.postStreamUrl !== undefined,
      },
      jobLog,
    );
    jobLog.debug('Started.');
    let outcome: JobOutcome;
    try {
      outcome = await runner.run(job, { signal: controller.signal, onProgress: (update) => reporter.progress(update) });
    } catch (error) {
      // The runner reports failures as outcomes; an exception here is a defect, answered all the same.
      const failure: JobFailure = {
        code: 'INTERNAL',
        message: `internal error: ${error instanceof Error ? error.message : String(error)}`,
        phase: null,
        retryable: false,
        details: { hostname: config.runpod.podHostname ?? 'unknown', workerId: this.workerId },
      };
      outcome = { ok: false, jobId: job.id, failure, report: { timings_ms: { total: 0 }, recoveries: 0, notes: [] } };
    }
    const body = resultBody(outcome, config.runpod.refreshOnCrash);
    await reporter.finish(body);
    // Its result is with RunPod: the heartbeat stops naming it now, not after the clean-up below.
    this.heartbeat?.setJobIds([...this.running.keys()].filter((id) => id !== job.id));
    // Nothing keeps this job's output any more: its A1111 answer's memory serves the next job.
    if (outcome.ok) releaseSourceBytes(outcome.output);
    afterResult(reporter.resultBytes);
    // What RunPod was told is what the metrics count: a result that could not be encoded went out as INTERNAL.
    const failure = reporter.encodingFailure;
    this.metrics.jobFinished(
      outcome.ok && failure ? { ok: false, jobId: job.id, failure, report: outcome.output.worker } : outcome,
    );
    jobLog.debug('Finished.', { ok: outcome.ok, ...(outcome.ok ? {} : { code: outcome.failure.code }) });
    if (body['stopPod'] === true) {
      this.crashed = true;
      this.shutdown(`${outcome.ok ? '' : outcome.failure.code}: A1111 is broken; RunPod replaces this worker`);
    }
  }

  private async watchStopChannel(): Promise<void> {
    const { log } = this.deps;
    if (!this.urls.jobStop()) {
      log.warn('no stop channel: RUNPOD_WEBHOOK_GET_JOB has no /job-take/ to derive /job-stop/ from');
      return;
    }
    // Watched until the jobs running at shutdown have finished: RunPod may still cancel one of them.
    const { signal } = this.drained;
    const pause = (ms: number) => this.pause(ms, signal);
    while (!signal.aborted) {
      try {
        const ids = await this.plane.pollStop(signal);
        for (const id of ids) {
          if (!this.cancel(id, 'RunPod asked to stop the job'))
            log.debug('stop signal for a job not running here', { id });
        }
        if (ids.length === 0) await pause(1_000);
      } catch (error) {
        if (signal.aborted) break;
        if (error instanceof ThrottledError) await pause(THROTTLE_WAIT_MS);
        else {
          log.error('stop channel request failed', errorFields(error));
          await pause(1_000);
        }
      }
    }
  }

  private async drain(): Promise<number> {
    await Promise.all([...this.running.values()].map((job) => job.done));
    this.drained.abort();
    const webui = this.deps.webui;
    if (webui?.alive && this.crashed) {
      // A crash-class failure ended the worker: the WebUI's exit, if that is what it was, is moments away.
      await Promise.race([webui.exited, sleep(2_000)]);
    }
    await this.heartbeat?.stop();
    this.logMetrics(true);
    this.plane.close();
    this.deps.log.info('worker stopped', { reason: this.stopReason || 'done' });
    return this.exitCode;
  }

  private logMetrics(final: boolean): void {
    if (!final && this.metrics.finishedSinceSummary === 0 && this.running.size === 0) return;
    this.metrics.finishedSinceSummary = 0;
    this.deps.log.info(final ? 'metrics at shutdown' : 'metrics', {
      ...this.metrics.snapshot(this.running.size),
      process: processFigures(),
    });
  }
}
