/**
 * The URLs of RunPod's worker protocol, built from the templates RunPod puts in the environment:
 * `$ID` and `$RUNPOD_POD_ID` are substituted as RunPod's own runtime does, and query parameters are
 * appended with `?` or `&` as the template needs. A job id goes into a path percent-encoded (RunPod's
 * ids never need it; an id with `#`, `?`, `/` or a space would otherwise name another URL or none).
 */
import type { RunPodSettings } from '../config/index.js';

/** Appends query parameters to a URL template that may or may not already carry a query. */
export function withQuery(url: string, params: Record<string, string | number | undefined>): string {
  const parts = Object.entries(params)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `${key}=${encodeURIComponent(String(value))}`);
  if (parts.length === 0) return url;
  return `${url}${url.includes('?') ? '&' : '?'}${parts.join('&')}`;
}

export interface RunPodUrls {
  /** Job-take: one job, or a batch of `batchSize` from the batch route. */
  jobTake(batchSize: number, jobInProgress: boolean): string;
  jobDone(jobId: string, isStream: boolean): string;
  /** The stop channel; undefined when the job-take URL has no `/job-take/` to derive it from. */
  jobStop(): string | undefined;
  ping(jobIds: readonly string[], version: string): string | undefined;
}

/**
 * @example
 * const urls = runPodUrls(config.runpod, 'pod-1');
 * urls.jobTake(1, false); // https://api.runpod.ai/v2/ep/job-take/pod-1?gpu=A5000&job_in_progress=0
 */
export function runPodUrls(
  settings: Pick<RunPodSettings, 'getJobUrl' | 'postOutputUrl' | 'pingUrl'>,
  workerId: string,
): RunPodUrls {
  const worker = (template: string) => template.replaceAll('$RUNPOD_POD_ID', workerId);
  const getJob = settings.getJobUrl ? worker(settings.getJobUrl).replaceAll('$ID', workerId) : '';
  const postOutput = settings.postOutputUrl ? worker(settings.postOutputUrl) : undefined;
  return {
    jobTake(batchSize, jobInProgress) {
      const inProgress = jobInProgress ? '1' : '0';
      if (batchSize <= 1) return withQuery(getJob, { job_in_progress: inProgress });
      return withQuery(getJob.replace('/job-take/', '/job-take-batch/'), {
        batch_size: batchSize,
        job_in_progress: inProgress,
      });
    },
    jobDone(jobId, isStream) {
      if (!postOutput) throw new Error('RUNPOD_WEBHOOK_POST_OUTPUT is not set');
      return withQuery(postOutput.replaceAll('$ID', encodeURIComponent(jobId)), { isStream: String(isStream) });
    },
    jobStop() {
      return getJob.includes('/job-take/') ? getJob.replace('/job-take/', '/job-stop/') : undefined;
    },
    ping(jobIds, version) {
      if (!settings.pingUrl) return undefined;
      return withQuery(worker(settings.pingUrl), {
        job_id: jobIds.length > 0 ? jobIds.join(',') : undefined,
        runpod_version: version,
      });
    },
  };
}
