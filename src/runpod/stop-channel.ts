/**
 * RunPod's stop channel: long-polls `/job-stop/` for `{"jobsToStop": [...]}` and cancels each listed
 * job that runs here. Watched until `until` aborts (the jobs running at shutdown have finished:
 * RunPod may still cancel one of them).
 */
import { errorFields } from '../errors.js';
import type { Logger } from '../log/index.js';
import { type ControlPlane, ThrottledError } from './control-plane.js';
import { pause } from './job-intake.js';

export async function watchStopChannel(options: {
  controlPlane: ControlPlane;
  log: Logger;
  until: AbortSignal;
  throttleWaitMs: number;
  /** Cancels a job; false when it does not run here. */
  cancel(jobId: string): boolean;
}): Promise<void> {
  const { controlPlane, log, until } = options;
  if (!controlPlane.hasStopChannel) {
    log.warn('no stop channel: RUNPOD_WEBHOOK_GET_JOB has no /job-take/ to derive /job-stop/ from');
    return;
  }
  while (!until.aborted) {
    try {
      const ids = await controlPlane.pollStop(until);
      for (const id of ids) {
        if (!options.cancel(id)) log.debug('stop signal for a job not running here', { id });
      }
      if (ids.length === 0) await pause(1_000, until);
    } catch (error) {
      if (until.aborted) break;
      if (error instanceof ThrottledError) await pause(options.throttleWaitMs, until);
      else {
        log.error('stop channel request failed', errorFields(error));
        await pause(1_000, until);
      }
    }
  }
}
