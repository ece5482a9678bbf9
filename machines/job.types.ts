/**
 * Types shared by the job machine and the actors that implement its I/O. Type-only: nothing here runs.
 */
import type { A1111Request } from '../src/a1111/request-fields.js';
import type { SdModel } from '../src/a1111/schemas.js';
import type { JobFailure, JobPhase } from '../src/errors.js';
import type { ModelSource, NetworkSources } from '../src/models/model-source.js';

/** The limits a job runs under; delays and guards read them, so a journal holds everything replay needs. */
export interface JobSettings {
  /** Whole-job deadline; 0 = none. */
  jobTimeoutMs: number;
  /** How long `waitingForApi` may last; 0 = forever. */
  readyTimeoutMs: number;
  readyPollIntervalMs: number;
  /** Emit `api.waiting` every Nth failed probe. */
  readyLogEvery: number;
  routeRecoveryAttempts: number;
  routeRecoveryDelayMs: number;
  modelRegistryWaitMs: number;
  /** How often `inferring` reads A1111's progress; 0 = not at all. */
  progressIntervalMs: number;
}

export interface JobMachineInput {
  jobId: string;
  input: unknown;
  settings: JobSettings;
}

/** What `booting` produces from the raw input: a checked request for one operation. */
export interface PreparedJob {
  /** The operation's key, `POST /sdapi/v1/txt2img` (src/a1111/operations.ts). */
  operation: string;
  request: A1111Request;
  /** Image URLs left to fetch (`fetchingImages`). */
  imageUrls: number;
  /** The operation names models or samplers to check against A1111 (`verifyingModels`). */
  verify: boolean;
  /** The checkpoint the job names (override_settings.sd_model_checkpoint or model.checkpoint), if any. */
  checkpoint: string | null;
  /** The job's `model` block's checkpoint, when it names one. */
  model: ModelSource | null;
  /** The LoRAs and VAE the job's `model` block brings, when it names any. */
  networks?: NetworkSources;
  /** The job's `output` block, when it has one (how its images come back). */
  output?: OutputChoice;
  /** Things the worker noticed or changed, reported with the result. */
  notes: string[];
}

/** What `verifyingModels` produces: the request as it will be sent. */
export interface VerifiedJob {
  request: A1111Request;
  notes: string[];
  /** True when a checkpoint was downloaded and A1111 must be made to see it (postDownloadStabilizing). */
  downloaded: boolean;
}

export interface VerifyModelsInput {
  jobId: string;
  job: PreparedJob;
  /** The list the last readiness probe returned; `null` when it must be fetched again. */
  models: SdModel[] | null;
  /** A download already happened in this job; a second one is not attempted. */
  downloadDone: boolean;
}

/** A progress reading: A1111 generating, or the worker downloading the job's checkpoint. */
export interface ProgressUpdate {
  stage: 'generating' | 'downloading';
  /** 0..1 */
  progress: number;
  etaSeconds: number;
  step: number;
  steps: number;
  jobNo: number;
  jobCount: number;
  /** While downloading: bytes so far and in all (null when the server did not say). */
  bytes?: number;
  totalBytes?: number | null;
}

/** How a job's images come back (its `output` block, src/job/output-block.ts). */
export interface OutputChoice {
  /** `auto`: inline, uploaded when too large for RunPod; `inline`: never uploaded; `upload`: always. */
  delivery: 'auto' | 'inline' | 'upload';
  /** `png` keeps A1111's bytes; `webp` and `jpeg` are re-encoded by the worker. */
  format: 'png' | 'webp' | 'jpeg';
  /** For webp and jpeg, 1 to 100. */
  quality: number;
}

/** An image of the result stored in the bucket (`worker.uploads` of the result lists them). */
export interface UploadedImage {
  key: string;
  url: string;
  bytes: number;
  sha256: string;
  content_type: string;
}

/** What `delivering` takes: A1111's answer and how the job wants its images. */
export interface DeliverInput {
  jobId: string;
  operation: string;
  response: unknown;
  /** The job's `output` block; null for the defaults (and in journals recorded before it existed). */
  output: OutputChoice | null;
}

/** What `delivering` produces: the answer as it is posted (images inline or their URLs). */
export interface Delivered {
  response: unknown;
  uploads: UploadedImage[];
  notes: string[];
}

export type JobOutput =
  | { status: 'succeeded'; response: unknown; notes: string[]; recoveries: number; uploads?: UploadedImage[] }
  | { status: 'failed'; failure: JobFailure; notes: string[]; recoveries: number };

/** What the start-up readiness wait ends with; `probes` counts the probes it took. */
export type ReadinessOutput =
  | { status: 'ready'; models: SdModel[]; probes: number }
  | { status: 'failed'; failure: JobFailure; probes: number };

export type JobEvent = { type: 'job.cancel'; reason?: string } | { type: 'a1111.progress'; update: ProgressUpdate };

export type JobEmitted =
  /**
   * A top-level state was entered (`event` is the type of the event that led there): the handler logs
   * the transition and times the phases from these, so it needs no inspection of the actor system.
   */
  | { type: 'job.entered'; state: JobPhase | 'succeeded' | 'failed'; event: string }
  | { type: 'api.waiting'; failures: number; lastError: JobFailure | null }
  | { type: 'job.progress'; update: ProgressUpdate }
  | { type: 'job.recovering'; attempt: number; of: number; reason: JobFailure | null }
  /** A step after a checkpoint download: each is logged, a failed one as a warning. */
  | { type: 'job.stabilizing'; level: 'info' | 'warn'; message: string };

/**
 * What became of a job's generation when the job stopped wanting it:
 * - `sent`: /interrupt was sent while A1111 ran it;
 * - `answered`: A1111 answered it before it could be interrupted;
 * - `queued`: it waits behind another request and is interrupted when it starts;
 * - `pending`: A1111 had not started generating it (a checkpoint load, say) within the settle timeout;
 *   it is interrupted when it starts;
 * - `left-to-finish`: interrupting could have hit the request behind it (it was about to finish, or the
 *   request behind looks the same in /progress), so it runs to the end.
 */
export type InterruptStatus = 'sent' | 'answered' | 'queued' | 'pending' | 'left-to-finish';

export interface InterruptResult {
  interrupt: InterruptStatus;
  /** A1111 is done with the request: the next one can have the GPU. */
  settled: boolean;
}
