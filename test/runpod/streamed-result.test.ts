/**
 * A large inline result written into the job-done post while A1111's answer arrives: the worker process
 * against the simulator (its answers paced, as a WebUI writes a large body) or a WebUI stand-in that
 * answers 200 with a broken body, and the fake control plane, which records each post's start, its
 * body and posts whose sender dropped them unfinished.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeRunPod } from '../support/fake-runpod.js';
import { simulator } from '../support/simulator.js';
import { startWorker } from '../support/worker-process.js';

const planes: FakeRunPod[] = [];
const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(planes.splice(0).map((plane) => plane.close()));
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/** Two 512² pictures: about 1.8 MB of answer, streamed with the limit below. */
const job = { prompt: 'a harbour at dawn', seed: 11, steps: 1, width: 512, height: 512, batch_size: 2 };
const STREAM_ENV = { RESULT_STREAM_MIN_BYTES: '500000' };

async function plane() {
  const runpod = new FakeRunPod();
  planes.push(runpod);
  await runpod.start();
  return runpod;
}

async function runJob(runpod: FakeRunPod, a1111Url: string, env: Record<string, string> = {}, input: unknown = job) {
  runpod.enqueue({ id: 'big-job', input });
  const worker = startWorker({ ...runpod.env(), A1111_BASE_URL: a1111Url, ...STREAM_ENV, ...env });
  await runpod.waitFor((r) => r.kind === 'job-done' && r.jobId === 'big-job' && !r.body.includes('"IN_PROGRESS"'));
  worker.child.kill('SIGTERM');
  await worker.exited;
  return { worker, posts: runpod.results('big-job') };
}

/** A WebUI stand-in: a model list for the readiness probe, `answer` for txt2img. */
async function standIn(answer: Buffer): Promise<string> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url?.startsWith('/sdapi/v1/sd-models')) {
        res.setHeader('Content-Type', 'application/json').end(
          JSON.stringify([
            {
              title: 'm.safetensors [0]',
              model_name: 'm',
              filename: '/m.safetensors',
              hash: null,
              sha256: null,
              config: null,
            },
          ]),
        );
      } else if (req.url === '/sdapi/v1/txt2img') {
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': answer.length }).end(answer);
      } else res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"detail":"Not Found"}');
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('a large inline result', () => {
  it("goes into the job-done post while A1111's answer still arrives, and RunPod gets the whole result", async () => {
    const sim = await simulator({ keepAnswers: true, answerBytesPerSecond: 2_000_000 });
    const runpod = await plane();

    const { worker, posts } = await runJob(runpod, sim.url);

    expect(posts).toHaveLength(1);
    const post = posts[0]!;
    const call = sim.callsTo('POST', '/txt2img')[0]!;
    // Half the result had reached RunPod before the simulator wrote its answer's last byte; the post
    // carried no length.
    expect(post.halfAt).toBeLessThan(call.answeredAt!);
    expect(post.headers['transfer-encoding']).toBe('chunked');
    expect(post.headers['content-length']).toBeUndefined();
    const body = JSON.parse(post.body) as { output: Record<string, unknown> & { worker: { notes: string[] } } };
    const answer = call.answer as { images: string[]; info: string; parameters: unknown };
    expect(body.output.images).toEqual(answer.images);
    expect(body.output['info']).toBe(answer.info);
    expect(body.output['parameters']).toEqual(answer.parameters);
    expect(body.output.worker.notes).toEqual([]);
    expect(runpod.unfinished).toEqual([]);
    const succeeded = worker.records().find((r) => r['message'] === 'job succeeded');
    expect(succeeded).toMatchObject({ jobId: 'big-job', images: 2, streamed: true });
  });

  it('is posted again in full when the streamed post fails on RunPod’s side', async () => {
    const sim = await simulator({ keepAnswers: true });
    const runpod = await plane();
    runpod.scriptDone('big-job', 500);

    const { posts } = await runJob(runpod, sim.url);

    expect(posts.map((post) => post.answeredStatus)).toEqual([500, 200]);
    expect(posts[0]!.headers['transfer-encoding']).toBe('chunked');
    expect(Number(posts[1]!.headers['content-length'])).toBe(Buffer.byteLength(posts[1]!.body));
    // The same result, byte for byte.
    expect(posts[1]!.body).toBe(posts[0]!.body);
    const answer = sim.callsTo('POST', '/txt2img')[0]!.answer as { images: string[] };
    expect((JSON.parse(posts[1]!.body) as { output: { images: string[] } }).output.images).toEqual(answer.images);
  });
});

describe('a streamed post RunPod answers before its end', () => {
  it('with a 503: nothing more is written into it, and the result is posted again in full', async () => {
    const sim = await simulator({ keepAnswers: true, answerBytesPerSecond: 2_000_000 });
    const runpod = await plane();
    runpod.scriptDone('big-job', { early: 503 });

    const { posts } = await runJob(runpod, sim.url);

    // The refused post was closed short: the worker stopped writing once RunPod had answered.
    expect(runpod.unfinished).toHaveLength(1);
    expect(runpod.unfinished[0]!.answeredStatus).toBe(503);
    expect(posts).toHaveLength(1);
    const full = posts[0]!;
    expect(runpod.unfinished[0]!.bytesAfterAnswer).toBeLessThan(full.body.length / 4);
    expect(full.body.startsWith(runpod.unfinished[0]!.body)).toBe(true);
    expect(full.answeredStatus).toBe(200);
    expect(Number(full.headers['content-length'])).toBe(Buffer.byteLength(full.body));
    const answer = sim.callsTo('POST', '/txt2img')[0]!.answer as { images: string[] };
    expect((JSON.parse(full.body) as { output: { images: string[] } }).output.images).toEqual(answer.images);
  });

  it('with a 413: the result is not sent again, and the job fails RESULT_REJECTED with the status', async () => {
    const sim = await simulator({ answerBytesPerSecond: 2_000_000 });
    const runpod = await plane();
    runpod.scriptDone('big-job', { early: 413 });

    const { posts, worker } = await runJob(runpod, sim.url);

    expect(runpod.unfinished.map((post) => post.answeredStatus)).toEqual([413]);
    expect(posts).toHaveLength(1);
    const failure = JSON.parse((JSON.parse(posts[0]!.body) as { error: string }).error) as {
      code: string;
      message: string;
    };
    expect(failure.code).toBe('RESULT_REJECTED');
    expect(failure.message).toContain('413');
    expect(worker.records().find((r) => r['message'] === 'RunPod refused the job result')).toMatchObject({
      jobId: 'big-job',
      status: 413,
    });
  });
});

describe('an answer that turns out bad', () => {
  it('cut half-way: the unfinished post is dropped and the failure posted instead', async () => {
    const sim = await simulator();
    sim.cutNextResponses(1, '/txt2img');
    const runpod = await plane();

    const { posts } = await runJob(runpod, sim.url);

    expect(runpod.unfinished).toHaveLength(1);
    expect(runpod.unfinished[0]!.body.startsWith('{"output":{"images":["')).toBe(true);
    expect(posts).toHaveLength(1);
    const failure = JSON.parse((JSON.parse(posts[0]!.body) as { error: string }).error) as { code: string };
    expect(failure.code).toBe('BACKEND_CRASHED');
  });

  it('of the wrong shape (200, images not a list): the unfinished post is dropped and BACKEND_ERROR posted', async () => {
    const picture = 'A'.repeat(1_000_000);
    const a1111 = await standIn(Buffer.from(JSON.stringify({ images: picture, parameters: {}, info: '{}' })));
    const runpod = await plane();

    const { posts } = await runJob(runpod, a1111);

    expect(runpod.unfinished).toHaveLength(1);
    expect(runpod.unfinished[0]!.body.startsWith('{"output":{"images":"AAAA')).toBe(true);
    const failure = JSON.parse((JSON.parse(posts[0]!.body) as { error: string }).error) as {
      code: string;
      message: string;
    };
    expect(failure.code).toBe('BACKEND_ERROR');
    expect(failure.message).toContain('unexpected shape');
  });
});

describe('results that are read first, then posted', () => {
  it('a small one, one the job wants as WebP, and any with RESULT_STREAM_MIN_BYTES=0', async () => {
    const sim = await simulator();
    for (const [input, env] of [
      [{ ...job, batch_size: 1, width: 64, height: 64 }, {}],
      [{ ...job, output: { format: 'webp' } }, {}],
      [job, { RESULT_STREAM_MIN_BYTES: '0' }],
    ] as const) {
      const runpod = await plane();
      const { posts } = await runJob(runpod, sim.url, env, input);
      expect(posts[0]!.headers['transfer-encoding'], JSON.stringify(input)).toBeUndefined();
      expect(Number(posts[0]!.headers['content-length'])).toBe(Buffer.byteLength(posts[0]!.body));
      expect((JSON.parse(posts[0]!.body) as { output: { images: string[] } }).output.images.length).toBeGreaterThan(0);
    }
  });
});
