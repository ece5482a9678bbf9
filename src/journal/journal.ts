/**
 * Job journals: what a job's machine went through, as JSON lines, so any run can be replayed on a
 * laptop (see replay.ts).
 *
 * A journal holds, in order: a header (job id, worker version, the job's settings and its input), every
 * event delivered to the job's machine (actor results and errors, timers, cancels, progress) with its
 * time from the start of the job, every actor the machine started with the input it gave it (the
 * request sent to A1111 among them), the state after each step, and the final output. Base64 payloads are
 * replaced by their size and sha256, everywhere, so journals stay small and carry no images.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { InspectionEvent } from 'xstate';
import type { JobOutput, JobSettings } from '../../machines/job.types.js';
import { summarizePayloads } from './payloads.js';

/**
 * Version 4: A1111's answer goes through `delivering` (re-encoding, uploads) before `succeeded`.
 * Version 3 made the machine serve every operation (its A1111 call is the actor `callA1111`, image
 * URLs are fetched in `fetchingImages`); version 2 added the `invoke` lines. Older journals are read in
 * today's terms (upgrade.ts) and replay as recorded.
 */
export const JOURNAL_VERSION = 4;
const READABLE_VERSIONS = [1, 2, 3, 4];

export interface JournalHeader {
  type: 'journal';
  version: number;
  jobId: string;
  workerVersion: string;
  recordedAt: string;
  settings: JobSettings;
  input: unknown;
}

export interface JournalEvent {
  type: 'event';
  at: number;
  event: Record<string, unknown>;
}

export interface JournalStep {
  type: 'step';
  at: number;
  event: string;
  /** The full state path after the step, e.g. `waitingForApi.pausing`. */
  state: string;
}

export interface JournalInvoke {
  type: 'invoke';
  at: number;
  /** The actor's name in the machine (`callA1111`, `probeApi`, …). */
  src: string;
  input: unknown;
}

export interface JournalResult {
  type: 'result';
  at: number;
  output: unknown;
}

export type JournalLine = JournalHeader | JournalEvent | JournalStep | JournalInvoke | JournalResult;

/** The full state path of a machine snapshot value: `{ waitingForApi: 'pausing' }` → `waitingForApi.pausing`. */
export function statePathOf(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const [key, inner] = Object.entries(value)[0] ?? [];
    if (key === undefined) return '';
    const rest = statePathOf(inner);
    return rest ? `${key}.${rest}` : key;
  }
  return '';
}

/** What an invoked actor was: its name in the machine and its input, payloads summarized, as JSON has it. */
export function invocationOf(actorRef: unknown): { src: string; input: unknown } {
  const ref = actorRef as { id: string; src?: unknown; options?: { input?: unknown } };
  return { src: typeof ref.src === 'string' ? ref.src : ref.id, input: asJson(summarizePayloads(ref.options?.input)) };
}

/**
 * Collects one job's journal from the inspection events of its machine. Lines keep the events
 * themselves until `finish`, so a job whose journal is not kept pays nothing for summarizing payloads.
 */
export class JournalRecorder {
  private readonly lines: JournalLine[] = [];
  private lastState = '';

  constructor(
    header: Omit<JournalHeader, 'type' | 'version' | 'recordedAt' | 'input'> & { input: unknown },
    private readonly now: () => number,
  ) {
    this.lines.push({
      type: 'journal',
      version: JOURNAL_VERSION,
      recordedAt: new Date().toISOString(),
      ...header,
    });
  }

  private elapsed(): number {
    return Math.round(this.now() * 10) / 10;
  }

  /** Feed every inspection event of the job's actor system here. */
  observe(event: InspectionEvent): void {
    if (event.type === '@xstate.actor' && event.actorRef.sessionId !== event.rootId) {
      // Only the job machine itself starts actors, so every other actor is one it invoked.
      const ref = event.actorRef as unknown as { id: string; src?: unknown; options?: { input?: unknown } };
      this.lines.push({
        type: 'invoke',
        at: this.elapsed(),
        src: typeof ref.src === 'string' ? ref.src : ref.id,
        input: ref.options?.input,
      });
      return;
    }
    if (event.actorRef.sessionId !== event.rootId) return;
    if (event.type === '@xstate.event' && event.event.type !== 'xstate.init') {
      this.lines.push({ type: 'event', at: this.elapsed(), event: event.event });
    } else if (event.type === '@xstate.microstep' || event.type === '@xstate.snapshot') {
      const state = statePathOf((event.snapshot as { value?: unknown }).value);
      if (state === this.lastState) return;
      this.lastState = state;
      this.lines.push({ type: 'step', at: this.elapsed(), event: event.event.type, state });
    }
  }

  /** The journal, payloads summarized and every value as JSON has it. */
  finish(output: JobOutput): JournalLine[] {
    this.lines.push({ type: 'result', at: this.elapsed(), output });
    return this.lines.map((line) => {
      switch (line.type) {
        case 'journal':
          return { ...line, input: summarizePayloads(line.input) };
        case 'event':
          return { ...line, event: summarizePayloads(line.event) as Record<string, unknown> };
        case 'invoke':
          return { ...line, input: asJson(summarizePayloads(line.input)) };
        case 'result':
          return { ...line, output: summarizePayloads(line.output) };
        default:
          return line;
      }
    });
  }
}

function asJson(value: unknown): unknown {
  return value === undefined ? null : (JSON.parse(JSON.stringify(value)) as unknown);
}

/** Serializes a journal as JSON lines. */
export function toJsonLines(lines: readonly JournalLine[]): string {
  return `${lines.map((line) => JSON.stringify(line)).join('\n')}\n`;
}

/** Parses JSON lines into a journal, checking its shape; the error names the line. */
export function parseJournal(text: string): JournalLine[] {
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line, index) => {
      try {
        return JSON.parse(line) as JournalLine;
      } catch {
        throw new Error(`journal line ${index + 1} is not JSON`);
      }
    });
  const header = lines[0];
  if (header?.type !== 'journal') throw new Error('a journal starts with a {"type":"journal"} header line');
  if (!READABLE_VERSIONS.includes(header.version)) {
    throw new Error(
      `journal version ${header.version} is not supported: this worker reads versions ${READABLE_VERSIONS.join(', ')}; replay it with the worker that recorded it (${String((header as { workerVersion?: unknown }).workerVersion ?? 'see its header')})`,
    );
  }
  return lines;
}

/** Writes a journal to `<dir>/<job id>.jsonl` (the id made safe for a file name); resolves with the path. */
export async function writeJournal(dir: string, jobId: string, lines: readonly JournalLine[]): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${jobId.replace(/[^A-Za-z0-9._-]/g, '_')}.jsonl`);
  await writeFile(file, toJsonLines(lines));
  return file;
}
