/**
 * Issue 15: `refiner_checkpoint` and `hr_checkpoint_name` went to A1111 unchecked, so
 * `"../../etc/passwd"` cost a wait for the GPU and then a 500. They are verified like
 * `override_settings.sd_model_checkpoint`: an unknown name fails MODEL_NOT_FOUND with the available
 * ones, before anything is generated; a name A1111 would find is sent as its listed title.
 */
import { describe, expect, it } from 'vitest';
import { simulator } from '../support/simulator.js';
import { generated, testWorker } from '../support/worker.js';

const base = { prompt: 'x', steps: 2, seed: 1, width: 64, height: 64 };

describe('the refiner and hires-pass checkpoints', () => {
  it('fail MODEL_NOT_FOUND for a name A1111 does not list, with no generation', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const refiner = await runner.run({ id: 'job-refiner', input: { ...base, refiner_checkpoint: '../../etc/passwd' } });
    const hires = await runner.run({
      id: 'job-hires',
      input: { ...base, enable_hr: true, denoising_strength: 0.5, hr_checkpoint_name: 'sdxl_turbo' },
    });

    for (const [outcome, field, name] of [
      [refiner, 'refiner_checkpoint', '../../etc/passwd'],
      [hires, 'hr_checkpoint_name', 'sdxl_turbo'],
    ] as const) {
      if (outcome.ok) throw new Error(`${field} was not checked`);
      expect(outcome.failure).toMatchObject({
        code: 'MODEL_NOT_FOUND',
        phase: 'verifyingModels',
        details: { field, requested: name, available: ['model.safetensors'] },
      });
      expect(outcome.failure.message).toContain(`${field} "${name}" is not a checkpoint A1111 lists`);
    }
    expect(sim.callsTo('POST', '/txt2img')).toEqual([]);
  });

  it('send a name A1111 would find as its listed title, and leave the values that name none alone', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({
      id: 'job-refiner-ok',
      input: { ...base, refiner_checkpoint: 'mod', hr_checkpoint_name: 'unknown, but no hires pass' },
    });
    const none = await runner.run({ id: 'job-refiner-none', input: { ...base, refiner_checkpoint: 'None' } });

    if (!outcome.ok || !none.ok) throw new Error('expected both to succeed');
    const [sent, sentNone] = sim.callsTo('POST', '/txt2img').map((c) => c.body as Record<string, unknown>);
    expect(sent).toMatchObject({
      refiner_checkpoint: 'model.safetensors',
      hr_checkpoint_name: 'unknown, but no hires pass',
    });
    expect(generated(outcome).worker.notes).toContain('refiner_checkpoint "mod" sent as "model.safetensors"');
    expect(sentNone).toMatchObject({ refiner_checkpoint: 'None' });
  });
});
