/**
 * Results past RunPod's payload limit, against a real S3 server (moto_server) and the simulator: the
 * images go to the bucket and the result holds URLs that serve exactly what A1111 generated; without a
 * bucket, a result too large fails before any post; a failed upload leaves nothing behind.
 */
import { createHash } from 'node:crypto';
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import type { JobOutcome } from '../../src/job/outcome.js';
import { deliverResult } from '../../src/results/deliver.js';
import { encodeResult } from '../../src/runpod/protocol.js';
import { resultBucket } from '../../src/worker.js';
import { jpegImage, noisyPng, pngImage } from '../support/images.js';
import { captureLog } from '../support/logs.js';
import { decodePng } from '../support/png.js';
import { type S3Server, startMoto, startS3rver, TEST_KEYS } from '../support/s3.js';
import { simulator } from '../support/simulator.js';
import { runPodResult, testWorker } from '../support/worker.js';

let moto: S3Server;
let buckets = 0;

beforeAll(async () => {
  moto = await startMoto();
}, 90_000);

afterAll(async () => {
  await moto?.stop();
});

/** A fresh bucket on moto, and the worker settings that upload to it. */
async function bucketOnMoto(extra: Record<string, string> = {}) {
  const name = `results-${++buckets}`;
  await moto.createBucket(name);
  const env = {
    BUCKET_ENDPOINT_URL: moto.url,
    BUCKET_ACCESS_KEY_ID: TEST_KEYS.accessKeyId,
    BUCKET_SECRET_ACCESS_KEY: TEST_KEYS.secretAccessKey,
    BUCKET_NAME: name,
    ...extra,
  };
  return { name, env };
}

function output(outcome: JobOutcome): Record<string, unknown> & { images: string[]; worker: Record<string, unknown> } {
  if (!outcome.ok) throw new Error(`the job failed: ${outcome.failure.code} ${outcome.failure.message}`);
  return outcome.output as never;
}

function failure(outcome: JobOutcome) {
  if (outcome.ok) throw new Error('expected the job to fail');
  return outcome.failure;
}

async function download(url: string): Promise<{ status: number; type: string | null; bytes: Buffer }> {
  const answer = await fetch(url);
  return {
    status: answer.status,
    type: answer.headers.get('content-type'),
    bytes: Buffer.from(await answer.arrayBuffer()),
  };
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** The images A1111 answered a job with, as the simulator sent them. */
function generatedImages(sim: Awaited<ReturnType<typeof simulator>>, path = '/sdapi/v1/txt2img'): Buffer[] {
  const call = sim.calls.find((c) => c.path === path && c.status === 200);
  const answer = call?.answer as { images?: string[]; image?: string } | undefined;
  const images = answer?.images ?? (answer?.image ? [answer.image] : []);
  return images.map((image) => Buffer.from(image, 'base64'));
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/**
 * A proxy in front of moto. For each request `handle` says: `'fail'` (answered here with S3's error,
 * `status` 500 unless given), a number (the whole body is taken, then passed on that many ms later, so
 * the object is stored even if the client gave up meanwhile) or `'pass'`.
 */
async function proxy(
  handle: (req: IncomingMessage) => 'fail' | number | 'pass',
  status = 500,
): Promise<{ url: string; seen: string[] }> {
  const target = new URL(moto.url);
  const seen: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push(`${req.method} ${req.url}`);
    const what = handle(req);
    if (what === 'fail') {
      req.resume();
      const code = status === 403 ? 'AccessDenied' : 'InternalError';
      res.writeHead(status, { 'Content-Type': 'application/xml' });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>simulated failure</Message></Error>`,
      );
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const forward = () => {
        const upstream = httpRequest(
          { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        upstream.on('error', () => res.destroy());
        upstream.end(Buffer.concat(chunks));
      };
      if (typeof what === 'number') setTimeout(forward, what);
      else forward();
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const failingProxy = (fail: (req: IncomingMessage) => boolean) => proxy((req) => (fail(req) ? 'fail' : 'pass'));

const isPut = (req: IncomingMessage, image: string) => req.method === 'PUT' && (req.url ?? '').includes(image);

describe('results past the inline limit', () => {
  it('uploads a 28 MB result and answers URLs that serve the exact images A1111 generated', async () => {
    const sim = await simulator({ keepAnswers: true });
    const { name, env } = await bucketOnMoto();
    const { runner, logs } = testWorker(sim.url, env);

    const outcome = await runner.run({
      id: 'large-batch',
      input: { prompt: 'a lighthouse', steps: 1, seed: 7, width: 1024, height: 1024, batch_size: 8 },
    });

    const result = output(outcome);
    const generated = generatedImages(sim);
    expect(generated).toHaveLength(8);
    expect(generated.reduce((sum, image) => sum + image.length, 0)).toBeGreaterThan(20_000_000);
    expect(result.images).toHaveLength(8);
    const uploads = result.worker['uploads'] as {
      key: string;
      url: string;
      bytes: number;
      sha256: string;
      content_type: string;
    }[];
    expect(uploads.map((upload) => upload.key)).toEqual(generated.map((_, index) => `large-batch/image-${index}.png`));
    for (const [index, url] of result.images.entries()) {
      expect(url).toMatch(new RegExp(`^${moto.url}/${name}/large-batch/image-${index}\\.png\\?`));
      expect(url).toContain('X-Amz-Expires=604800');
      const served = await download(url);
      expect(served.status).toBe(200);
      expect(served.type).toBe('image/png');
      expect(served.bytes.equals(generated[index]!)).toBe(true);
      expect(uploads[index]).toEqual({
        key: `large-batch/image-${index}.png`,
        url,
        bytes: generated[index]!.length,
        sha256: sha256(generated[index]!),
        content_type: 'image/png',
      });
      expect(decodePng(served.bytes)).toMatchObject({ width: 1024, height: 1024 });
    }
    // The rest of A1111's answer is unchanged, and what RunPod gets is small.
    expect(JSON.parse(result['info'] as string).seed).toBe(7);
    expect(result['parameters']).toMatchObject({ prompt: 'a lighthouse', batch_size: 8 });
    const posted = Buffer.concat(encodeResult(runPodResult(outcome)));
    expect(posted.length).toBeLessThan(20_000);
    expect(JSON.parse(posted.toString('utf8')).output.images).toEqual(result.images);
    expect((result.worker['notes'] as string[]).join(' ')).toMatch(
      /8 image\(s\) uploaded to bucket "results-\d+": the result would be 2\d\.\d MB, over RESULT_INLINE_MAX_BYTES \(15000000\)/,
    );
    expect(await moto.keys(name)).toEqual(generated.map((_, index) => `large-batch/image-${index}.png`));
    expect(logs.records().find((r) => r['message'] === 'job succeeded')).toMatchObject({
      images: 8,
      uploaded: 8,
      imageBytes: generated.reduce((sum, image) => sum + image.length, 0),
    });
  });

  it('sends an image larger than a part as a multipart upload', async () => {
    const sim = await simulator({ keepAnswers: true });
    const { name, env } = await bucketOnMoto({ UPLOAD_PART_BYTES: '5242880' });
    const { runner } = testWorker(sim.url, env);

    const outcome = await runner.run({
      id: 'big-one',
      input: { prompt: 'wide', steps: 1, seed: 3, width: 1536, height: 1536, output: { delivery: 'upload' } },
    });

    const result = output(outcome);
    const [image] = generatedImages(sim);
    expect(image!.length).toBeGreaterThan(5_242_880);
    const head = await moto.client.send(new HeadObjectCommand({ Bucket: name, Key: 'big-one/image-0.png' }));
    // S3 (and moto) give a multipart object an ETag of the form "<md5 of the parts' md5s>-<parts>".
    expect(head.ETag).toMatch(/-2"$/);
    expect((await download(result.images[0]!)).bytes.equals(image!)).toBe(true);
  });

  it('uses BUCKET_PUBLIC_URL for the URLs of a public bucket instead of presigning', async () => {
    const sim = await simulator({ keepAnswers: true });
    const { name, env } = await bucketOnMoto();
    await moto.allowPublicReads(name);
    const { runner } = testWorker(sim.url, { ...env, BUCKET_PUBLIC_URL: `${moto.url}/${name}/` });

    const outcome = await runner.run({
      id: 'job with spaces',
      input: { prompt: 'p', steps: 1, width: 64, height: 64, output: { delivery: 'upload' } },
    });

    const [url] = output(outcome).images;
    expect(url).toBe(`${moto.url}/${name}/job%20with%20spaces/image-0.png`);
    expect((await download(url!)).bytes.equals(generatedImages(sim)[0]!)).toBe(true);
  });

  it('uploads the single image of extra-single-image as `image`', async () => {
    const sim = await simulator({ keepAnswers: true });
    const { name, env } = await bucketOnMoto();
    const { runner } = testWorker(sim.url, env);
    const input = pngImage(16, 16, 5).toString('base64');

    const outcome = await runner.run({
      id: 'upscaled',
      input: {
        api: { method: 'POST', endpoint: '/sdapi/v1/extra-single-image' },
        payload: { image: input, upscaler_1: 'Lanczos', upscaling_resize: 2, output: { delivery: 'upload' } },
      },
    });

    const result = outcome.ok ? (outcome.output as { image: string }) : failure(outcome);
    expect(await moto.keys(name)).toEqual(['upscaled/image.png']);
    const served = await download((result as { image: string }).image);
    expect(served.bytes.equals(generatedImages(sim, '/sdapi/v1/extra-single-image')[0]!)).toBe(true);
    // The upload block is the worker's: A1111 never saw it.
    expect(sim.callsTo('POST', '/extra-single-image')[0]?.body).not.toHaveProperty('output');
  });
});

describe('delivery a job asks for', () => {
  it('posts a small result inline by default, and uploads it when the job says "upload"', async () => {
    const sim = await simulator();
    const { name, env } = await bucketOnMoto();
    const { runner } = testWorker(sim.url, env);

    const inline = output(await runner.run({ id: 'small', input: { prompt: 'p', steps: 1, width: 64, height: 64 } }));
    expect(decodePng(Buffer.from(inline.images[0]!, 'base64')).width).toBe(64);
    expect(inline.worker['uploads']).toBeUndefined();

    const uploaded = output(
      await runner.run({
        id: 'asked',
        input: { prompt: 'p', steps: 1, width: 64, height: 64, output: { delivery: 'upload' } },
      }),
    );
    expect(uploaded.images[0]).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/results-\d+\/asked\/image-0\.png\?/);
    expect(await moto.keys(name)).toEqual(['asked/image-0.png']);
  });

  it('fails RESULT_TOO_LARGE before posting when there is no bucket, saying how large, the limit and the ways out', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url, { RESULT_INLINE_MAX_BYTES: '100000' });

    const outcome = await runner.run({
      id: 'too-large',
      input: { prompt: 'p', steps: 1, seed: 5, width: 256, height: 256, batch_size: 4 },
    });

    const failed = failure(outcome);
    expect(failed).toMatchObject({ code: 'RESULT_TOO_LARGE', phase: 'delivering', retryable: false });
    expect(failed.message).toMatch(
      /the result would be \d+\.\d MB \(\d+ bytes\), over RESULT_INLINE_MAX_BYTES \(100000;/,
    );
    expect(failed.message).toContain('BUCKET_ENDPOINT_URL');
    expect(failed.message).toContain('batch_size');
    expect(failed.details['bytes']).toBeGreaterThan(100_000);
    // What RunPod gets is the failure, a few hundred bytes, never a body it would refuse.
    const posted = JSON.parse(Buffer.concat(encodeResult(runPodResult(outcome))).toString('utf8'));
    expect(JSON.parse(posted.error).code).toBe('RESULT_TOO_LARGE');
  });

  it('keeps a result inline when the job says "inline", and fails it when it is too large', async () => {
    const sim = await simulator();
    const { name, env } = await bucketOnMoto({ RESULT_INLINE_MAX_BYTES: '100000' });
    const { runner } = testWorker(sim.url, env);

    const outcome = await runner.run({
      id: 'inline-only',
      input: { prompt: 'p', steps: 1, width: 256, height: 256, batch_size: 4, output: { delivery: 'inline' } },
    });

    expect(failure(outcome).code).toBe('RESULT_TOO_LARGE');
    expect(failure(outcome).message).toContain('"delivery": "inline"');
    expect(await moto.keys(name)).toEqual([]);
  });

  it('refuses "upload" on a worker without a bucket, and bucket settings or keys in a job, before A1111 is called', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const noBucket = failure(await runner.run({ id: 'a', input: { prompt: 'p', output: { delivery: 'upload' } } }));
    expect(noBucket).toMatchObject({ code: 'INVALID_INPUT', phase: 'booting' });
    expect(noBucket.details['problems']).toEqual([
      expect.objectContaining({
        field: 'output.delivery',
        rule: expect.stringContaining('needs a bucket on the worker'),
      }),
    ]);

    const keys = failure(
      await runner.run({
        id: 'b',
        input: {
          prompt: 'p',
          BUCKET_SECRET_ACCESS_KEY: 'hunter2',
          output: { bucket_endpoint_url: 'http://evil.example', aws_access_key_id: 'AKIA', format: 'gif', quality: 0 },
        },
      }),
    );
    const problems = keys.details['problems'] as { field: string; value: unknown }[];
    expect(problems.map((problem) => problem.field)).toEqual([
      'BUCKET_SECRET_ACCESS_KEY',
      'output.bucket_endpoint_url',
      'output.aws_access_key_id',
      'output.format',
      'output.quality',
    ]);
    expect(JSON.stringify(keys)).not.toContain('hunter2');
    expect(JSON.stringify(keys)).not.toContain('AKIA');
    expect(sim.calls.filter((call) => call.path.endsWith('/txt2img'))).toEqual([]);
  });
});

describe('uploads that fail', () => {
  it('fails UPLOAD_FAILED naming a bucket that does not exist', async () => {
    const sim = await simulator();
    const { env } = await bucketOnMoto();
    const { runner } = testWorker(sim.url, { ...env, BUCKET_NAME: 'no-such-bucket' });

    const failed = failure(
      await runner.run({
        id: 'nb',
        input: { prompt: 'p', steps: 1, width: 64, height: 64, output: { delivery: 'upload' } },
      }),
    );

    expect(failed).toMatchObject({ code: 'UPLOAD_FAILED', phase: 'delivering', retryable: true });
    expect(failed.message).toMatch(/bucket "no-such-bucket" at http:\/\/127\.0\.0\.1:\d+ failed: NoSuchBucket/);
    expect(JSON.stringify(failed)).not.toContain(TEST_KEYS.secretAccessKey);
  });

  it('fails UPLOAD_FAILED when the endpoint cannot be reached', async () => {
    const sim = await simulator();
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const { runner } = testWorker(sim.url, {
      BUCKET_ENDPOINT_URL: `http://127.0.0.1:${port}`,
      BUCKET_ACCESS_KEY_ID: 'k',
      BUCKET_SECRET_ACCESS_KEY: 's',
      BUCKET_NAME: 'results',
    });

    const failed = failure(
      await runner.run({
        id: 'down',
        input: { prompt: 'p', steps: 1, width: 64, height: 64, output: { delivery: 'upload' } },
      }),
    );

    expect(failed.code).toBe('UPLOAD_FAILED');
    expect(failed.message).toContain(`at http://127.0.0.1:${port} failed`);
    expect(failed.message).toMatch(/ECONNREFUSED/);
  });

  it('deletes the objects it stored when an upload fails half-way', async () => {
    const sim = await simulator();
    const { name, env } = await bucketOnMoto({ UPLOAD_CONCURRENCY: '1' });
    const proxy = await failingProxy((req) => req.method === 'PUT' && (req.url ?? '').includes('image-2.png'));
    const { runner } = testWorker(sim.url, { ...env, BUCKET_ENDPOINT_URL: proxy.url });

    const failed = failure(
      await runner.run({
        id: 'half',
        input: { prompt: 'p', steps: 1, width: 64, height: 64, batch_size: 4, output: { delivery: 'upload' } },
      }),
    );

    expect(failed.code).toBe('UPLOAD_FAILED');
    expect(failed.message).toContain('InternalError');
    expect(failed.details).toMatchObject({ bucket: name, objects: 4, deleted: 3 });
    // image-0 and image-1 went up, image-2 failed (the SDK tried it three times), image-3 never started.
    expect(proxy.seen.filter((line) => line.startsWith('PUT')).map((line) => line.match(/image-\d/)?.[0])).toEqual([
      'image-0',
      'image-1',
      'image-2',
      'image-2',
      'image-2',
    ]);
    expect(await moto.keys(name)).toEqual([]);
  });
});

describe('decoding for uploads', () => {
  it('reuses its buffers from image to image and job to job, and every object holds its own picture', async () => {
    const sim = await simulator({ keepAnswers: true });
    const { env } = await bucketOnMoto({ UPLOAD_CONCURRENCY: '1' });
    const { runner } = testWorker(sim.url, env);

    // A larger batch first: the smaller pictures after it are decoded into the same, larger buffer.
    for (const [id, size, count] of [
      ['reuse-a', 256, 3],
      ['reuse-b', 64, 2],
      ['reuse-c', 128, 2],
    ] as const) {
      const input = { prompt: id, seed: size, steps: 1, width: size, height: size, batch_size: count };
      const result = output(await runner.run({ id, input: { ...input, output: { delivery: 'upload' } } }));
      const call = sim.calls.filter((c) => c.path === '/sdapi/v1/txt2img' && c.status === 200).at(-1)!;
      const generated = (call.answer as { images: string[] }).images.map((image) => Buffer.from(image, 'base64'));
      expect(result.images).toHaveLength(count);
      for (const [index, url] of result.images.entries()) {
        const served = await download(url);
        expect(served.bytes.equals(generated[index]!), `${id}, image ${index}`).toBe(true);
        expect(decodePng(served.bytes)).toMatchObject({ width: size, height: size });
      }
    }
  });
});

describe('uploads cut short', () => {
  it('leave nothing when one upload fails while another is still on its way', async () => {
    const sim = await simulator();
    const { name, env } = await bucketOnMoto({ UPLOAD_CONCURRENCY: '2' });
    // image-0 is refused at once; image-1 reaches the bucket a second later, after the job gave up.
    const slow = await proxy((req) => (isPut(req, 'image-0') ? 'fail' : isPut(req, 'image-1') ? 1_000 : 'pass'), 403);
    const { runner } = testWorker(sim.url, { ...env, BUCKET_ENDPOINT_URL: slow.url });

    const failed = failure(
      await runner.run({
        id: 'refused',
        input: { prompt: 'p', steps: 1, width: 64, height: 64, batch_size: 2, output: { delivery: 'upload' } },
      }),
    );

    expect(failed.code).toBe('UPLOAD_FAILED');
    expect(failed.message).toContain('AccessDenied');
    expect(await moto.keys(name)).toEqual([]);
  });

  it('leave nothing when the job is cancelled while an upload is on its way', async () => {
    const sim = await simulator();
    const { name, env } = await bucketOnMoto();
    const cancel = new AbortController();
    const slow = await proxy((req) => {
      if (!isPut(req, 'image-0')) return 'pass';
      setTimeout(() => cancel.abort('the client cancelled'), 200);
      return 1_000;
    });
    const { runner } = testWorker(sim.url, { ...env, BUCKET_ENDPOINT_URL: slow.url });

    const outcome = await runner.run(
      { id: 'cancelled', input: { prompt: 'p', steps: 1, width: 64, height: 64, output: { delivery: 'upload' } } },
      { signal: cancel.signal },
    );

    expect(failure(outcome)).toMatchObject({ code: 'CANCELLED', phase: 'delivering' });
    // The object lands a second after the PUT; the clean-up runs once it has, without the job waiting.
    const deadline = Date.now() + 10_000;
    let keys = await moto.keys(name);
    while ((keys.length > 0 || !slow.seen.some((line) => line.startsWith('DELETE'))) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      keys = await moto.keys(name);
    }
    expect(keys).toEqual([]);
    expect(slow.seen.filter((line) => line.startsWith('DELETE')).length).toBeGreaterThan(0);
  });

  it('fail RESULT_TOO_LARGE, and delete the images, when the rest of the answer is too large even so', async () => {
    const sim = await simulator();
    const { name, env } = await bucketOnMoto({ RESULT_INLINE_MAX_BYTES: '300000' });
    const { runner } = testWorker(sim.url, env);
    const init = noisyPng(400_000, 9).toString('base64');
    expect(init.length).toBeGreaterThan(300_000);

    const failed = failure(
      await runner.run({
        id: 'echoed',
        input: {
          api: { method: 'POST', endpoint: '/sdapi/v1/img2img' },
          payload: { prompt: 'p', steps: 2, width: 64, height: 64, init_images: [init], include_init_images: true },
        },
      }),
    );

    expect(failed.code).toBe('RESULT_TOO_LARGE');
    expect(failed.message).toContain('even with its images uploaded');
    expect(failed.message).toContain('include_init_images');
    expect(await moto.keys(name)).toEqual([]);
  });

  it('names an object by the format of its bytes when A1111 answers in another format than PNG', async () => {
    const { name, env } = await bucketOnMoto();
    const config = loadConfig(env);
    const bucket = resultBucket(config)!;
    const jpeg = jpegImage(32, 32).toString('base64');
    const { log } = captureLog();

    const delivered = await deliverResult(
      { settings: config.results, bucket, log },
      {
        jobId: 'samples-format',
        operation: 'POST /sdapi/v1/txt2img',
        response: { images: [jpeg], parameters: {}, info: '{}' },
        output: { delivery: 'upload', format: 'png', quality: 90 },
      },
      new AbortController().signal,
    );
    bucket.close();

    expect(delivered.uploads).toMatchObject([{ key: 'samples-format/image-0.jpg', content_type: 'image/jpeg' }]);
    const served = await download(delivered.uploads[0]!.url);
    expect(served.type).toBe('image/jpeg');
    expect(served.bytes.toString('base64')).toBe(jpeg);
    expect(await moto.keys(name)).toEqual(['samples-format/image-0.jpg']);
  });
});

describe('signatures', () => {
  it('uploads to a server that checks credentials, and fails UPLOAD_FAILED on ones it does not know', async () => {
    const s3rver = await startS3rver(['checked']);
    try {
      const sim = await simulator({ keepAnswers: true });
      const env = {
        BUCKET_ENDPOINT_URL: s3rver.url,
        BUCKET_ACCESS_KEY_ID: 'S3RVER',
        BUCKET_SECRET_ACCESS_KEY: 'S3RVER',
        BUCKET_NAME: 'checked',
      };
      const job = { prompt: 'p', steps: 1, width: 64, height: 64, output: { delivery: 'upload' } };
      const good = testWorker(sim.url, env);
      const [url] = output(await good.runner.run({ id: 'signed', input: job })).images;
      // The presigned URL works there too.
      expect((await download(url!)).bytes.equals(generatedImages(sim)[0]!)).toBe(true);

      // s3rver 3.7 checks the access key of a V4 request, not its signature: a key it does not know is refused.
      const wrong = testWorker(sim.url, {
        ...env,
        BUCKET_ACCESS_KEY_ID: 'NOT-A-KEY',
        BUCKET_SECRET_ACCESS_KEY: 'not-the-secret',
      });
      const failed = failure(await wrong.runner.run({ id: 'unsigned', input: job }));
      expect(failed.code).toBe('UPLOAD_FAILED');
      expect(failed.message).toMatch(/InvalidAccessKeyId.*\(HTTP 403\)/);
      expect(JSON.stringify(failed)).not.toContain('not-the-secret');
      expect(await s3rver.keys('checked')).toEqual(['signed/image-0.png']);
    } finally {
      await s3rver.stop();
    }
  });
});
