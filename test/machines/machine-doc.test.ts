import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { eventLabel, renderMachineDoc } from '../../src/tools/machine-doc.js';

describe('docs/machine.md', () => {
  it('is the diagram generated from the current machine definition', async () => {
    const committed = await readFile(new URL('../../docs/machine.md', import.meta.url), 'utf8');
    expect(committed, 'docs/machine.md is stale: run npm run docs:machine').toBe(renderMachineDoc());
  });

  it('draws every state the design card names, and explains each', () => {
    const doc = renderMachineDoc();
    for (const state of [
      'booting',
      'waitingForApi',
      'ready',
      'inferring',
      'recovering',
      'verifyingModels',
      'postDownloadStabilizing',
    ]) {
      expect(doc).toMatch(new RegExp(`\\| \`${state}\` \\| \\S`));
    }
    expect(doc).toContain('inferring --> recovering : error: callA1111 [canRecoverRoute]');
  });

  it('labels events briefly', () => {
    expect(eventLabel('xstate.done.actor.probeApi')).toBe('done: probeApi');
    expect(eventLabel('xstate.after.recoveryDelay.job.recovering')).toBe('after recoveryDelay');
    expect(eventLabel('')).toBe('always');
  });
});
