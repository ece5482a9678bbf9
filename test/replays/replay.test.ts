/**
 * Every committed journal (recorded from real runs against the simulator) replays on the current job
 * machine exactly: same states, same timers, same output. A change to the machine that alters its
 * behaviour fails here; re-record on purpose with `npm run replays:record` (see README.md here).
 */
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type JournalLine, parseJournal, toJsonLines } from '../../src/journal/journal.js';
import { formatReplay, replayJournal } from '../../src/journal/replay.js';
import { WORKER_ENTRY } from '../support/worker-process.js';

const DIR = fileURLToPath(new URL('.', import.meta.url));
const V2 = path.join(DIR, 'v2');
const journals = readdirSync(DIR).filter((name) => name.endsWith('.jsonl'));
const olderJournals = readdirSync(V2).filter((name) => name.endsWith('.jsonl'));

async function load(name: string, dir = DIR): Promise<JournalLine[]> {
  return parseJournal(await readFile(path.join(dir, name), 'utf8'));
}

const EXPECTED: Record<string, string> = {
  'happy-path.jsonl': 'succeeded',
  'slow-boot.jsonl': 'succeeded',
  'burst-5xx.jsonl': 'succeeded',
  'route-404-recovery.jsonl': 'succeeded',
  'sampler-404.jsonl': 'BACKEND_REJECTED',
  'crash.jsonl': 'BACKEND_CRASHED',
  'deadline.jsonl': 'BACKEND_TIMEOUT',
  'unknown-checkpoint.jsonl': 'MODEL_NOT_FOUND',
  'model-download.jsonl': 'succeeded',
  'img2img-url.jsonl': 'succeeded',
  'image-fetch-failed.jsonl': 'IMAGE_FETCH_FAILED',
  'extras-upscale.jsonl': 'succeeded',
  'read-samplers.jsonl': 'succeeded',
};

function endOf(lines: JournalLine[]): string | undefined {
  const result = lines.at(-1) as { type: string; output: { status: string; failure?: { code: string } } };
  expect(result.type).toBe('result');
  return result.output.status === 'failed' ? result.output.failure?.code : result.output.status;
}

describe('recorded journals', () => {
  it('cover every scenario', () => {
    expect(journals.sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  for (const name of Object.keys(EXPECTED)) {
    it(`${name} replays exactly and ends ${EXPECTED[name]}`, async () => {
      const lines = await load(name);
      const report = replayJournal(lines);

      expect(report.divergence, formatReplay(report)).toBeNull();
      expect(endOf(lines)).toBe(EXPECTED[name]);
      expect(report.steps.length).toBeGreaterThan(2);
    });
  }

  it('take every path a job may take: image URLs fetched, model checks skipped for a read', async () => {
    const states = async (name: string) => (await load(name)).flatMap((l) => (l.type === 'step' ? [l.state] : []));
    expect(await states('img2img-url.jsonl')).toEqual(['booting', 'fetchingImages', 'waitingForApi.probing', 'verifyingModels', 'ready.routing', 'inferring', 'succeeded']);
    expect(await states('read-samplers.jsonl')).toEqual(['booting', 'waitingForApi.probing', 'ready.routing', 'inferring', 'succeeded']);
  });
});

describe('journals recorded by the txt2img-only worker (version 2)', () => {
  it('are all still here', () => {
    expect(olderJournals.sort()).toEqual(Object.keys(EXPECTED).filter((name) => !/img2img|image|extras|read-/.test(name)).sort());
  });

  for (const name of olderJournals) {
    it(`${name} replays exactly on today's machine`, async () => {
      const lines = await load(name, V2);
      expect((lines[0] as { version: number }).version).toBe(2);

      const report = replayJournal(lines);

      expect(report.divergence, formatReplay(report)).toBeNull();
      expect(endOf(lines)).toBe(EXPECTED[name]);
    });
  }
});

describe('a replay that differs from its recording', () => {
  it('stops at the first different state, naming the journal line', async () => {
    const lines = await load('route-404-recovery.jsonl');
    const index = lines.findIndex((l) => l.type === 'event' && l.event['type'] === 'xstate.error.actor.callA1111');
    const tampered = structuredClone(lines);
    const event = tampered[index] as unknown as { event: { error: { code: string } } };
    event.event.error.code = 'BACKEND_ERROR';

    const report = replayJournal(tampered);

    expect(report.divergence?.message).toBe(
      'after xstate.error.actor.callA1111, the recording went to recovering but the replay went to failed',
    );
    expect(report.divergence?.line).toBe(index + 2);
  });

  it('notices when a delay of the machine no longer matches the recorded timers', async () => {
    const lines = await load('route-404-recovery.jsonl');
    const tampered = structuredClone(lines);
    (tampered[0] as { settings: { routeRecoveryDelayMs: number } }).settings.routeRecoveryDelayMs = 5_000;

    const report = replayJournal(tampered);

    expect(report.divergence?.message).toMatch(
      /^the recording fired xstate\.after\.recoveryDelay\.job\.recovering at [\d.]+ ms, before the replayed machine's [\d.]+ ms$/,
    );
  });

  it('notices a timer the replayed machine would have fired that the recording does not show', async () => {
    const lines = await load('slow-boot.jsonl');
    const tampered = structuredClone(lines);
    (tampered[0] as { settings: { readyPollIntervalMs: number } }).settings.readyPollIntervalMs = 1;
    (tampered[0] as { settings: { readyTimeoutMs: number } }).settings.readyTimeoutMs = 50;

    const report = replayJournal(tampered);

    expect(report.divergence?.message).toMatch(/xstate\.after\.readiness(Poll|Deadline)/);
  });

  it('notices an actor started with another input, such as a different request for A1111', async () => {
    const lines = await load('happy-path.jsonl');
    const tampered = structuredClone(lines);
    const verified = tampered.find((l) => l.type === 'event' && l.event['type'] === 'xstate.done.actor.verifyModels') as unknown as {
      event: { output: { request: { steps: number } } };
    };
    verified.event.output.request.steps = 13;
    const invokeLine = tampered.findIndex((l) => l.type === 'invoke' && l.src === 'callA1111') + 1;

    const report = replayJournal(tampered);

    expect(report.divergence).toEqual({
      line: invokeLine,
      message: 'callA1111 was started with another input at input.request.steps: 13 ≠ 12 (replay ≠ recording)',
    });
  });

  it('still replays a version 1 journal, which has no actor inputs to compare', async () => {
    const lines = await load('happy-path.jsonl', V2);
    const old = structuredClone(lines).filter((l) => l.type !== 'invoke');
    (old[0] as { version: number }).version = 1;

    expect(replayJournal(old).divergence).toBeNull();
    expect(replayJournal(parseJournal(toJsonLines(old))).divergence).toBeNull();
  });

  it('notices a different output', async () => {
    const lines = await load('happy-path.jsonl');
    const tampered = structuredClone(lines);
    const done = tampered.find((l) => l.type === 'event' && l.event['type'] === 'xstate.done.actor.callA1111') as unknown as {
      event: { output: { info: string } };
    };
    done.event.output.info = '{"seed":1}';

    const report = replayJournal(tampered);

    expect(report.divergence?.message).toMatch(/^the replay's output differs from the recording's at output\.response\.info: "\{\\"seed\\":1\}" ≠ /);
  });
});

describe('the replay command', () => {
  function run(file: string) {
    return new Promise<{ code: number; stdout: string }>((resolve) => {
      execFile(process.execPath, [WORKER_ENTRY, 'replay', file], { env: { PATH: process.env['PATH'] ?? '', LOG_FORMAT: 'json' } }, (error, stdout) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, stdout }),
      );
    });
  }

  it('prints the transitions and exits 0 when the replay matches', async () => {
    const { code, stdout } = await run(path.join(DIR, 'crash.jsonl'));
    expect(code).toBe(0);
    expect(stdout).toMatch(/inferring\s+→ failed\s+xstate\.error\.actor\.callA1111/);
    expect(stdout).toContain('replay of crash matches the recording');
  });

  it('exits 1 with the first divergence', async () => {
    const lines = await load('crash.jsonl');
    const tampered = structuredClone(lines);
    const event = tampered.find((l) => l.type === 'event' && l.event['type'] === 'xstate.error.actor.callA1111') as unknown as {
      event: { error: { code: string } };
    };
    event.event.error.code = 'BACKEND_ROUTE_MISSING';
    const file = path.join(await mkdtemp(path.join(tmpdir(), 'journal-')), 'tampered.jsonl');
    await writeFile(file, toJsonLines(tampered));

    const { code, stdout } = await run(file);

    expect(code).toBe(1);
    expect(stdout).toContain('DIVERGED at journal line');
    expect(stdout).toContain('the recording went to failed but the replay went to recovering');
  });
});
