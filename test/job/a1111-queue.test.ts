/**
 * The worker's view of A1111's queue, where the order of /progress readings and interrupts decides which
 * request an interrupt hits. These cases need readings held back and released in a chosen order, which
 * the simulator (answering at once) cannot give, so a scripted client stands in for A1111 here; the
 * same behaviour against the simulator is in test/handler/interrupt.test.ts and concurrency.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { A1111Client } from '../../src/a1111/client.js';
import { operationOf, TXT2IMG } from '../../src/a1111/operations.js';
import type { Progress, Txt2ImgResponse } from '../../src/a1111/schemas.js';
import { WorkerError } from '../../src/errors.js';
import { A1111Queue } from '../../src/job/a1111-queue.js';
import { captureLog } from '../support/logs.js';

function running(steps: number, extra: Partial<Progress['state']> = {}): Progress {
  return {
    progress: 0.3,
    eta_relative: 1,
    state: {
      job_count: 1,
      job_no: 0,
      sampling_step: 3,
      sampling_steps: steps,
      interrupted: false,
      job_timestamp: '20260101000000',
      ...extra,
    },
  };
}
const idle: Progress = {
  progress: 0,
  eta_relative: 0,
  state: { job_count: 0, job_no: 0, sampling_step: 0, sampling_steps: 0, interrupted: false },
};

/** A client whose answers the test hands out one by one. */
function scriptedClient() {
  const readings: { resolve: (p: Progress) => void }[] = [];
  const answers = new Map<string, { resolve: (r: Txt2ImgResponse) => void; reject: (e: unknown) => void }>();
  const interrupts: number[] = [];
  const client = {
    send: (_operation: unknown, request: { prompt: string }) =>
      new Promise<Txt2ImgResponse>((resolve, reject) => answers.set(request.prompt, { resolve, reject })),
    getProgress: () => new Promise<Progress>((resolve) => readings.push({ resolve })),
    interrupt: async () => {
      interrupts.push(Date.now());
    },
  } as unknown as A1111Client;
  return { client, readings, answers, interrupts };
}

/** Lets every reaction to what the test just released run. */
const reactions = () => new Promise((resolve) => setImmediate(resolve));

describe('the worker’s view of A1111’s queue', () => {
  it('does not take a reading asked for before the interrupt as proof the timed-out request ended', async () => {
    const { client, readings, answers, interrupts } = scriptedClient();
    const queue = new A1111Queue(client, captureLog().log, 5_000, 60_000);
    void queue.submit('job-a', TXT2IMG, { prompt: 'a', steps: 10 });
    answers.get('a')!.reject(new WorkerError('BACKEND_TIMEOUT', 'no answer in time'));
    await expect.poll(() => readings.length).toBe(1); // the watcher of the timed-out request asks first…
    const stopping = queue.interrupt('job-a');
    await expect.poll(() => readings.length).toBe(2); // …then the interrupt's watcher

    readings[1]!.resolve(running(10));
    await expect.poll(() => interrupts.length).toBe(1);
    // The first reading was taken before the interrupt: A1111 had not seen it yet.
    readings[0]!.resolve(running(10));
    await reactions();
    expect(queue.jobIds).toEqual(['job-a']);

    // A reading taken after the interrupt that shows A1111 idle ends it.
    await expect.poll(() => readings.length, { timeout: 2_000 }).toBe(3);
    readings[2]!.resolve(idle);
    await expect.poll(() => queue.jobIds, { timeout: 2_000 }).toEqual([]);
    await expect(stopping).resolves.toEqual({ interrupt: 'sent', settled: true });
  });

  it('leaves an unwanted request to finish when any request behind it, not just the next, looks the same', async () => {
    const { client, readings, interrupts } = scriptedClient();
    const queue = new A1111Queue(client, captureLog().log, 200, 60_000);
    void queue.submit('job-unwanted', TXT2IMG, { prompt: 'unwanted', steps: 30 });
    void queue.submit('job-answering', TXT2IMG, { prompt: 'answering', steps: 20 }); // finished, its answer still on the way
    void queue.submit('job-wanted', TXT2IMG, { prompt: 'wanted', steps: 30 });

    const stopping = queue.interrupt('job-unwanted');
    await expect.poll(() => readings.length).toBe(1);
    // The reading shows a 30-step generation: the unwanted one, or the wanted one already running.
    readings[0]!.resolve(running(30));

    await expect(stopping).resolves.toEqual({ interrupt: 'left-to-finish', settled: false });
    expect(interrupts).toEqual([]);
  });

  it('tells an upscale from the generation behind it by the job A1111 names, and interrupts only the upscale', async () => {
    const { client, readings, answers, interrupts } = scriptedClient();
    const queue = new A1111Queue(client, captureLog().log, 5_000, 60_000);
    const batch = operationOf('POST /sdapi/v1/extra-batch-images');
    const imageList = [1, 2, 3].map((n) => ({ data: 'x', name: String(n) }));
    void queue.submit('job-upscale', batch, { prompt: 'upscale', imageList });
    void queue.submit('job-generate', TXT2IMG, { prompt: 'generate', steps: 20, n_iter: 3 });

    const stopping = queue.interrupt('job-upscale');
    await expect.poll(() => readings.length).toBe(1);
    // Three batches of something else: not the upscale, whatever the counts say.
    readings[0]!.resolve(running(20, { job: 'scripts_txt2img', job_count: 3 }));
    await expect.poll(() => readings.length, { timeout: 2_000 }).toBe(2);
    expect(interrupts).toEqual([]);
    // The upscale on its first of three images: two to go, so the interrupt cannot reach the next job.
    readings[1]!.resolve(running(20, { job: 'extras', job_count: 3, job_no: 1 }));
    await expect.poll(() => interrupts.length).toBe(1);
    // A1111 answers the upscale: the job learns its request was interrupted and is done.
    answers.get('upscale')!.resolve({ images: [], parameters: {}, info: '{}' });
    await expect(stopping).resolves.toEqual({ interrupt: 'sent', settled: true });
  });
});
