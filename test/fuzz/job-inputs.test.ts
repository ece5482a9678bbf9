/**
 * Job inputs of every shape through the job runner, against the simulator: wrong types per field,
 * huge numbers, NaN and Infinity as strings, deep nesting, huge strings, `__proto__` and `constructor`
 * keys, unicode and control characters, arrays for objects, inputs that are no object at all.
 *
 * Properties: the runner never throws and never fails INTERNAL; every INVALID_INPUT names the fields it
 * refuses; an input with a field of the wrong JSON type is refused before anything reaches A1111; no
 * hint for a foreign name quotes a JavaScript built-in.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzRuns, fuzzTimeout, reportFuzz } from '../support/fuzz.js';
import { simulator } from '../support/simulator.js';
import { generated, testWorker } from '../support/worker.js';

type Kind = 'string' | 'integer' | 'number' | 'boolean' | 'object' | 'array';

/** The JSON type of each v1.9.3 txt2img field, and whether the worker takes null for it (from the API contract). */
const FIELDS: Record<string, [Kind, boolean]> = {
  prompt: ['string', false],
  negative_prompt: ['string', false],
  styles: ['array', true],
  seed: ['integer', true],
  subseed: ['integer', true],
  subseed_strength: ['number', false],
  seed_resize_from_h: ['integer', false],
  seed_resize_from_w: ['integer', false],
  sampler_name: ['string', true],
  scheduler: ['string', true],
  batch_size: ['integer', false],
  n_iter: ['integer', false],
  steps: ['integer', false],
  cfg_scale: ['number', false],
  width: ['integer', false],
  height: ['integer', false],
  restore_faces: ['boolean', true],
  tiling: ['boolean', true],
  do_not_save_samples: ['boolean', false],
  do_not_save_grid: ['boolean', false],
  eta: ['number', true],
  denoising_strength: ['number', true],
  s_min_uncond: ['number', true],
  s_churn: ['number', true],
  s_tmax: ['number', true],
  s_tmin: ['number', true],
  s_noise: ['number', true],
  override_settings: ['object', true],
  override_settings_restore_afterwards: ['boolean', false],
  refiner_checkpoint: ['string', true],
  refiner_switch_at: ['number', true],
  disable_extra_networks: ['boolean', false],
  firstpass_image: ['string', true],
  comments: ['object', true],
  enable_hr: ['boolean', false],
  firstphase_width: ['integer', false],
  firstphase_height: ['integer', false],
  hr_scale: ['number', false],
  hr_upscaler: ['string', true],
  hr_second_pass_steps: ['integer', false],
  hr_resize_x: ['integer', false],
  hr_resize_y: ['integer', false],
  hr_checkpoint_name: ['string', true],
  hr_sampler_name: ['string', true],
  hr_scheduler: ['string', true],
  hr_prompt: ['string', false],
  hr_negative_prompt: ['string', false],
  force_task_id: ['string', true],
  sampler_index: ['string', false],
  script_name: ['string', true],
  script_args: ['array', false],
  send_images: ['boolean', false],
  save_images: ['boolean', false],
  alwayson_scripts: ['object', false],
  infotext: ['string', true],
};

function jsonKind(value: unknown): Kind | 'null' {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value as Kind;
}

/** True when `value` has a JSON type the field never takes (a number for a string field, null for a number…). */
function wrongType(field: string, value: unknown): boolean {
  const [kind, nullable] = FIELDS[field]!;
  const actual = jsonKind(value);
  if (actual === 'null') return !nullable;
  if (kind === 'number') return actual !== 'number' && actual !== 'integer';
  if (kind === 'integer') return actual !== 'integer' && actual !== 'number';
  return actual !== kind;
}

const oddStrings = fc.constantFrom(
  'NaN',
  'Infinity',
  '-Infinity',
  '1e309',
  '',
  ' ',
  '\u0000',
  '\u202e',
  '😀'.repeat(50),
);
const huge = fc.constantFrom('x'.repeat(200_000), 9e300, -9e300, Number.MAX_SAFE_INTEGER + 2);
const deep = fc.integer({ min: 20, max: 200 }).map((depth) => {
  let value: unknown = 'bottom';
  for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { nested: value };
  return value;
});
const anyJson = fc.oneof(
  { arbitrary: fc.jsonValue({ maxDepth: 3 }), weight: 4 },
  { arbitrary: oddStrings, weight: 2 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 40 }), weight: 2 },
  { arbitrary: huge, weight: 1 },
  { arbitrary: deep, weight: 1 },
);

/** A value a field takes, kept small so that a job which passes its checks renders in milliseconds. */
function goodValue(field: string): fc.Arbitrary<unknown> {
  const [kind] = FIELDS[field]!;
  if (field === 'width' || field === 'height') return fc.constantFrom(64, 72, 128);
  if (field === 'steps') return fc.integer({ min: 1, max: 3 });
  if (field === 'batch_size' || field === 'n_iter') return fc.constantFrom(1, 2);
  if (field === 'enable_hr') return fc.constant(false);
  if (field === 'sampler_name' || field === 'sampler_index' || field === 'hr_sampler_name') {
    return fc.constantFrom('Euler', 'Euler a', 'DPM++ 2M Karras', 'k_euler', 'no such sampler');
  }
  if (field === 'scheduler' || field === 'hr_scheduler') return fc.constantFrom('karras', 'Automatic', 'nope');
  switch (kind) {
    case 'string':
      return fc.string({ unit: 'binary', maxLength: 30 });
    case 'integer':
      return fc.integer({ min: -2, max: 20 });
    case 'number':
      return fc.double({ min: -1, max: 10, noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'object':
      return fc.dictionary(
        fc.constantFrom('constructor', '__proto__', 'sd_model_checkpoint', 'CLIP_stop_at_last_layers', 'x'),
        fc.jsonValue({ maxDepth: 1 }),
        { maxKeys: 2 },
      );
    case 'array':
      return fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 });
  }
}

const fieldNames = Object.keys(FIELDS);
const strangeKeys = fc.constantFrom(
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'valueOf',
  '',
  '\u0000',
  'ключ',
  'num_inference_steps',
  'guidance_scale',
  'api_key',
  'model',
);

const objectInput = fc
  .tuple(
    fc.uniqueArray(fc.constantFrom(...fieldNames), { maxLength: 8 }),
    fc.array(fc.tuple(strangeKeys, anyJson), { maxLength: 3 }),
  )
  .chain(([fields, extra]) =>
    fc
      .tuple(
        ...fields.map((field) =>
          fc.oneof({ arbitrary: goodValue(field), weight: 3 }, { arbitrary: anyJson, weight: 2 }),
        ),
      )
      .map((values) => {
        // As JSON.parse builds it: `__proto__` and `constructor` are own keys, not the prototype.
        const entries: [string, unknown][] = [
          ...fields.map((field, i) => [field, values[i]] as [string, unknown]),
          ...extra,
        ];
        const text = `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'}`).join(',')}}`;
        return JSON.parse(text) as Record<string, unknown>;
      }),
  );
const input = fc.oneof(
  { arbitrary: objectInput, weight: 8 },
  {
    arbitrary: fc.oneof(
      fc.string(),
      fc.integer(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.array(anyJson, { maxLength: 3 }),
    ),
    weight: 1,
  },
);

describe('job inputs of every shape', () => {
  it(
    'never throw, never fail INTERNAL, and a wrong JSON type never reaches A1111',
    async () => {
      const sim = await simulator();
      const { runner } = testWorker(sim.url, {
        LOG_LEVEL: 'error',
        JOB_TIMEOUT_MS: '5000',
        PROGRESS_POLL_INTERVAL_MS: '0',
        A1111_HTTP_RETRIES: '0',
      });
      const runs = fuzzRuns(2_500);
      const started = performance.now();
      let id = 0;
      await fc.assert(
        fc.asyncProperty(input, async (raw) => {
          const callsBefore = sim.calls.length;
          const outcome = await runner.run({ id: `fuzz-${id++}`, input: raw });
          const calls = sim.calls.slice(callsBefore);
          const notObject = typeof raw !== 'object' || raw === null || Array.isArray(raw);
          const mistyped = notObject ? [] : fieldNames.filter((f) => Object.hasOwn(raw, f) && wrongType(f, raw[f]));
          if (outcome.ok) {
            expect(notObject || mistyped.length > 0).toBe(false);
            expect(generated(outcome).worker.notes.join(' ')).not.toMatch(/native code|function /);
            return;
          }
          expect(outcome.failure.code).not.toBe('INTERNAL');
          if (outcome.failure.code === 'INVALID_INPUT') {
            const problems = outcome.failure.details['problems'] as { field: unknown }[];
            expect(problems.length).toBeGreaterThan(0);
            for (const problem of problems) expect(typeof problem.field).toBe('string');
          }
          if (notObject || mistyped.length > 0) {
            expect(outcome.failure.code).toBe('INVALID_INPUT');
            expect(calls).toEqual([]);
            const refused = (outcome.failure.details['problems'] as { field: string }[]).map((p) => p.field);
            for (const field of mistyped) expect(refused).toContain(field);
          }
        }),
        { numRuns: runs },
      );
      reportFuzz('job inputs', runs, started);
    },
    fuzzTimeout(15),
  );
});
