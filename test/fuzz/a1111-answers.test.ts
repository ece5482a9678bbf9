/**
 * A1111 answers of every shape to txt2img: malformed JSON, wrong types, missing keys, huge bodies, a
 * gzip header over a body that is none, a Content-Length that lies, a body cut short, images that are
 * no pictures. A stand-in server serves them (the simulator answers only as A1111 does); every other
 * route answers as v1.9.3 would.
 *
 * Properties: the job runner never throws; a failure is classified (never INTERNAL); a success carries
 * pictures that decode. (An image damaged only in its middle is not among the cases: the worker looks
 * at an image's ends, not at every byte; see src/a1111/picture-check.ts.)
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { PNG } from 'pngjs';
import { afterEach, describe, expect, it } from 'vitest';
import { fuzzRuns, fuzzTimeout, reportFuzz } from '../support/fuzz.js';
import { generated, testWorker } from '../support/worker.js';

interface Answer {
  status: number;
  contentType: string | undefined;
  delivery: 'plain' | 'gzip' | 'gzip-header-only' | 'length-lie' | 'cut';
  body: Buffer;
}

const MODEL = {
  title: 'model.safetensors',
  model_name: 'model',
  hash: null,
  sha256: null,
  filename: '/model.safetensors',
  config: null,
};
const IDLE = {
  progress: 0,
  eta_relative: 0,
  state: {
    skipped: false,
    interrupted: false,
    job: '',
    job_count: 0,
    job_timestamp: '0',
    job_no: 0,
    sampling_step: 0,
    sampling_steps: 0,
  },
  current_image: null,
  textinfo: null,
};

const servers: { close(): void }[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

async function standIn(next: () => Answer): Promise<string> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const json = (value: unknown) => {
        const data = JSON.stringify(value);
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) });
        res.end(data);
      };
      if (path === '/sdapi/v1/sd-models') return json([MODEL]);
      if (path === '/sdapi/v1/progress') return json(IDLE);
      if (path === '/sdapi/v1/interrupt') return json({});
      if (path !== '/sdapi/v1/txt2img') return json(null);
      const answer = next();
      const headers: Record<string, string | number> = {};
      if (answer.contentType) headers['Content-Type'] = answer.contentType;
      let body = answer.body;
      if (answer.delivery === 'gzip') {
        body = gzipSync(body);
        headers['Content-Encoding'] = 'gzip';
      }
      if (answer.delivery === 'gzip-header-only') headers['Content-Encoding'] = 'gzip';
      headers['Content-Length'] = answer.delivery === 'length-lie' ? body.length + 100 : body.length;
      res.writeHead(answer.status, headers);
      if (answer.delivery === 'cut' || answer.delivery === 'length-lie') {
        res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.socket?.destroy());
        return;
      }
      res.end(body);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function smallPng(): string {
  const png = new PNG({ width: 8, height: 8 });
  png.data.fill(200);
  return PNG.sync.write(png).toString('base64');
}

const picture = smallPng();
const image = fc.oneof(
  { arbitrary: fc.constant(picture), weight: 6 },
  { arbitrary: fc.constant(picture.slice(0, -8)), weight: 1 },
  { arbitrary: fc.constant(picture.slice(0, Math.floor((picture.length * 0.75) / 4) * 4)), weight: 1 },
  { arbitrary: fc.base64String({ maxLength: 400 }), weight: 1 },
  { arbitrary: fc.string({ maxLength: 20 }), weight: 1 },
  { arbitrary: fc.jsonValue({ maxDepth: 1 }), weight: 1 },
);
const txt2imgBody = fc.record(
  {
    images: fc.oneof(
      { arbitrary: fc.array(image, { maxLength: 3 }), weight: 5 },
      { arbitrary: fc.jsonValue({ maxDepth: 2 }), weight: 1 },
    ),
    parameters: fc.oneof(
      { arbitrary: fc.constant({ prompt: 'x' }), weight: 5 },
      { arbitrary: fc.jsonValue({ maxDepth: 2 }), weight: 1 },
    ),
    info: fc.oneof(
      { arbitrary: fc.constant('{"seed": 1}'), weight: 5 },
      { arbitrary: fc.jsonValue({ maxDepth: 2 }), weight: 1 },
    ),
  },
  { requiredKeys: [] },
);
const body = fc.oneof(
  { arbitrary: txt2imgBody.map((value) => Buffer.from(JSON.stringify(value))), weight: 8 },
  { arbitrary: txt2imgBody.map((value) => Buffer.from(JSON.stringify(value, null, 2))), weight: 1 },
  { arbitrary: fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)), weight: 1 },
  { arbitrary: fc.string({ maxLength: 100 }).map((text) => Buffer.from(text)), weight: 1 },
  {
    arbitrary: fc
      .record({ error: fc.string(), detail: fc.jsonValue({ maxDepth: 1 }), body: fc.string(), errors: fc.string() })
      .map((value) => Buffer.from(JSON.stringify(value))),
    weight: 1,
  },
  {
    arbitrary: fc.constant(
      Buffer.from(JSON.stringify({ images: [`${picture}${'A'.repeat(8_000_000)}`], parameters: {}, info: '' })),
    ),
    weight: 1,
  },
);
const answer: fc.Arbitrary<Answer> = fc.record({
  status: fc.oneof(
    { arbitrary: fc.constant(200), weight: 8 },
    { arbitrary: fc.constantFrom(204, 301, 401, 404, 418, 422, 500, 502, 503, 504), weight: 2 },
  ),
  contentType: fc.constantFrom('application/json', 'text/plain; charset=utf-8', undefined),
  delivery: fc.oneof(
    { arbitrary: fc.constant('plain' as const), weight: 8 },
    {
      arbitrary: fc.constantFrom('gzip' as const, 'gzip-header-only' as const, 'length-lie' as const, 'cut' as const),
      weight: 2,
    },
  ),
  body,
});

describe('A1111 answers of every shape', () => {
  it(
    'end in a classified failure or a success with pictures, never INTERNAL',
    async () => {
      let current: Answer | undefined;
      const url = await standIn(() => current!);
      const { runner } = testWorker(url, {
        LOG_LEVEL: 'error',
        A1111_HTTP_RETRIES: '0',
        A1111_ROUTE_RECOVERY_ATTEMPTS: '0',
        A1111_REQUEST_TIMEOUT_MS: '5000',
        PROGRESS_POLL_INTERVAL_MS: '0',
      });
      const runs = fuzzRuns(1_500);
      const started = performance.now();
      let id = 0;
      await fc.assert(
        fc.asyncProperty(answer, async (given) => {
          current = given;
          const outcome = await runner.run({ id: `answer-${id++}`, input: { prompt: 'x', steps: 1, seed: 1 } });
          if (!outcome.ok) {
            expect(outcome.failure.code, outcome.failure.message).not.toBe('INTERNAL');
            return;
          }
          expect(typeof generated(outcome).info).toBe('string');
          expect(generated(outcome).images.length).toBeGreaterThan(0);
          for (const image of generated(outcome).images)
            expect(() => PNG.sync.read(Buffer.from(image, 'base64'))).not.toThrow();
        }),
        { numRuns: runs },
      );
      reportFuzz('A1111 answers', runs, started);
    },
    fuzzTimeout(15),
  );
});
