import { describe, expect, it } from 'vitest';
import { simulator } from '../support/simulator.js';
import { runPodResult, testWorker } from '../support/worker.js';

describe('input the worker refuses before anything reaches A1111', () => {
  const cases: { name: string; input: unknown; field: string; message: RegExp }[] = [
    {
      name: 'a string where a number belongs',
      input: { prompt: 'x', steps: '20' },
      field: 'steps',
      message: /steps = "20" breaks the rule "a whole number from 1 to 1000"/,
    },
    {
      name: 'steps below 1',
      input: { prompt: 'x', steps: 0 },
      field: 'steps',
      message: /steps = 0 breaks the rule "a whole number from 1 to 1000"/,
    },
    {
      name: 'a width that is not a multiple of 8',
      input: { prompt: 'x', width: 500 },
      field: 'width',
      message: /width = 500 breaks the rule "a whole number from 64 to 2048 that is a multiple of 8/,
    },
    {
      name: 'a height beyond what A1111 accepts',
      input: { prompt: 'x', height: 4096 },
      field: 'height',
      message: /height = 4096 breaks the rule/,
    },
    {
      name: 'batch_size below 1',
      input: { prompt: 'x', batch_size: 0 },
      field: 'batch_size',
      message: /batch_size = 0 breaks the rule "a whole number from 1 to 64"/,
    },
    {
      name: 'a null step count (A1111 would take it and crash later)',
      input: { prompt: 'x', steps: null },
      field: 'steps',
      message: /steps = null breaks the rule/,
    },
    {
      name: 'a boolean given as a word',
      input: { prompt: 'x', enable_hr: 'yes' },
      field: 'enable_hr',
      message: /enable_hr = "yes" breaks the rule "true or false"/,
    },
    {
      name: 'hires fix without a denoising strength',
      input: { prompt: 'x', enable_hr: true },
      field: 'denoising_strength',
      message: /denoising_strength = null breaks the rule "a number from 0 to 1 when enable_hr is true/,
    },
    {
      name: 'an input that is not an object',
      input: 'a lighthouse',
      field: 'input',
      message:
        /input = "a lighthouse" breaks the rule "an object: A1111 txt2img fields, or \{"api": \{...\}, "payload": \{...\}\}" \(got string\)/,
    },
    {
      name: 'no input at all',
      input: null,
      field: 'input',
      message: /got null/,
    },
  ];

  for (const { name, input, field, message } of cases) {
    it(`refuses ${name}, naming the field, the value and the rule`, async () => {
      const sim = await simulator();
      const { runner } = testWorker(sim.url);

      const outcome = await runner.run({ id: 'job-bad', input });

      if (outcome.ok) throw new Error('expected a failure');
      expect(outcome.failure).toMatchObject({ code: 'INVALID_INPUT', phase: 'booting', retryable: false });
      expect(outcome.failure.message).toMatch(message);
      expect((outcome.failure.details['problems'] as { field: string }[]).map((p) => p.field)).toContain(field);
      expect(sim.calls).toEqual([]);
    });
  }

  it('lists every broken rule at once', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({ id: 'job-many', input: { steps: -1, cfg_scale: 'high', width: 7 } });

    if (outcome.ok) throw new Error('expected a failure');
    expect((outcome.failure.details['problems'] as { field: string }[]).map((p) => p.field)).toEqual([
      'steps',
      'cfg_scale',
      'width',
    ]);
  });
});

describe('names the worker checks against the live A1111', () => {
  it('refuses a sampler A1111 does not offer, listing the ones it does, without calling txt2img', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({ id: 'job-sampler', input: { prompt: 'x', sampler_name: 'Euler Fancy' } });

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure).toMatchObject({ code: 'INVALID_INPUT', phase: 'verifyingModels' });
    expect(outcome.failure.message).toContain('sampler_name = "Euler Fancy" is not a sampler this A1111 offers');
    expect(outcome.failure.details['available']).toContain('DPM++ 2M');
    expect(sim.callsTo('POST', '/txt2img')).toEqual([]);
  });

  it('refuses a scheduler A1111 would silently replace', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({ id: 'job-scheduler', input: { prompt: 'x', scheduler: 'Karas' } });

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure.message).toContain('scheduler = "Karas" is not a scheduler this A1111 offers');
    expect(sim.callsTo('POST', '/txt2img')).toEqual([]);
  });

  it('fails MODEL_NOT_FOUND for a checkpoint A1111 does not list, and lists the available ones', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({
      id: 'job-no-model',
      input: { prompt: 'x', override_settings: { sd_model_checkpoint: 'sdxl_turbo.safetensors' } },
    });

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure).toMatchObject({
      code: 'MODEL_NOT_FOUND',
      phase: 'verifyingModels',
      details: { requested: 'sdxl_turbo.safetensors', available: ['model.safetensors'] },
    });
    expect(sim.callsTo('POST', '/txt2img')).toEqual([]);
  });

  it('refuses an override_settings key that is not an A1111 option (A1111 would answer a 500 KeyError)', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({ id: 'job-option', input: { prompt: 'x', override_settings: { clip_skip: 2 } } });

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure.code).toBe('INVALID_INPUT');
    expect(outcome.failure.message).toContain('"clip_skip"');
    expect(sim.callsTo('POST', '/txt2img')).toEqual([]);
  });
});

describe('requests A1111 itself refuses', () => {
  it('fails BACKEND_REJECTED at once on an application 404 ("Sampler not found"), with no recovery', async () => {
    const sim = await simulator();
    sim.rejectSampler('LCM');
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({ id: 'job-404-app', input: { prompt: 'x', sampler_name: 'LCM' } });

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure).toMatchObject({
      code: 'BACKEND_REJECTED',
      phase: 'inferring',
      retryable: false,
      details: { status: 404, a1111Error: 'HTTPException', detail: 'Sampler not found' },
    });
    expect(sim.callsTo('POST', '/txt2img')).toHaveLength(1);
    expect(sim.callsTo('GET', '/txt2img')).toEqual([]);
  });

  it('fails BACKEND_REJECTED with A1111’s reason on a 422', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({ id: 'job-422', input: { prompt: 'x', script_name: 'no such script' } });

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure).toMatchObject({ code: 'BACKEND_REJECTED', details: { status: 422 } });
    expect(outcome.failure.message).toContain("Script 'no such script' not found");
    expect(sim.callsTo('POST', '/txt2img')).toHaveLength(1);
  });

  it('never reports an A1111 error body as a successful output', async () => {
    const sim = await simulator();
    sim.rejectSampler('Euler');
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({ id: 'job-error-body', input: { prompt: 'x' } });

    const result = runPodResult(outcome);
    expect(result).not.toHaveProperty('output');
    expect(JSON.parse((result as { error: string }).error)).toMatchObject({ code: 'BACKEND_REJECTED' });
  });
});
