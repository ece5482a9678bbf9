/**
 * Envelopes of every shape through the job runner, against the simulator: any method and endpoint
 * (the allow-list's, with and without a slash, in any case, and the routes no job may reach), payloads
 * of the operations' own fields with good and wild values, and images as base64, data URLs of every
 * form, URLs the worker must refuse, and strings that are no image.
 *
 * Properties: the runner never throws and never fails INTERNAL; every INVALID_INPUT names string
 * fields; A1111 is only ever called on the allow-list's routes and gets no URL and no data URL; a job
 * whose endpoint is off the allow-list reaches nothing at all.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzRuns, fuzzTimeout, reportFuzz } from '../support/fuzz.js';
import { pngImage } from '../support/images.js';
import { simulator } from '../support/simulator.js';
import { testWorker } from '../support/worker.js';

/** The allow-list, from the issue that defines it (not from the worker's own table). */
const ALLOWED: [string, string][] = [
  ['POST', '/sdapi/v1/txt2img'],
  ['POST', '/sdapi/v1/img2img'],
  ['POST', '/sdapi/v1/extra-single-image'],
  ['POST', '/sdapi/v1/extra-batch-images'],
  ['POST', '/sdapi/v1/png-info'],
  ['POST', '/sdapi/v1/interrogate'],
  ...[
    'sd-models',
    'samplers',
    'schedulers',
    'upscalers',
    'latent-upscale-modes',
    'sd-vae',
    'loras',
    'embeddings',
    'hypernetworks',
    'face-restorers',
    'realesrgan-models',
    'prompt-styles',
    'scripts',
    'script-info',
    'extensions',
    'memory',
    'options',
    'progress',
  ].map((name): [string, string] => ['GET', `/sdapi/v1/${name}`]),
  ['GET', '/controlnet/model_list'],
  ['POST', '/sdapi/v1/options'],
  ...['refresh-checkpoints', 'refresh-vae', 'refresh-embeddings', 'refresh-loras'].map((name): [string, string] => [
    'POST',
    `/sdapi/v1/${name}`,
  ]),
];
const FORBIDDEN = [
  '/sdapi/v1/server-kill',
  '/sdapi/v1/server-restart',
  '/sdapi/v1/server-stop',
  '/sdapi/v1/cmd-flags',
  '/sdapi/v1/train/embedding',
  '/sdapi/v1/create/hypernetwork',
  '/sdapi/v1/../../internal/ping',
  '/sdapi/v1/interrupt',
  '/v1/download',
  '/sdapi/v1/txt2img/',
  '/sdapi/v1/sd-models?x=1',
];

/** The fields each operation's v1.9.3 model has, a few of each (the rest are the txt2img fuzz's). */
const FIELDS: Record<string, string[]> = {
  '/sdapi/v1/txt2img': ['prompt', 'steps', 'width', 'height', 'seed', 'alwayson_scripts'],
  '/sdapi/v1/img2img': [
    'prompt',
    'steps',
    'init_images',
    'mask',
    'denoising_strength',
    'resize_mode',
    'inpainting_fill',
    'latent_mask',
    'batch_size',
    'alwayson_scripts',
  ],
  '/sdapi/v1/extra-single-image': [
    'image',
    'upscaler_1',
    'upscaler_2',
    'resize_mode',
    'upscaling_resize',
    'upscaling_resize_w',
    'gfpgan_visibility',
  ],
  '/sdapi/v1/extra-batch-images': ['imageList', 'upscaler_1', 'resize_mode', 'upscaling_resize'],
  '/sdapi/v1/png-info': ['image'],
  '/sdapi/v1/interrogate': ['image', 'model'],
  '/sdapi/v1/options': ['sd_model_checkpoint', 'CLIP_stop_at_last_layers', 'samples_format', 'not_an_option'],
};

const png = pngImage(16, 16, 3).toString('base64');
const goodImage = fc.constantFrom(
  png,
  `data:image/png;base64,${png}`,
  `data:image/png;charset=utf-8;base64,${png}`,
  `DATA:IMAGE/PNG;BASE64,${png}`,
);
const badImage = fc.constantFrom(
  'data:image/png,abc',
  'data:text/plain;base64,aGVsbG8=',
  '',
  'not an image',
  'aGVsbG8=',
  'http://127.0.0.1:1/x.png',
  'http://169.254.169.254/latest/meta-data',
  'http://[::1]/x.png',
  'https://',
  'file:///etc/passwd',
  'ftp://example.com/x.png',
);
const image = fc.oneof({ arbitrary: goodImage, weight: 4 }, { arbitrary: badImage, weight: 1 });
const wild = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom('NaN', '', '\u0000', '__proto__', 'x'.repeat(5_000)),
  image,
);

/** A good value four times in five, a wild one otherwise. */
const mostly = (good: fc.Arbitrary<unknown>) =>
  fc.oneof({ arbitrary: good, weight: 4 }, { arbitrary: wild, weight: 1 });

function value(field: string): fc.Arbitrary<unknown> {
  switch (field) {
    case 'image':
    case 'mask':
      return fc.oneof({ arbitrary: image, weight: 3 }, { arbitrary: wild, weight: 1 });
    case 'init_images':
      return fc.oneof(
        { arbitrary: fc.array(image, { minLength: 1, maxLength: 3 }), weight: 3 },
        { arbitrary: wild, weight: 1 },
      );
    case 'imageList':
      return fc.array(fc.record({ data: image, name: fc.string({ maxLength: 5 }) }), { maxLength: 3 });
    case 'alwayson_scripts':
      return fc.record(
        {
          controlnet: fc.record({
            args: fc.array(fc.record({ image, input_image: image }, { requiredKeys: [] }), { maxLength: 2 }),
          }),
          reactor: fc.record({ args: fc.tuple(image, fc.boolean()) }),
        },
        { requiredKeys: [] },
      );
    case 'prompt':
      return mostly(fc.string({ maxLength: 20 }));
    case 'latent_mask':
      return mostly(fc.constantFrom(null, ''));
    case 'steps':
      return mostly(fc.integer({ min: 1, max: 3 }));
    case 'width':
    case 'height':
      return mostly(fc.constantFrom(64, 72));
    case 'batch_size':
      return mostly(fc.constantFrom(1, 2, 3));
    case 'upscaler_1':
    case 'upscaler_2':
      return mostly(fc.constantFrom('None', 'Lanczos', 'lanczos', 'Nearest', 'nope'));
    case 'model':
      return mostly(fc.constantFrom('clip', 'deepdanbooru', 'CLIP'));
    case 'sd_model_checkpoint':
      return mostly(fc.constantFrom('model', 'model.safetensors', 'missing'));
    default:
      return mostly(fc.oneof(fc.integer({ min: 0, max: 3 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.boolean()));
  }
}

/** The field an operation cannot do without; the generator leaves it out one time in ten. */
const REQUIRED: Record<string, string> = {
  '/sdapi/v1/img2img': 'init_images',
  '/sdapi/v1/extra-single-image': 'image',
  '/sdapi/v1/extra-batch-images': 'imageList',
  '/sdapi/v1/png-info': 'image',
  '/sdapi/v1/interrogate': 'image',
};

const payloadFor = (path: string) =>
  fc
    .tuple(
      fc.uniqueArray(fc.constantFrom(...(Object.hasOwn(FIELDS, path) ? FIELDS[path]! : ['x', 'tab'])), {
        maxLength: 4,
      }),
      fc.oneof({ arbitrary: fc.constant(true), weight: 9 }, { arbitrary: fc.constant(false), weight: 1 }),
    )
    .map(([fields, keep]) => {
      const required = Object.hasOwn(REQUIRED, path) ? REQUIRED[path]! : undefined;
      const rest = fields.filter((field) => field !== required);
      return keep && required ? [required, ...rest] : rest;
    })
    .chain((fields) =>
      fc.tuple(...fields.map(value)).map((values) => Object.fromEntries(fields.map((f, i) => [f, values[i]]))),
    );

const endpoint = fc.oneof(
  { arbitrary: fc.constantFrom(...ALLOWED).map(([method, path]) => ({ method, path, allowed: true })), weight: 6 },
  { arbitrary: fc.constantFrom(...FORBIDDEN).map((path) => ({ method: 'POST', path, allowed: false })), weight: 2 },
  { arbitrary: fc.string({ maxLength: 30 }).map((path) => ({ method: 'GET', path, allowed: false })), weight: 1 },
);

const envelopeInput = endpoint.chain(({ method, path, allowed }) =>
  fc
    .record({
      method: fc.oneof(
        { arbitrary: fc.constantFrom(method, method.toLowerCase()), weight: 8 },
        { arbitrary: fc.constantFrom<unknown>('DELETE', 'PUT', 5, null), weight: 1 },
      ),
      slash: fc.boolean(),
      payload: fc.oneof({ arbitrary: payloadFor(path), weight: 12 }, { arbitrary: wild, weight: 1 }),
      extra: fc.oneof(
        { arbitrary: fc.constant(undefined), weight: 12 },
        { arbitrary: fc.constantFrom('webhook', 'input', 'api_key'), weight: 1 },
      ),
    })
    .map(({ method: asked, slash, payload, extra }) => ({
      input: {
        api: { method: asked, endpoint: slash ? path : path.replace(/^\/+/, '') },
        payload,
        ...(extra ? { [extra]: 'x' } : {}),
      } as Record<string, unknown>,
      allowed: (allowed && asked === method) || (allowed && asked === method.toLowerCase()),
    })),
);

/**
 * One well-formed envelope per operation, run first on every seed: the random ones reach each route
 * only a few dozen times in the suite's runs, and not always with a payload A1111 accepts.
 */
const EXAMPLES: { input: Record<string, unknown>; allowed: boolean }[] = [
  ['/sdapi/v1/txt2img', { prompt: 'a lighthouse', steps: 1, width: 64, height: 64 }],
  ['/sdapi/v1/img2img', { prompt: 'a lighthouse', steps: 1, init_images: [png], denoising_strength: 0.5 }],
  [
    '/sdapi/v1/extra-single-image',
    { image: `data:image/png;base64,${png}`, upscaler_1: 'Lanczos', upscaling_resize: 2 },
  ],
  ['/sdapi/v1/extra-batch-images', { imageList: [{ data: png, name: 'a' }], upscaler_1: 'Nearest' }],
  ['/sdapi/v1/png-info', { image: png }],
  ['/sdapi/v1/interrogate', { image: png, model: 'clip' }],
].map(([path, payload]) => ({ input: { api: { method: 'POST', endpoint: path }, payload }, allowed: true }));

/** The strings a request holds where A1111 takes an image. */
function imagesIn(body: unknown): string[] {
  if (typeof body !== 'object' || body === null) return [];
  const record = body as Record<string, unknown>;
  const found: unknown[] = [record['image'], record['mask']];
  if (Array.isArray(record['init_images'])) found.push(...record['init_images']);
  if (Array.isArray(record['imageList']))
    found.push(...record['imageList'].map((item) => (item as { data?: unknown })?.data));
  const scripts = record['alwayson_scripts'];
  if (typeof scripts === 'object' && scripts !== null) {
    for (const script of Object.values(scripts)) {
      const args = (script as { args?: unknown })?.args;
      if (!Array.isArray(args)) continue;
      for (const arg of args) {
        if (typeof arg === 'string') found.push(arg);
        else if (typeof arg === 'object' && arg !== null) {
          const unit = arg as Record<string, unknown>;
          found.push(unit['image'], unit['input_image'], unit['mask'], unit['mask_image']);
        }
      }
    }
  }
  return found.filter((value): value is string => typeof value === 'string');
}

describe('envelopes of every shape', () => {
  it(
    'never throw or fail INTERNAL, reach only allowed routes, and send A1111 no URL',
    async () => {
      const sim = await simulator();
      const { runner } = testWorker(sim.url, {
        LOG_LEVEL: 'error',
        JOB_TIMEOUT_MS: '5000',
        PROGRESS_POLL_INTERVAL_MS: '0',
        A1111_HTTP_RETRIES: '0',
        A1111_ROUTE_RECOVERY_ATTEMPTS: '0',
      });
      const allowedPaths = new Set([...ALLOWED.map(([, path]) => path), '/sdapi/v1/interrupt']);
      const runs = fuzzRuns(1_500);
      const started = performance.now();
      let id = 0;
      let succeeded = 0;
      const reached = new Set<string>();
      const failedExamples: string[] = [];
      await fc.assert(
        fc.asyncProperty(envelopeInput, async ({ input, allowed }) => {
          const callsBefore = sim.calls.length;
          const outcome = await runner.run({ id: `envelope-${id++}`, input });
          const calls = sim.calls.slice(callsBefore);
          if (outcome.ok) succeeded++;
          else if (EXAMPLES.some((example) => example.input === input))
            failedExamples.push(`${JSON.stringify(input['api'])}: ${outcome.failure.code} ${outcome.failure.message}`);
          for (const call of calls) reached.add(call.path);
          if (!outcome.ok) {
            expect(outcome.failure.code, outcome.failure.message).not.toBe('INTERNAL');
            if (outcome.failure.code === 'INVALID_INPUT') {
              const problems = outcome.failure.details['problems'] as { field: unknown }[];
              expect(problems.length).toBeGreaterThan(0);
              for (const problem of problems) expect(typeof problem.field).toBe('string');
            }
          }
          if (!allowed) {
            expect(outcome.ok ? 'ok' : outcome.failure.code).toBe('INVALID_INPUT');
            expect(calls).toEqual([]);
          }
          for (const call of calls) {
            expect(allowedPaths.has(call.path), call.path).toBe(true);
            for (const sent of imagesIn(call.body)) expect(sent).not.toMatch(/^(https?:|data:|file:)/i);
          }
        }),
        // The examples count among the runs: never fewer runs than examples.
        { numRuns: Math.max(runs, EXAMPLES.length), examples: EXAMPLES.map((example) => [example]) },
      );
      reportFuzz('envelopes', runs, started);
      // Every operation's well-formed envelope gets through to its route.
      expect(failedExamples).toEqual([]);
      for (const [, path] of ALLOWED.filter(([method]) => method === 'POST').slice(0, 6))
        expect(reached).toContain(path);
      // The generator is worth its runs only if a fair share of envelopes gets through to A1111.
      if (runs >= 500) expect(succeeded).toBeGreaterThan(runs / 10);
    },
    fuzzTimeout(15),
  );
});
