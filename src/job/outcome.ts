/** How a job ended, as the job runner reports it: the output on success, the failure otherwise. */
import type { Txt2ImgResponse } from '../a1111/schemas.js';
import type { JobFailure } from '../errors.js';

export type PhaseTimings = {
  booting?: number;
  waitingForApi?: number;
  verifyingModels?: number;
  postDownloadStabilizing?: number;
  ready?: number;
  inferring?: number;
  recovering?: number;
  interrupting?: number;
  total: number;
};

/** The `worker` key of a successful output, and what a failed job reports beside its failure. */
export interface WorkerReport {
  timings_ms: PhaseTimings;
  recoveries: number;
  notes: string[];
}

/** A1111's answer, passed through unchanged, plus the worker's report. */
export type SuccessOutput = Txt2ImgResponse & { worker: WorkerReport };

export type JobOutcome =
  | { ok: true; jobId: string; output: SuccessOutput }
  | { ok: false; jobId: string; failure: JobFailure; report: WorkerReport };
