import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderPixels } from '../../src/simulator/png.js';
import { decodePng, rgbOf } from '../support/png.js';
import { simulator } from '../support/simulator.js';
import { generated, runPodResult, testWorker } from '../support/worker.js';

describe('a job that goes well', () => {
  it('returns A1111’s PNGs, decodable and rendered from the requested seeds, with the infotext inside', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({
      id: 'job-happy',
      input: {
        prompt: 'a lighthouse',
        negative_prompt: 'blurry',
        steps: 12,
        seed: 1234,
        batch_size: 2,
        width: 256,
        height: 192,
      },
    });

    if (!outcome.ok) throw new Error(outcome.failure.message);
    expect(generated(outcome).images).toHaveLength(2);
    for (const [index, image] of generated(outcome).images.entries()) {
      const png = decodePng(image);
      expect([png.width, png.height]).toEqual([256, 192]);
      expect(rgbOf(png).equals(renderPixels(1234 + index, 256, 192))).toBe(true);
      expect(png.text['parameters']).toContain(`Seed: ${1234 + index}`);
      expect(png.text['parameters']).toMatch(/^a lighthouse\nNegative prompt: blurry\nSteps: 12, /);
    }
    const info = JSON.parse(generated(outcome).info) as Record<string, unknown>;
    expect(info['all_seeds']).toEqual([1234, 1235]);
    expect(info['sd_model_name']).toBe('model');
  });

  it('passes A1111’s response through unchanged and adds only the worker report', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({ id: 'job-shape', input: { prompt: 'x', steps: 3, seed: 7 } });

    if (!outcome.ok) throw new Error(outcome.failure.message);
    expect(Object.keys(generated(outcome)).sort()).toEqual(['images', 'info', 'parameters', 'worker']);
    expect(typeof generated(outcome).info).toBe('string');
    expect(generated(outcome).parameters['steps']).toBe(3);
    expect(generated(outcome).parameters['sampler_index']).toBe('Euler');
    const { timings_ms: timings, recoveries, notes } = generated(outcome).worker;
    expect(recoveries).toBe(0);
    expect(notes).toEqual([]);
    expect(Object.keys(timings).sort()).toEqual([
      'booting',
      'delivering',
      'inferring',
      'ready',
      'total',
      'verifyingModels',
      'waitingForApi',
    ]);
    const phases = Object.entries(timings).filter(([key]) => key !== 'total');
    expect(phases.reduce((sum, [, ms]) => sum + (ms ?? 0), 0)).toBeCloseTo(timings.total, -1);
    expect(runPodResult(outcome)).toEqual({ output: generated(outcome) });
  });

  it('sends A1111 the input as given, unknown keys included, and nothing the job did not ask for', async () => {
    const sim = await simulator();
    const { runner, logs } = testWorker(sim.url);
    const input = { prompt: 'a fox', steps: 5, seed: 3, my_extension_flag: { on: true }, num_inference_steps: 30 };

    const outcome = await runner.run({ id: 'job-passthrough', input });

    expect(outcome.ok).toBe(true);
    const [post] = sim.callsTo('POST', '/txt2img');
    expect(post?.body).toEqual(input);
    const hint = logs.records().find((r) => r['level'] === 'warn' && r['key'] === 'num_inference_steps');
    expect(hint?.['message']).toContain('did you mean "steps"');
    if (outcome.ok) expect(generated(outcome).worker.notes[0]).toContain('num_inference_steps');
  });

  it('logs one line per lifecycle transition with job id, from, to, event and elapsed time, and never an image', async () => {
    const sim = await simulator();
    const { runner, logs } = testWorker(sim.url);

    await runner.run({ id: 'job-logged', input: { prompt: 'x', steps: 2, seed: 1 } });

    const transitions = logs.records().filter((r) => r['message'] === 'transition' && r['level'] === 'info');
    expect(transitions.map((r) => `${r['from']}→${r['to']}`)).toEqual([
      'booting→waitingForApi',
      'waitingForApi→verifyingModels',
      'verifyingModels→ready',
      'ready→inferring',
      'inferring→delivering',
      'delivering→succeeded',
    ]);
    for (const line of transitions) {
      expect(line['jobId']).toBe('job-logged');
      expect(typeof line['event']).toBe('string');
      expect(typeof line['elapsedMs']).toBe('number');
    }
    expect(logs.lines.join('\n')).not.toContain('iVBOR');
  });

  it('logs the same transitions at info level, where nothing inspects the actor system', async () => {
    const sim = await simulator();
    const transitionsAt = async (level: string) => {
      const { runner, logs } = testWorker(sim.url, { LOG_LEVEL: level });
      await runner.run({ id: `job-${level}`, input: { prompt: 'x', steps: 2, seed: 1 } });
      return logs.records().filter((r) => r['message'] === 'transition');
    };

    const atDebug = (await transitionsAt('debug')).filter((r) => r['level'] === 'info');
    const atInfo = await transitionsAt('info');

    expect(atInfo.map((r) => [r['from'], r['to'], r['event']])).toEqual(
      atDebug.map((r) => [r['from'], r['to'], r['event']]),
    );
    expect(atInfo.map((r) => r['event'])).toEqual([
      'xstate.done.actor.validateInput',
      'xstate.done.actor.probeApi',
      'xstate.done.actor.verifyModels',
      'xstate.done.actor.verifyModels',
      'xstate.done.actor.callA1111',
      'xstate.done.actor.deliverResult',
    ]);
  });

  it('splits a 1.8-era sampler name into sampler and scheduler and says so', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({
      id: 'job-karras',
      input: { prompt: 'x', steps: 2, sampler_name: 'DPM++ 2M Karras' },
    });

    expect(outcome.ok).toBe(true);
    const [post] = sim.callsTo('POST', '/txt2img');
    expect(post?.body).toMatchObject({ sampler_name: 'DPM++ 2M', scheduler: 'karras' });
    if (outcome.ok) {
      expect(generated(outcome).worker.notes).toEqual([
        'sampler_name "DPM++ 2M Karras" split into sampler_name "DPM++ 2M" and scheduler "karras" (the A1111 1.9 naming)',
      ]);
      expect(JSON.parse(generated(outcome).info).infotexts[0]).toContain('Sampler: DPM++ 2M, Schedule type: Karras');
    }
  });

  it('renders with the checkpoint the job names, found by its file stem', async () => {
    const modelsDir = await mkdtemp(path.join(tmpdir(), 'models-'));
    await writeFile(path.join(modelsDir, 'dreamshaper_8.safetensors'), 'weights');
    const sim = await simulator({ modelsDir });
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({
      id: 'job-checkpoint',
      input: { prompt: 'x', steps: 2, override_settings: { sd_model_checkpoint: 'dreamshaper_8' } },
    });

    if (!outcome.ok) throw new Error(outcome.failure.message);
    expect(JSON.parse(generated(outcome).info).sd_model_name).toBe('dreamshaper_8');
    expect(sim.callsTo('POST', '/txt2img')[0]?.body).toMatchObject({
      override_settings: { sd_model_checkpoint: 'dreamshaper_8.safetensors' },
    });
  });
});
