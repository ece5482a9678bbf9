import { describe, expect, it } from 'vitest';
import { findCheckpoint, resolveSampler, resolveScheduler } from '../../src/a1111/names.js';
import type { Sampler, Scheduler, SdModel } from '../../src/a1111/schemas.js';

const samplers: Sampler[] = [
  { name: 'DPM++ 2M', aliases: ['k_dpmpp_2m'], options: { scheduler: 'karras' } },
  { name: 'DPM++ SDE', aliases: ['k_dpmpp_sde'], options: {} },
  { name: 'Euler a', aliases: ['k_euler_a', 'k_euler_ancestral'], options: {} },
  { name: 'Euler', aliases: ['k_euler'], options: {} },
];
const schedulers: Scheduler[] = [
  { name: 'automatic', label: 'Automatic', aliases: null, default_rho: -1, need_inner_model: false },
  { name: 'karras', label: 'Karras', aliases: null, default_rho: 7, need_inner_model: false },
  { name: 'exponential', label: 'Exponential', aliases: null, default_rho: null, need_inner_model: false },
  { name: 'sgm_uniform', label: 'SGM Uniform', aliases: ['SGMUniform'], default_rho: null, need_inner_model: true },
];

describe('sampler names', () => {
  it('keeps an exact name', () => {
    expect(resolveSampler('Euler a', samplers, schedulers)).toEqual({ name: 'Euler a', how: 'exact' });
  });

  it('maps an alias or a case slip to the exact name', () => {
    expect(resolveSampler('k_euler_ancestral', samplers, schedulers)).toEqual({ name: 'Euler a', how: 'renamed' });
    expect(resolveSampler('euler A', samplers, schedulers)).toEqual({ name: 'Euler a', how: 'renamed' });
  });

  it('splits 1.8-era combined names by scheduler label, name or alias', () => {
    expect(resolveSampler('DPM++ 2M Karras', samplers, schedulers)).toEqual({
      name: 'DPM++ 2M',
      scheduler: 'karras',
      how: 'split',
    });
    expect(resolveSampler('DPM++ SDE Exponential', samplers, schedulers)).toMatchObject({ scheduler: 'exponential' });
    expect(resolveSampler('Euler SGM Uniform', samplers, schedulers)).toMatchObject({
      name: 'Euler',
      scheduler: 'sgm_uniform',
    });
    expect(resolveSampler('Euler SGMUniform', samplers, schedulers)).toMatchObject({ scheduler: 'sgm_uniform' });
  });

  it('does not split on "Automatic", nor on an A1111 without schedulers', () => {
    expect(resolveSampler('Euler Automatic', samplers, schedulers)).toBeNull();
    expect(resolveSampler('DPM++ 2M Karras', samplers, null)).toBeNull();
  });

  it('knows nothing of a made-up name', () => {
    expect(resolveSampler('Euler Fancy', samplers, schedulers)).toBeNull();
  });
});

describe('scheduler names', () => {
  it('resolves name, label and alias in any case to the name', () => {
    expect(resolveScheduler('Karras', schedulers)).toBe('karras');
    expect(resolveScheduler('SGMUniform', schedulers)).toBe('sgm_uniform');
    expect(resolveScheduler('EXPONENTIAL', schedulers)).toBe('exponential');
    expect(resolveScheduler('karas', schedulers)).toBeNull();
  });
});

describe('checkpoint names', () => {
  const models: SdModel[] = [
    {
      title: 'model.safetensors',
      model_name: 'model',
      filename: '/model.safetensors',
      hash: null,
      sha256: null,
      config: null,
    },
    {
      title: 'sdxl/juggernaut_v9.safetensors [1a2b3c4d5e]',
      model_name: 'sdxl_juggernaut_v9',
      filename: '/models/Stable-diffusion/sdxl/juggernaut_v9.safetensors',
      hash: '1a2b3c4d5e',
      sha256: null,
      config: null,
    },
  ];

  it('finds a checkpoint by title, title without hash, model_name, path, file name and stem', () => {
    for (const name of [
      'sdxl/juggernaut_v9.safetensors [1a2b3c4d5e]',
      'sdxl/juggernaut_v9.safetensors',
      'sdxl_juggernaut_v9',
      '/models/Stable-diffusion/sdxl/juggernaut_v9.safetensors',
      'juggernaut_v9.safetensors',
      'juggernaut_v9',
      'JUGGERNAUT_V9',
    ]) {
      expect(findCheckpoint(name, models)?.model_name, name).toBe('sdxl_juggernaut_v9');
    }
  });

  it('finds a hashed checkpoint by its shorthash, sha256 and "stem [shorthash]", as A1111 does', () => {
    const sha256 = `1a2b3c4d5e${'f'.repeat(54)}`;
    const hashed = models.map((m) => (m.model_name === 'sdxl_juggernaut_v9' ? { ...m, sha256 } : m));
    for (const name of ['1a2b3c4d5e', sha256, 'juggernaut_v9 [1a2b3c4d5e]']) {
      expect(findCheckpoint(name, hashed)?.model_name, name).toBe('sdxl_juggernaut_v9');
    }
    // Without hashing (--no-hashing) there is no hash to ask by.
    expect(
      findCheckpoint('1a2b3c4d5e', [{ ...models[0]!, hash: null, title: 'sdxl/juggernaut_v9.safetensors' }]),
    ).toBeUndefined();
  });

  it('finds nothing for an unlisted name', () => {
    expect(findCheckpoint('dreamshaper_8', models)).toBeUndefined();
  });
});
