/**
 * What RunPod's runtime needs from the worker it runs, and nothing more: a handler that runs one job,
 * and a backend whose readiness and loss it can wait for. The runtime knows no A1111; the composition
 * root (src/worker.ts) fills these in.
 */

/** A RunPod job as the runtime hands it to the handler: its id and its input, any JSON. */
export interface RunPodJob {
  id: string;
  input: unknown;
}

/** A progress reading as a client sees it while the job is IN_PROGRESS; `progress` runs from 0 to 1. */
export interface ProgressOutput {
  progress: number;
  [key: string]: unknown;
}

/**
 * The failure a job ends with, posted to RunPod as `{"error": "<this, as a JSON string>"}`: a code
 * from src/errors.ts, a message a person can act on, and the details.
 */
export interface JobFailureBody {
  code: string;
  message: string;
  phase: string | null;
  retryable: boolean;
  details: Record<string, unknown>;
}

/** What the metrics count of a finished job. */
export interface JobStats {
  timingsMs: Readonly<Record<string, number | undefined>>;
  recoveries: number;
}

/**
 * What a failure says of the backend: `suspect` (it crashed or stopped answering: wait until it answers
 * again before taking more jobs), `gone` (it will not serve again: ask RunPod for a fresh worker).
 */
export type BackendVerdict = 'suspect' | 'gone';

/** How a job ended, in the runtime's terms. */
export type HandlerOutcome =
  | { ok: true; jobId: string; output: unknown; stats: JobStats }
  | {
      ok: false;
      jobId: string;
      failure: JobFailureBody;
      stats: JobStats;
      /** Set when the failure is the backend's (the crash policy acts on it). */
      backend?: BackendVerdict;
    };

export interface HandlerOptions {
  /** Aborted when the job is cancelled (RunPod's stop channel, the local API, a signal). */
  signal?: AbortSignal;
  onProgress?: (progress: ProgressOutput) => void;
  /**
   * Starts the job's final post before its output is complete: the post's body so far is
   * `{"output":`, and the handler writes the output's first bytes as it has them. The runtime ends
   * the post with the rest of the outcome's body when that body begins with what was written, and
   * drops it otherwise (then posts the outcome as usual). Given when the runtime can stream a result.
   */
  openResult?: () => ResultStream;
}

/** The job's final post, open while the output's first bytes are written. */
export interface ResultStream {
  write(bytes: Buffer): void;
  /** Drops the unfinished post; the outcome is posted as usual. */
  abort(reason: string): void;
}

export interface JobHandler {
  run(job: RunPodJob, options?: HandlerOptions): Promise<HandlerOutcome>;
  /**
   * For local runs: the files an output holds (images), and the output with their paths in their
   * place, for a `result.json` a person can read.
   */
  localFiles(output: unknown, dir: string): { files: { path: string; data: Buffer }[]; output: unknown };
}

export type BackendReadiness =
  | { ready: true; waitedMs: number; detail: Record<string, unknown> }
  | { ready: false; waitedMs: number; message: string; detail: Record<string, unknown> };

/** What the warm-up before the first job-take came to. */
export type WarmUpResult =
  | { ran: false; reason: string }
  | { ran: true; ok: true; ms: number }
  | { ran: true; ok: false; ms: number; message: string; code: string; backend?: BackendVerdict };

/** The backend the handler talks to, as far as the runtime's lifecycle depends on it. */
export interface Backend {
  /** Waits until the backend can serve jobs, or its readiness deadline passes (or `signal` aborts). */
  waitUntilReady(signal: AbortSignal): Promise<BackendReadiness>;
  /** Runs the warm-up work once the backend is ready, before the first job (`signal` stops it). */
  warmUp(signal: AbortSignal): Promise<WarmUpResult>;
  /** Resolves, with what happened, when the backend is gone for good; never, when that cannot be known. */
  readonly lost: Promise<string>;
  /** The crash policy in a sentence, for the start-up line. */
  readonly crashPolicy: string;
}
