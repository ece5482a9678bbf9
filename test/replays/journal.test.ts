import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseJournal } from '../../src/journal/journal.js';
import { replayJournal } from '../../src/journal/replay.js';
import { simulator } from '../support/simulator.js';
import { testWorker } from '../support/worker.js';

const blob = Buffer.from(Array.from({ length: 5_000 }, (_, i) => i % 251)).toString('base64');

describe('job journals', () => {
  it('are kept for failed jobs only by default, and replay', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'journals-'));
    const sim = await simulator();
    const { runner, logs } = testWorker(sim.url, { JOURNAL_DIR: dir });

    await runner.run({ id: 'fine', input: { prompt: 'x', steps: 2 } });
    await runner.run({ id: 'broken/1', input: { prompt: 'x', sampler_name: 'Nope' } });

    expect(await readdir(dir)).toEqual(['broken_1.jsonl']);
    const lines = parseJournal(await readFile(path.join(dir, 'broken_1.jsonl'), 'utf8'));
    expect(lines[0]).toMatchObject({ type: 'journal', jobId: 'broken/1', input: { sampler_name: 'Nope' } });
    expect(replayJournal(lines).divergence).toBeNull();
    expect(logs.records().find((r) => r['message'] === 'journal written')?.['file']).toBe(path.join(dir, 'broken_1.jsonl'));
  });

  it('keep every job with JOURNAL_KEEP=all, with base64 payloads summarized by size and sha256', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'journals-'));
    const sim = await simulator();
    const { runner } = testWorker(sim.url, { JOURNAL_DIR: dir, JOURNAL_KEEP: 'all' });

    await runner.run({ id: 'kept', input: { prompt: 'x', steps: 2, my_extension: { image: blob } } });

    const text = await readFile(path.join(dir, 'kept.jsonl'), 'utf8');
    expect(text).not.toContain(blob.slice(0, 100));
    expect(text).toMatch(/<base64 5000 bytes sha256:[0-9a-f]{64}>/);
    expect(text).not.toContain('iVBORw0KGgo'); // no PNG from the result either
    const lines = parseJournal(text);
    expect(lines.at(-1)).toMatchObject({ type: 'result', output: { status: 'succeeded' } });
    expect(lines.filter((l) => l.type === 'step').map((l) => (l as { state: string }).state)).toEqual([
      'booting',
      'waitingForApi.probing',
      'verifyingModels',
      'ready.routing',
      'inferring',
      'delivering',
      'succeeded',
    ]);
    expect(replayJournal(lines).divergence).toBeNull();
  });

  it('never hold a credential a job carried, and still replay', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'journals-'));
    const sim = await simulator();
    const { runner } = testWorker(sim.url, { JOURNAL_DIR: dir });
    const input = {
      prompt: 'x',
      hf_token: 'hf_SECRETVALUE123',
      model: {
        checkpoint: 'b.safetensors',
        url: 'https://user:pw-SECRET3@huggingface.co/a/b.safetensors?download=true&token=hf_SECRET2',
      },
    };

    const outcome = await runner.run({ id: 'with-secrets', input });

    expect(outcome.ok).toBe(false); // refused INVALID_INPUT: credentials belong on the worker
    const text = await readFile(path.join(dir, 'with-secrets.jsonl'), 'utf8');
    expect(text).not.toMatch(/SECRET/);
    const [header] = parseJournal(text);
    expect(header).toMatchObject({
      input: {
        hf_token: '***',
        model: { url: 'https://huggingface.co/a/b.safetensors?download=true&token=***' },
      },
    });
    expect(replayJournal(parseJournal(text)).divergence).toBeNull();
  });
});
