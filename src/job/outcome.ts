/** How a job ended, as the job runner reports it: the output on success, the failure otherwise. */
import type { UploadedImage } from '../../machines/job.types.js';
import type { Txt2ImgResponse } from '../a1111/schemas.js';
import type { JobFailure } from '../errors.js';

export type PhaseTimings = {
  booting?: number;
  fetchingImages?: number;
  waitingForApi?: number;
  verifyingModels?: number;
  postDownloadStabilizing?: number;
  ready?: number;
  inferring?: number;
  recovering?: number;
  delivering?: number;
  interrupting?: number;
  total: number;
};

/** The `worker` key of a successful output, and what a failed job reports beside its failure. */
export interface WorkerReport {
  timings_ms: PhaseTimings;
  recoveries: number;
  notes: string[];
  /** The images stored in the bucket, when the result's images are URLs. */
  uploads?: UploadedImage[];
}

/** A generation's output: A1111's answer, passed through unchanged, plus the worker's report. */
export type GenerationOutput = Txt2ImgResponse & { worker: WorkerReport };

/**
 * How a job ended. On success, `output` is A1111's answer passed through: an object answer (every
 * operation that returns one) with the worker's report as its `worker` key, any other answer (a read
 * route's list, a refresh's null) as it is.
 */
export type JobOutcome =
  | { ok: true; jobId: string; output: unknown; report: WorkerReport }
  | { ok: false; jobId: string; failure: JobFailure; report: WorkerReport };
