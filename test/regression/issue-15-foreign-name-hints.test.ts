/**
 * Issue 15: the hint for a foreign field name was looked up on a plain object, so a job's
 * `constructor` or `hasOwnProperty` key found JavaScript's built-ins and the job's notes said
 * `did you mean "function Object() { [native code] }"?`.
 */
import { describe, expect, it } from 'vitest';
import { simulator } from '../support/simulator.js';
import { generated, testWorker } from '../support/worker.js';

describe('keys named like JavaScript built-ins', () => {
  it('get no hint and reach A1111 as the unknown keys they are', async () => {
    const sim = await simulator();
    const { runner, logs } = testWorker(sim.url);
    const input = JSON.parse(
      '{"prompt":"x","steps":2,"seed":1,"width":64,"height":64,"constructor":1,"__proto__":{"a":1},"toString":"y","num_inference_steps":30}',
    ) as Record<string, unknown>;

    const outcome = await runner.run({ id: 'job-builtins', input });

    if (!outcome.ok) throw new Error(outcome.failure.message);
    expect(generated(outcome).worker.notes).toEqual([
      '"num_inference_steps" is not an A1111 txt2img field and A1111 ignores it; did you mean "steps"?',
    ]);
    expect(logs.lines.join('\n')).not.toContain('native code');
    const sent = sim.callsTo('POST', '/txt2img')[0]!.body as Record<string, unknown>;
    expect(Object.hasOwn(sent, 'constructor') && Object.hasOwn(sent, '__proto__')).toBe(true);
  });
});
