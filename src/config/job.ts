/** The limits of one job. */
import { integer, settingGroup } from './declare.js';

export const JOB_SETTINGS = settingGroup('Jobs', {
  timeoutMs: integer('JOB_TIMEOUT_MS', {
    default: 0,
    min: 0,
    max: 86_400_000,
    zeroMeans: 'no deadline',
    description:
      "Whole-job deadline (readiness, verification and generation). Set it below the endpoint's execution timeout so a job ends with BACKEND_TIMEOUT and an interrupted GPU rather than being killed.",
  }),
  progressPollIntervalMs: integer('PROGRESS_POLL_INTERVAL_MS', {
    default: 1_000,
    min: 0,
    max: 60_000,
    zeroMeans: 'no progress polling',
    description: 'How often GET /sdapi/v1/progress is read while A1111 generates.',
  }),
});
