import { describe, expect, it } from 'vitest';
import { runPodUrls, withQuery } from '../../src/runpod/urls.js';

const settings = {
  getJobUrl: 'https://api.runpod.ai/v2/ep1/job-take/$RUNPOD_POD_ID?gpu=NVIDIA+RTX+A5000',
  postOutputUrl: 'https://api.runpod.ai/v2/ep1/job-done/$RUNPOD_POD_ID/$ID?gpu=NVIDIA+RTX+A5000',
  pingUrl: 'https://api.runpod.ai/v2/ep1/ping/$RUNPOD_POD_ID?gpu=NVIDIA+RTX+A5000',
};

describe('RunPod URLs', () => {
  const urls = runPodUrls(settings, 'pod-9');

  it('takes one job with job_in_progress, or a batch from the batch route', () => {
    expect(urls.jobTake(1, false)).toBe(
      'https://api.runpod.ai/v2/ep1/job-take/pod-9?gpu=NVIDIA+RTX+A5000&job_in_progress=0',
    );
    expect(urls.jobTake(3, true)).toBe(
      'https://api.runpod.ai/v2/ep1/job-take-batch/pod-9?gpu=NVIDIA+RTX+A5000&batch_size=3&job_in_progress=1',
    );
  });

  it('posts results to job-done with the job id and isStream', () => {
    expect(urls.jobDone('abc-u1', false)).toBe(
      'https://api.runpod.ai/v2/ep1/job-done/pod-9/abc-u1?gpu=NVIDIA+RTX+A5000&isStream=false',
    );
  });

  it('derives the stop channel from job-take, keeping the query', () => {
    expect(urls.jobStop()).toBe('https://api.runpod.ai/v2/ep1/job-stop/pod-9?gpu=NVIDIA+RTX+A5000');
    expect(runPodUrls({ ...settings, getJobUrl: 'http://x/take?x=1' }, 'w').jobStop()).toBeUndefined();
  });

  it('pings with the comma-joined job ids, leaving job_id out when there are none', () => {
    expect(urls.ping(['a', 'b'], '0.1.0')).toBe(
      'https://api.runpod.ai/v2/ep1/ping/pod-9?gpu=NVIDIA+RTX+A5000&job_id=a%2Cb&runpod_version=0.1.0',
    );
    expect(urls.ping([], '0.1.0')).toBe(
      'https://api.runpod.ai/v2/ep1/ping/pod-9?gpu=NVIDIA+RTX+A5000&runpod_version=0.1.0',
    );
  });

  it('starts a query when the template has none', () => {
    expect(withQuery('http://x/job-take/w', { job_in_progress: '0' })).toBe('http://x/job-take/w?job_in_progress=0');
  });
});

describe('job ids in URLs', () => {
  it('go into the path percent-encoded, so an id with # ? / or a space still names its job', () => {
    const urls = runPodUrls(
      {
        getJobUrl: 'https://api.runpod.ai/v2/ep/job-take/$ID',
        postOutputUrl: 'https://api.runpod.ai/v2/ep/job-done/$RUNPOD_POD_ID/$ID?gpu=A',
        pingUrl: undefined,
      },
      'pod-1',
    );
    expect(urls.jobDone('a#b?c/d e', false)).toBe(
      'https://api.runpod.ai/v2/ep/job-done/pod-1/a%23b%3Fc%2Fd%20e?gpu=A&isStream=false',
    );
  });
});
