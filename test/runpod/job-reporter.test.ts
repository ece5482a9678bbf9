/**
 * The final post of one job, against the fake control plane: whatever the result, the job ends.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { ControlPlane } from '../../src/runpod/control-plane.js';
import { JobReporter } from '../../src/runpod/job-reporter.js';
import { runPodUrls } from '../../src/runpod/urls.js';
import { FakeRunPod } from '../support/fake-runpod.js';
import { captureLog } from '../support/logs.js';

const planes: FakeRunPod[] = [];
afterEach(async () => {
  await Promise.all(planes.splice(0).map((plane) => plane.close()));
});

async function reporterFor(
  jobId: string,
  options: { progressAnswerDelayMs?: number; progressIntervalMs?: number } = {},
) {
  const runpod = new FakeRunPod(options);
  planes.push(runpod);
  await runpod.start();
  const config = loadConfig({ ...runpod.env(), A1111_BASE_URL: 'http://127.0.0.1:3000' });
  const plane = new ControlPlane({ urls: runPodUrls(config.runpod, 'pod-1'), apiKey: 'k', longPollTimeoutMs: 1_000 });
  const captured = captureLog({ format: 'json' });
  const reporter = new JobReporter(
    jobId,
    plane,
    { progressIntervalMs: options.progressIntervalMs ?? 0, retries: 0, retryDelayMs: 0 },
    captured.log.child({ jobId }),
  );
  return { runpod, reporter, ...captured };
}

describe('the final post of a job', () => {
  it('posts the result as it is', async () => {
    const { runpod, reporter } = await reporterFor('job-plain');

    const outcome = await reporter.finish({ output: { images: ['aGk='], seeds: [1] } });

    expect(outcome.ok).toBe(true);
    expect(reporter.encodingFailure).toBeNull();
    expect(runpod.results('job-plain').map((r) => r.body)).toEqual(['{"output":{"images":["aGk="],"seeds":[1]}}']);
  });

  it('waits for a progress post already on the wire before posting the result, so RunPod applies them in order', async () => {
    const { runpod, reporter } = await reporterFor('job-slow-progress', {
      progressAnswerDelayMs: 800,
      progressIntervalMs: 10,
    });
    reporter.progress({ stage: 'generating', progress: 0.5, etaSeconds: 1, step: 5, steps: 10, jobNo: 0, jobCount: 1 });
    const progress = await runpod.waitFor((r) => r.kind === 'job-done' && r.body.startsWith('{"status":"IN_PROGRESS"'));

    const outcome = await reporter.finish({ output: { images: [] } });

    expect(outcome.ok).toBe(true);
    const [result] = runpod.results('job-slow-progress');
    // RunPod had answered the progress post, so it was done with it, before the result arrived.
    expect(progress.answeredAt).toBeDefined();
    expect(result!.at).toBeGreaterThanOrEqual(progress.answeredAt!);
    expect(runpod.of('job-done', 'job-slow-progress')).toHaveLength(2);
  });

  it('does not post again when RunPod refuses the post itself (401), and says what to check', async () => {
    const { runpod, reporter, records } = await reporterFor('job-unauthorized');
    runpod.scriptDone('job-unauthorized', 401);

    const outcome = await reporter.finish({ output: { images: ['aGk='] } });

    expect(outcome).toMatchObject({ ok: false, status: 401 });
    expect(runpod.of('job-done', 'job-unauthorized')).toHaveLength(1);
    expect(
      records().find((r) => r['message'] === 'RunPod refused the post itself, not the result; not posting again'),
    ).toMatchObject({
      level: 'error',
      jobId: 'job-unauthorized',
      hint: 'check RUNPOD_AI_API_KEY',
    });
  });

  it('answers RESULT_REJECTED, without size advice, for a refusal that is not about size (422)', async () => {
    const { runpod, reporter } = await reporterFor('job-unprocessable');
    runpod.scriptDone('job-unprocessable', 422);

    await reporter.finish({ output: { images: ['aGk='] } });

    const [, fallback] = runpod.of('job-done', 'job-unprocessable');
    const failure = JSON.parse(JSON.parse(fallback!.body).error);
    expect(failure).toMatchObject({ code: 'RESULT_REJECTED', details: { status: 422 } });
    expect(failure.message).not.toMatch(/size limit/);
  });

  it('posts an INTERNAL error, logged with the job id, for a result that cannot be written as JSON', async () => {
    const { runpod, reporter, records } = await reporterFor('job-unencodable');

    const outcome = await reporter.finish({ output: { seed: 10n } });

    expect(outcome.ok).toBe(true);
    const [posted] = runpod.results('job-unencodable');
    const error = JSON.parse(JSON.parse(posted!.body).error);
    expect(error).toMatchObject({ code: 'INTERNAL', retryable: false });
    expect(error.message).toContain('BigInt');
    // The worker counts the job by what was posted.
    expect(reporter.encodingFailure).toEqual(error);
    expect(records().find((r) => r['level'] === 'error')).toMatchObject({
      jobId: 'job-unencodable',
      message: 'the job result could not be encoded; posting an INTERNAL error instead',
    });
  });
});

describe('a result streamed while it is written (openResult)', () => {
  it('opens after a progress post on the wire, sends no progress after it, and ends with the rest of the result', async () => {
    const { runpod, reporter } = await reporterFor('job-streamed', {
      progressAnswerDelayMs: 500,
      progressIntervalMs: 10,
    });
    reporter.progress({ stage: 'generating', progress: 0.5, etaSeconds: 1, step: 5, steps: 10, jobNo: 0, jobCount: 1 });
    const progress = await runpod.waitFor((r) => r.kind === 'job-done' && r.body.startsWith('{"status":"IN_PROGRESS"'));

    const answer = Buffer.from('{"images":["aGk="],"info":"{}"}');
    const stream = reporter.openResult();
    stream.write(answer.subarray(0, 20));
    reporter.progress({ stage: 'generating', progress: 0.9, etaSeconds: 0, step: 9, steps: 10, jobNo: 0, jobCount: 1 });
    const outcome = await reporter.finish({ output: { images: ['aGk='], info: '{}' } });

    expect(outcome.ok).toBe(true);
    expect(reporter.resultStreamed).toBe(true);
    const [result] = runpod.results('job-streamed');
    expect(result!.body).toBe('{"output":{"images":["aGk="],"info":"{}"}}');
    expect(result!.headers['transfer-encoding']).toBe('chunked');
    expect(result!.began).toBeGreaterThanOrEqual(progress.answeredAt!);
    expect(runpod.of('job-done', 'job-streamed')).toHaveLength(2);
  });

  it('is dropped, and the outcome posted as usual, when the outcome does not begin with what was written', async () => {
    const { runpod, reporter } = await reporterFor('job-dropped');
    const written = runpod.bodyBytes('/job-dropped', '{"output":{"images":["aGk'.length);
    const stream = reporter.openResult();
    stream.write(Buffer.from('{"images":["aGk'));
    await written;

    const outcome = await reporter.finish({ error: '{"code":"BACKEND_ERROR"}' });

    expect(outcome.ok).toBe(true);
    expect(reporter.resultStreamed).toBe(false);
    expect(runpod.unfinished.map((post) => post.body)).toEqual(['{"output":{"images":["aGk']);
    expect(runpod.results('job-dropped').map((r) => r.body)).toEqual(['{"error":"{\\"code\\":\\"BACKEND_ERROR\\"}"}']);
  });
});

describe('a streamed post that cannot be opened', () => {
  it('leaves the result to the usual post, without an unhandled rejection', async () => {
    const runpod = new FakeRunPod();
    planes.push(runpod);
    await runpod.start();
    const config = loadConfig({ ...runpod.env(), A1111_BASE_URL: 'http://127.0.0.1:3000' });
    class Unopenable extends ControlPlane {
      override openJobDone(): never {
        throw new Error('Invalid character in header content ["Authorization"]');
      }
    }
    const plane = new Unopenable({ urls: runPodUrls(config.runpod, 'pod-1'), apiKey: 'k', longPollTimeoutMs: 1_000 });
    const { log } = captureLog({ format: 'json' });
    const reporter = new JobReporter(
      'job-unopenable',
      plane,
      { progressIntervalMs: 0, retries: 0, retryDelayMs: 0 },
      log,
    );

    reporter.openResult().write(Buffer.from('{"images":[]'));
    const outcome = await reporter.finish({ output: { images: [] } });

    expect(outcome.ok).toBe(true);
    expect(reporter.resultStreamed).toBe(false);
    expect(runpod.results('job-unopenable').map((r) => r.body)).toEqual(['{"output":{"images":[]}}']);
  });
});
