/**
 * The handler: runs one job machine per job, logs every transition, and turns the machine's output
 * into what RunPod expects.
 *
 * - Success: A1111's response passed through unchanged (`images`, `parameters`, `info`) plus one extra
 *   key, `worker`, with per-phase timings, the number of route-404 recoveries and notes on what the
 *   worker changed (a split sampler name, a renamed checkpoint).
 * - Failure: `{"error": "<JSON string>"}` whose JSON is `{code, message, phase, retryable, details}`.
 *   An A1111 error body is never returned as a successful output.
 *
 * Every actor created for a job is stopped when the job ends, whatever the outcome.
 */
import { createActor, type InspectionEvent, type SnapshotFrom, toPromise } from 'xstate';
import type { JobOutput, ProgressUpdate } from '../machines/job.types.js';
import { type A1111Client, createA1111Client } from './a1111/client.js';
import { imageStats } from './a1111/images-answer.js';
import type { Txt2ImgResponse } from './a1111/schemas.js';
import { type Config, loadConfig } from './config/index.js';
import { errorFields, type JobFailure, type JobPhase, toJobFailure } from './errors.js';
import { type LiveJobMachine, provideJobActors } from './job/actors.js';
import { A1111Catalog } from './job/catalog.js';
import { GenerationLine } from './job/generation-line.js';
import { type Clock, jobSettings } from './job/settings.js';
import { JournalRecorder, statePathOf, writeJournal } from './journal/journal.js';
import { withExtraKeys } from './json/source-bytes.js';
import { createLoggerFromConfig, type Logger } from './log.js';
import { ModelDownloader } from './models/downloads.js';
import { WORKER_VERSION } from './version.js';

/** A RunPod job as the handler receives it. */
export interface RunPodJob {
  id: string;
  input: unknown;
}

export interface PhaseTimings {
  booting?: number;
  waitingForApi?: number;
  verifyingModels?: number;
  postDownloadStabilizing?: number;
  ready?: number;
  inferring?: number;
  recovering?: number;
  interrupting?: number;
  total: number;
}

export interface WorkerReport {
  timings_ms: PhaseTimings;
  recoveries: number;
  notes: string[];
}

export type SuccessOutput = Txt2ImgResponse & { worker: WorkerReport };

export type JobOutcome =
  | { ok: true; jobId: string; output: SuccessOutput }
  | { ok: false; jobId: string; failure: JobFailure; report: WorkerReport };

/** What a RunPod handler returns: posted to job-done as is. */
export type RunPodResult = { output: SuccessOutput } | { error: string };

export interface RunOptions {
  /** Aborting cancels the job: A1111 is interrupted if it is generating, and the job fails CANCELLED. */
  signal?: AbortSignal;
  /** Called with A1111's progress while it generates (every PROGRESS_POLL_INTERVAL_MS). */
  onProgress?: (update: ProgressUpdate) => void;
  /** Receives every inspection event of the job's root actor (journals, the Stately inspector). */
  inspect?: (event: InspectionEvent) => void;
}

export interface JobRunnerDeps {
  config: Config;
  log: Logger;
  client: A1111Client;
  /** Drives the machine's named delays; tests pass a SimulatedClock. */
  clock?: Clock;
  /** Milliseconds for timings; `performance.now` by default. */
  now?: () => number;
  /** Receives every inspection event of every job (the Stately inspector). */
  inspect?: (event: InspectionEvent) => void;
}

export interface JobRunner {
  run(job: RunPodJob, options?: RunOptions): Promise<JobOutcome>;
  readonly machine: LiveJobMachine;
  /** The worker's requests inside A1111, in its order. */
  readonly line: GenerationLine;
  /** Checkpoint downloads, shared by the jobs that need the same file. */
  readonly downloader: ModelDownloader;
}

type JobSnapshot = SnapshotFrom<LiveJobMachine>;

/** The body posted for a failure: RunPod wants `error` to be a string, so the JSON is encoded once more. */
export function toRunPodResult(outcome: JobOutcome): RunPodResult {
  if (outcome.ok) return { output: outcome.output };
  return { error: JSON.stringify(outcome.failure) };
}

/**
 * Creates the runner that executes jobs against one A1111.
 *
 * @example
 * const runner = createJobRunner({ config, log, client: createA1111Client(config.a1111, log) });
 * const outcome = await runner.run({ id: 'job-1', input: { prompt: 'a lighthouse', steps: 20 } });
 */
export function createJobRunner(deps: JobRunnerDeps): JobRunner {
  const now = deps.now ?? (() => performance.now());
  const line = new GenerationLine(
    deps.client,
    deps.log,
    deps.config.a1111.interruptSettleTimeoutMs,
    deps.config.a1111.requestTimeoutMs,
  );
  const downloader = new ModelDownloader(deps.config.models, deps.log);
  const progressSinks = new Map<string, (update: ProgressUpdate) => void>();
  const machine = provideJobActors({
    client: deps.client,
    catalog: new A1111Catalog(deps.client),
    line,
    downloader,
    progressSinks,
    log: deps.log,
  });

  async function run(job: RunPodJob, options: RunOptions = {}): Promise<JobOutcome> {
    const log = deps.log.child({ jobId: job.id });
    const startedAt = now();
    const timings: PhaseTimings = { total: 0 };
    let current = 'booting';
    let currentPath = 'booting';
    let enteredAt = startedAt;

    const recorder = deps.config.observability.journalDir
      ? new JournalRecorder(
          {
            jobId: job.id,
            workerVersion: WORKER_VERSION,
            settings: jobSettings(deps.config, options.onProgress !== undefined),
            input: job.input,
          },
          () => now() - startedAt,
        )
      : undefined;

    // Top-level transitions are logged and timed from the machine's own `job.entered` events. The actor
    // system is inspected only when something wants its detail (a journal, the Stately inspector, debug
    // lines for sub-states): inspection makes XState describe every event, snapshot and action.
    const onEntered = ({ state, event }: { state: string; event: string }) => {
      if (state === current) return;
      const at = now();
      const phase = current as keyof PhaseTimings;
      timings[phase] = (timings[phase] ?? 0) + (at - enteredAt);
      log.info('transition', { from: current, to: state, event, elapsedMs: Math.round(at - startedAt) });
      current = state;
      enteredAt = at;
    };
    const debugLines = log.isLevelEnabled('debug');
    // Moves within a top-level state, seen during a step; logged once the step's `job.entered` lines are.
    const innerMoves: { from: string; to: string; event: string }[] = [];
    const inspect =
      deps.inspect || options.inspect || recorder || debugLines
        ? (event: InspectionEvent) => {
            deps.inspect?.(event);
            recorder?.observe(event);
            if (event.actorRef.sessionId !== event.rootId) return;
            options.inspect?.(event);
            if (!debugLines || event.type !== '@xstate.microstep') return;
            const path = statePathOf((event.snapshot as JobSnapshot).value);
            if (path === currentPath) return;
            // Within one top-level state; a move between two is the `job.entered` line.
            if (path.split('.')[0] === currentPath.split('.')[0]) {
              innerMoves.push({ from: currentPath, to: path, event: event.event.type });
            }
            currentPath = path;
          }
        : undefined;

    const actor = createActor(machine, {
      input: { jobId: job.id, input: job.input, settings: jobSettings(deps.config, options.onProgress !== undefined) },
      ...(inspect ? { inspect } : {}),
      ...(deps.clock ? { clock: deps.clock } : {}),
    });
    actor.on('job.entered', onEntered);
    if (debugLines) {
      // XState hands a step's snapshot to subscribers after its emitted events, so a state's entry line
      // comes before the moves inside it.
      const logInnerMoves = () => {
        for (const move of innerMoves.splice(0)) log.debug('transition', move);
      };
      actor.subscribe({ next: logInnerMoves, error: logInnerMoves, complete: logInnerMoves });
    }
    actor.on('api.waiting', (event) =>
      log.info('A1111 API is not ready yet', { failedProbes: event.failures, lastError: event.lastError?.message }),
    );
    actor.on('job.stabilizing', (event) => log[event.level](event.message));
    actor.on('job.recovering', (event) =>
      log.warn('A1111 routes are missing; recovering', {
        attempt: event.attempt,
        of: event.of,
        reason: event.reason?.message,
      }),
    );
    if (options.onProgress) {
      const onProgress = options.onProgress;
      actor.on('job.progress', (event) => onProgress(event.update));
      progressSinks.set(job.id, onProgress);
    }

    const onAbort = () => actor.send({ type: 'job.cancel', reason: describeAbort(options.signal) });
    let output: JobOutput;
    try {
      const done = toPromise(actor);
      actor.start();
      if (options.signal?.aborted) onAbort();
      else options.signal?.addEventListener('abort', onAbort, { once: true });
      // The job machine ends only with a JobOutput; the union comes from the setup it shares with readinessMachine.
      output = (await done) as JobOutput;
    } catch (error) {
      // The machine handles every actor error; reaching this is a defect, reported rather than dropped.
      log.error('job machine failed', { error: error instanceof Error ? error.message : String(error) });
      output = {
        status: 'failed',
        failure: toJobFailure(error, current as JobPhase),
        notes: [],
        recoveries: 0,
      };
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      progressSinks.delete(job.id);
      actor.stop();
    }

    if (
      recorder &&
      deps.config.observability.journalDir &&
      (deps.config.observability.journalKeep === 'all' || output.status === 'failed')
    ) {
      const lines = recorder.finish(output);
      await writeJournal(deps.config.observability.journalDir, job.id, lines).then(
        (file) => log.info('journal written', { file }),
        (error: unknown) => log.warn('could not write the job journal', errorFields(error)),
      );
    }
    const endedAt = now();
    const phase = current as keyof PhaseTimings;
    if (current !== 'succeeded' && current !== 'failed') timings[phase] = (timings[phase] ?? 0) + (endedAt - enteredAt);
    timings.total = endedAt - startedAt;
    const report: WorkerReport = {
      timings_ms: roundTimings(timings),
      recoveries: output.recoveries,
      notes: output.notes,
    };
    if (output.status === 'succeeded') {
      const { response } = output;
      const images = imageStats(response);
      log.info('job succeeded', { images: images.count, imageBytes: images.chars, totalMs: report.timings_ms.total });
      return { ok: true, jobId: job.id, output: withExtraKeys(response, { worker: report }) };
    }
    log.warn('job failed', {
      code: output.failure.code,
      phase: output.failure.phase,
      message: output.failure.message,
      totalMs: report.timings_ms.total,
    });
    return { ok: false, jobId: job.id, failure: output.failure, report };
  }

  return { run, machine, line, downloader };
}

function describeAbort(signal: AbortSignal | undefined): string {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error && reason.name !== 'AbortError') return reason.message;
  return typeof reason === 'string' ? reason : 'cancelled by the caller';
}

function roundTimings(timings: PhaseTimings): PhaseTimings {
  const out: PhaseTimings = { total: Math.round(timings.total * 10) / 10 };
  for (const [key, value] of Object.entries(timings)) {
    if (key !== 'total' && typeof value === 'number') out[key as keyof PhaseTimings] = Math.round(value * 10) / 10;
  }
  return out;
}

let defaultRunner: JobRunner | undefined;

/**
 * RunPod-style entry point: `handler({ id, input })` with settings from the environment.
 *
 * @example
 * const result = await handler({ id: 'local_test', input: { prompt: 'a lighthouse' } });
 * if ('error' in result) console.error(JSON.parse(result.error).code);
 */
export async function handler(job: RunPodJob, options?: RunOptions): Promise<RunPodResult> {
  if (!defaultRunner) {
    const config = loadConfig();
    const log = createLoggerFromConfig(config);
    defaultRunner = createJobRunner({ config, log, client: createA1111Client(config.a1111, log) });
  }
  return toRunPodResult(await defaultRunner.run(job, options));
}
