/**
 * A job's progress: A1111's /progress readings and the job's checkpoint download in the machine's terms
 * (`ProgressUpdate`), and as a client sees it while the job is IN_PROGRESS (`progressOutput`).
 */
import type { ProgressUpdate } from '../../machines/job.types.js';
import type { Progress } from '../a1111/schemas.js';
import type { DownloadProgress } from '../models/downloads.js';

/** A /progress reading in the worker's terms. */
export function toProgressUpdate(progress: Progress): ProgressUpdate {
  const state = progress.state;
  return {
    stage: 'generating',
    progress: Math.round(progress.progress * 1000) / 1000,
    etaSeconds: Math.max(0, Math.round(progress.eta_relative * 10) / 10),
    step: state.sampling_step,
    steps: state.sampling_steps,
    jobNo: state.job_no,
    jobCount: state.job_count,
  };
}

/** A download reading in the terms of a job's progress. */
export function downloadUpdate(progress: DownloadProgress): ProgressUpdate {
  const fraction = progress.totalBytes ? progress.bytes / progress.totalBytes : 0;
  const remaining = progress.totalBytes ? progress.totalBytes - progress.bytes : 0;
  return {
    stage: 'downloading',
    progress: Math.round(fraction * 1000) / 1000,
    etaSeconds: progress.bytesPerSecond > 0 ? Math.round((remaining / progress.bytesPerSecond) * 10) / 10 : 0,
    step: 0,
    steps: 0,
    jobNo: 0,
    jobCount: 0,
    bytes: progress.bytes,
    totalBytes: progress.totalBytes,
  };
}

/** The progress a client sees as the job's output while it is IN_PROGRESS. */
export function progressOutput(update: ProgressUpdate): { progress: number; [key: string]: unknown } {
  if (update.stage === 'downloading') {
    return {
      stage: 'downloading',
      progress: update.progress,
      bytes: update.bytes ?? 0,
      total_bytes: update.totalBytes ?? null,
      eta_seconds: update.etaSeconds,
    };
  }
  return {
    stage: 'generating',
    progress: update.progress,
    step: update.step,
    steps: update.steps,
    eta_seconds: update.etaSeconds,
    batch: update.jobNo + 1,
    batches: update.jobCount,
  };
}
