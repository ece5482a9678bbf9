/**
 * The production worker: RunPod's serverless protocol around a job handler.
 *
 * 1. Wait for the backend to be ready and log how long it took.
 * 2. Heartbeat on its own thread, the stop channel and the job-take loop run side by side.
 * 3. Each job: run it, post progress while it runs, post the result exactly once.
 * 4. SIGTERM/SIGINT: stop taking jobs, finish and post the running ones, exit 0.
 *
 * The crash policy: a job that failed because of the backend (`backend: 'suspect'`) is answered as it
 * is; then no job is taken until the backend answers again, within its readiness deadline, and the
 * worker goes on serving. Only a backend gone for good (it did not answer within that deadline, or the
 * supervisor gave up restarting it) ends the worker: the jobs still running are answered with
 * `stopPod`, and the process exits 1, so RunPod replaces it.
 *
 * Where RunPod's Python runtime is weak, this loop differs on purpose: failed job-takes back off
 * instead of spinning (job-intake.ts); job-done is retried on network errors too; a job without an
 * input is answered with an error rather than dropped; progress can never overwrite a final result
 * (job-reporter.ts); a cancelled job really stops its generation.
 */
import { randomUUID } from 'node:crypto';
import type { RunPodSettings } from '../config/index.js';
import { errorFields } from '../errors.js';
import { releaseSourceBytes } from '../json/source-bytes.js';
import type { Logger } from '../log/index.js';
import { afterResult } from '../memory.js';
import { USER_AGENT, WORKER_VERSION } from '../version.js';
import { ControlPlane, type MalformedJob } from './control-plane.js';
import type { Backend, HandlerOutcome, JobHandler, RunPodJob } from './handler.js';
import { type Heartbeat, startHeartbeat } from './heartbeat.js';
import { takeJobs } from './job-intake.js';
import { JobReporter } from './job-reporter.js';
import { processFigures, WorkerMetrics } from './metrics.js';
import { internalFailure, resultBody } from './protocol.js';
import { watchStopChannel } from './stop-channel.js';
import { type RunPodUrls, runPodUrls } from './urls.js';

const LONG_POLL_MS = 90_000;

interface RunningJob {
  controller: AbortController;
  done: Promise<void>;
}

export interface WorkerLoopDeps {
  settings: RunPodSettings;
  log: Logger;
  handler: JobHandler;
  backend: Backend;
  /** The backend's address, for the start-up line. */
  backendUrl?: string;
}

export class WorkerLoop {
  readonly workerId: string;
  readonly metrics = new WorkerMetrics();
  private readonly urls: RunPodUrls;
  private readonly controlPlane: ControlPlane;
  private readonly running = new Map<string, RunningJob>();
  private readonly stopping = new AbortController();
  /** Aborted once the running jobs have finished after a shutdown: the stop channel is needed until then. */
  private readonly drained = new AbortController();
  private heartbeat: Heartbeat | undefined;
  private slotWaiters: (() => void)[] = [];
  private stopReason = '';
  private exitCode = 0;
  /** The backend will not serve again: every result still to post asks for a fresh worker. */
  private backendGone = false;
  /** Set while the worker waits for a backend that failed a job to answer again. */
  private recovery: Promise<void> | null = null;

  constructor(private readonly deps: WorkerLoopDeps) {
    this.workerId = deps.settings.podId ?? randomUUID();
    this.urls = runPodUrls(deps.settings, this.workerId);
    this.controlPlane = new ControlPlane({
      urls: this.urls,
      apiKey: deps.settings.apiKey,
      longPollTimeoutMs: LONG_POLL_MS,
    });
  }

  /** Runs until shut down; resolves with the process exit code. */
  async run(): Promise<number> {
    const { log, settings, backend } = this.deps;
    log.info('--- Starting Serverless Worker ---', {
      version: WORKER_VERSION,
      workerId: this.workerId,
      concurrency: settings.concurrency,
      a1111: this.deps.backendUrl,
      crashPolicy: backend.crashPolicy,
    });
    const ready = await backend.waitUntilReady(this.stopping.signal);
    if (this.stopping.signal.aborted) return this.drain();
    if (!ready.ready) {
      log.error(`A1111 API did not become ready: ${ready.message}; exiting so RunPod can replace this worker`, {
        waitedMs: ready.waitedMs,
        ...ready.detail,
      });
      return 1;
    }
    void backend.lost.then((what) => this.giveUp(`${what.split('\n')[0]}`));
    log.info('A1111 API is ready', { waitedMs: ready.waitedMs, ...ready.detail });

    this.heartbeat = this.startHeartbeat();
    // The warm-up runs with the heartbeat beating and before the first job-take; a SIGTERM stops it.
    const warm = await backend.warmUp(this.stopping.signal);
    if (this.stopping.signal.aborted) return this.drain();
    this.metrics.warmedUp(warm);
    if (!warm.ran) log.info(`no warm-up: ${warm.reason}`);
    else if (warm.ok) log.info('warm-up generation done; taking jobs', { warmupMs: Math.round(warm.ms) });
    else {
      log.warn(
        `warm-up generation failed: ${warm.message}; taking jobs all the same (the first job will say what is wrong)`,
        {
          warmupMs: Math.round(warm.ms),
          code: warm.code,
        },
      );
      if (warm.backend === 'gone') this.giveUp(`the warm-up failed ${warm.code}`);
      else if (warm.backend === 'suspect') this.waitForBackend(`the warm-up failed ${warm.code}`);
    }

    const metricsTimer = setInterval(() => this.logMetrics(false), settings.metricsLogIntervalMs);
    metricsTimer.unref();
    const stopChannel = watchStopChannel({
      controlPlane: this.controlPlane,
      log,
      until: this.drained.signal,
      throttleWaitMs: settings.throttleWaitMs,
      cancel: (id) => this.cancel(id, 'RunPod asked to stop the job'),
    });
    await takeJobs({
      controlPlane: this.controlPlane,
      log,
      concurrency: settings.concurrency,
      errorDelayMs: settings.jobTakeErrorDelayMs,
      errorDelayMaxMs: settings.jobTakeErrorDelayMaxMs,
      throttleWaitMs: settings.throttleWaitMs,
      stopping: this.stopping.signal,
      running: () => this.running.size,
      ready: () => this.recovery ?? Promise.resolve(),
      slotFreed: () => new Promise<void>((resolve) => this.slotWaiters.push(resolve)),
      start: (job) => this.start(job),
      malformed: (job) => this.answerMalformed(job),
    });
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

  /** Cancels a running job: its generation is interrupted and the job ends CANCELLED. */
  cancel(jobId: string, reason: string): boolean {
    const job = this.running.get(jobId);
    if (!job) return false;
    this.deps.log.info('Stopping job.', { jobId, reason });
    job.controller.abort(reason);
    return true;
  }

  private startHeartbeat(): Heartbeat | undefined {
    const { settings } = this.deps;
    const url = this.urls.ping([], WORKER_VERSION);
    if (!settings.pingUrl || !settings.apiKey || !settings.podId || !url) {
      this.deps.log.info('no heartbeat: RUNPOD_WEBHOOK_PING, RUNPOD_AI_API_KEY and RUNPOD_POD_ID are not all set');
      return undefined;
    }
    return startHeartbeat(
      {
        url: settings.pingUrl.replaceAll('$RUNPOD_POD_ID', this.workerId),
        intervalMs: settings.pingIntervalMs,
        apiKey: settings.apiKey,
        version: WORKER_VERSION,
        userAgent: USER_AGENT,
      },
      this.deps.log,
    );
  }

  private answerMalformed(bad: MalformedJob): void {
    if (!bad.id) {
      this.deps.log.error(`Job has missing field(s): ${bad.reason}; it cannot be answered without an id`, {
        job: bad.raw,
      });
      return;
    }
    // A job with an id but no input still goes to the handler, which refuses it INVALID_INPUT.
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
    const { settings, log, handler } = this.deps;
    const jobLog = log.child({ jobId: job.id });
    const reporter = new JobReporter(
      job.id,
      this.controlPlane,
      {
        progressIntervalMs: settings.progressPostIntervalMs,
        retries: settings.jobDoneRetries,
        retryDelayMs: settings.jobDoneRetryDelayMs,
      },
      jobLog,
    );
    jobLog.debug('Started.');
    let outcome: HandlerOutcome;
    try {
      outcome = await handler.run(job, {
        signal: controller.signal,
        onProgress: (progress) => reporter.progress(progress),
        openResult: () => reporter.openResult(),
      });
    } catch (error) {
      // The handler reports failures as outcomes; an exception here is a defect, answered all the same.
      const failure = internalFailure(error, { hostname: settings.podHostname ?? 'unknown', workerId: this.workerId });
      outcome = { ok: false, jobId: job.id, failure, stats: { timingsMs: { total: 0 }, recoveries: 0 } };
    }
    const verdict = outcome.ok ? undefined : outcome.backend;
    if (!outcome.ok && verdict === 'gone') this.giveUp(`${outcome.failure.code}: ${outcome.failure.message}`);
    const body = resultBody(outcome, { stopPod: this.backendGone && settings.refreshOnCrash });
    await reporter.finish(body);
    // Its result is with RunPod: the heartbeat stops naming it now, not after the clean-up below.
    this.heartbeat?.setJobIds([...this.running.keys()].filter((id) => id !== job.id));
    // Nothing keeps this job's output any more: its answer's memory serves the next job.
    if (outcome.ok) releaseSourceBytes(outcome.output);
    afterResult(reporter.resultBytes);
    // What RunPod was told is what the metrics count: a result that could not be encoded went out as INTERNAL.
    const failure = reporter.encodingFailure;
    this.metrics.jobFinished(
      outcome.ok && failure ? { ok: false, jobId: job.id, failure, stats: outcome.stats } : outcome,
    );
    jobLog.debug('Finished.', { ok: outcome.ok, ...(outcome.ok ? {} : { code: outcome.failure.code }) });
    if (verdict === 'suspect' && !this.backendGone) {
      this.waitForBackend(`a job failed ${outcome.ok ? '' : outcome.failure.code}`);
    }
  }

  /**
   * After a job the backend failed: no job is taken until it answers again, within its readiness
   * deadline; if it does not, the worker gives up. One wait for every job that failed meanwhile.
   */
  private waitForBackend(what: string): void {
    if (this.recovery || this.stopping.signal.aborted) return;
    const { log, backend } = this.deps;
    log.warn(`crash policy: ${what}; no job is taken until A1111 answers again`, {
      crashPolicy: backend.crashPolicy,
    });
    this.recovery = backend
      .waitUntilReady(this.stopping.signal)
      .then((ready) => {
        if (this.stopping.signal.aborted) return;
        if (ready.ready) {
          log.info('crash policy: A1111 answers again; taking jobs', { waitedMs: ready.waitedMs, ...ready.detail });
          return;
        }
        this.giveUp(`A1111 did not answer again: ${ready.message}`);
      })
      .catch((error: unknown) => this.giveUp(`the wait for A1111 failed: ${errorFields(error)['errorMessage']}`))
      .finally(() => {
        this.recovery = null;
      });
  }

  /** The backend will not serve again: answer the running jobs with stopPod, then exit 1. Idempotent. */
  private giveUp(reason: string): void {
    if (this.backendGone) return;
    this.backendGone = true;
    this.exitCode = 1;
    this.deps.log.error(
      `crash policy: A1111 is gone for good (${reason}); this worker stops${this.deps.settings.refreshOnCrash ? ' and asks RunPod for a fresh one (stopPod)' : ''}`,
      { runningJobs: [...this.running.keys()].join(',') },
    );
    this.shutdown('A1111 is gone');
  }

  private async drain(): Promise<number> {
    await Promise.all([...this.running.values()].map((job) => job.done));
    this.drained.abort();
    await this.heartbeat?.stop();
    this.logMetrics(true);
    this.controlPlane.close();
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
