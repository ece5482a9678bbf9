/**
 * Deterministic replay of a job journal: the job machine runs again on the recorded events, with actors
 * that never reach the network (their recorded results are the events) and a SimulatedClock that is
 * never advanced (the recorded timer events are delivered instead), and must go through the same
 * states and end with the same output.
 *
 * The first difference is reported: a state the recording did not reach, an actor started with
 * another input (the request for A1111 among them), a timer the replayed machine would fire at another
 * time (its delays are checked against the recorded times), a timer it does not have, or a different
 * output. A change to the machine that alters its behaviour shows up here.
 */
import { isDeepStrictEqual } from 'node:util';
import {
  type AnyEventObject,
  createActor,
  fromCallback,
  fromPromise,
  type InspectionEvent,
  SimulatedClock,
} from 'xstate';
import { jobMachine } from '../../machines/job.machine.js';
import type {
  Delivered,
  DeliverInput,
  InterruptResult,
  JobEvent,
  JobOutput,
  PreparedJob,
  VerifiedJob,
  VerifyModelsInput,
} from '../../machines/job.types.js';
import type { A1111Request } from '../a1111/request-fields.js';
import type { SdModel } from '../a1111/schemas.js';
import type { ErrorCode } from '../errors.js';
import { invocationOf, type JournalHeader, type JournalLine, statePathOf } from './journal.js';
import { summarizePayloads } from './payloads.js';
import { upgradeJournal } from './upgrade.js';

/**
 * How late a recorded timer may have fired (a busy event loop on a loaded worker) before it counts as
 * a different delay. A timer that fires earlier than the replayed machine's delay is always caught; one
 * whose delay was shortened by less than this is not (the recording cannot tell it from a late timer).
 * The machine's delays are seconds apart, so a real change moves them by far more.
 */
const LATE_TOLERANCE_MS = 250;

/** Where two JSON values first differ, as `path: a ≠ b`; null when they are equal. */
export function firstDifference(a: unknown, b: unknown, at = 'output'): string | null {
  if (isDeepStrictEqual(a, b)) return null;
  if (a && b && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const key of keys) {
      const found = firstDifference(
        (a as Record<string, unknown>)[key],
        (b as Record<string, unknown>)[key],
        Array.isArray(a) ? `${at}[${key}]` : `${at}.${key}`,
      );
      if (found) return found;
    }
  }
  const show = (value: unknown) => (value === undefined ? '(absent)' : JSON.stringify(value).slice(0, 200));
  return `${at}: ${show(a)} ≠ ${show(b)}`;
}

export interface ReplayedStep {
  at: number;
  event: string;
  from: string;
  to: string;
}

export interface Divergence {
  /** 1-based line of the journal where the replay stopped agreeing. */
  line: number;
  message: string;
}

export interface ReplayReport {
  jobId: string;
  steps: ReplayedStep[];
  divergence: Divergence | null;
}

/** An actor that never settles: in a replay, its result is the journal's next event. */
const silent = <T, I>() => fromPromise<T, I>(() => new Promise<T>(() => undefined));

const replayMachine = jobMachine.provide({
  actors: {
    validateInput: silent<PreparedJob, { jobId: string; input: unknown }>(),
    probeApi: silent<SdModel[], void>(),
    verifyModels: silent<VerifiedJob, VerifyModelsInput>(),
    refreshCheckpoints: silent<void, void>(),
    checkRoute: silent<void, { operation: string }>(),
    fetchImages: silent<PreparedJob, { jobId: string; job: PreparedJob }>(),
    callA1111: silent<unknown, { jobId: string; operation: string; request: A1111Request }>(),
    interruptBackend: silent<InterruptResult, { jobId: string; reason: ErrorCode }>(),
    deliverResult: silent<Delivered, DeliverInput>(),
    watchProgress: fromCallback<JobEvent, { jobId: string; intervalMs: number; operation: string }>(
      () => () => undefined,
    ),
  },
});

/**
 * Replays a parsed journal.
 *
 * @example
 * const report = replayJournal(parseJournal(await readFile('job.jsonl', 'utf8')));
 * if (report.divergence) console.error(report.divergence.message);
 */
export function replayJournal(
  recorded: readonly JournalLine[],
  options: { inspect?: (event: InspectionEvent) => void } = {},
): ReplayReport {
  // An older journal is read in today's terms; a divergence names the recording's own line.
  const { lines, numbers } = upgradeJournal(recorded);
  const recordedLine = (position: number) => numbers[position - 1] ?? position;
  const header = lines[0] as JournalHeader;
  const steps: ReplayedStep[] = [];
  const reached: string[] = [];
  const invoked: { src: string; input: unknown }[] = [];
  const timers = new Map<string, number>();
  let now = 0;
  let current = '';
  let lastEvent = 'xstate.init';

  const actor = createActor(replayMachine, {
    input: { jobId: header.jobId, input: header.input, settings: header.settings },
    clock: new SimulatedClock(),
    inspect: (event) => {
      options.inspect?.(event);
      if (event.type === '@xstate.actor' && event.actorRef.sessionId !== event.rootId) {
        invoked.push(invocationOf(event.actorRef));
        return;
      }
      if (event.actorRef.sessionId !== event.rootId) return;
      if (event.type === '@xstate.action') {
        const params = event.action.params as { event?: AnyEventObject; delay?: number; sendId?: string } | undefined;
        if (event.action.type === 'xstate.raise' && params?.delay !== undefined && params.event) {
          timers.set(params.event.type, now + params.delay);
        } else if (event.action.type === 'xstate.cancel' && params?.sendId) {
          timers.delete(params.sendId);
        }
      }
      if (event.type === '@xstate.microstep' || event.type === '@xstate.snapshot') {
        const state = statePathOf((event.snapshot as { value?: unknown }).value);
        if (state === current) return;
        steps.push({ at: now, event: event.event.type, from: current, to: state });
        reached.push(state);
        current = state;
      }
    },
  });

  const report = (line: number, message: string): ReplayReport => {
    actor.stop();
    return { jobId: header.jobId, steps, divergence: { line: recordedLine(line), message } };
  };

  actor.start();
  let checked = 0;
  const expected = lines.flatMap((line, index) =>
    line.type === 'step' ? [{ line: index + 1, state: line.state }] : [],
  );

  // Journals before version 2 did not record the actors' inputs.
  const invocations = lines.flatMap((line, index) =>
    line.type === 'invoke' ? [{ line: index + 1, src: line.src, input: line.input }] : [],
  );
  const checkInvocations = header.version >= 2;
  let checkedInvocations = 0;

  /**
   * Compares the states reached and the actors started so far with the recording's, up to `before`
   * (a journal line index).
   */
  const compareSteps = (before: number): Divergence | null => {
    if (checkInvocations) {
      const recorded = invocations.filter((invocation) => invocation.line <= before);
      for (; checkedInvocations < Math.max(recorded.length, invoked.length); checkedInvocations++) {
        const want = recorded[checkedInvocations];
        const got = invoked[checkedInvocations];
        if (want?.src !== got?.src) {
          return {
            line: want?.line ?? before,
            message: `after ${lastEvent}, the recording started ${want?.src ?? '(no actor)'} but the replay started ${got?.src ?? '(no actor)'}`,
          };
        }
        const difference = firstDifference(got!.input, want!.input, 'input');
        if (difference) {
          return {
            line: want!.line,
            message: `${want!.src} was started with another input at ${difference} (replay ≠ recording)`,
          };
        }
      }
    }
    const recorded = expected.filter((step) => step.line <= before);
    for (; checked < Math.max(recorded.length, reached.length); checked++) {
      const want = recorded[checked];
      const got = reached[checked];
      if (want?.state !== got) {
        return {
          line: want?.line ?? before,
          message: `after ${lastEvent}, the recording went to ${want?.state ?? '(nothing more)'} but the replay went to ${got ?? '(nowhere)'}`,
        };
      }
    }
    return null;
  };

  for (const [index, line] of lines.entries()) {
    if (line.type !== 'event') continue;
    const lineNumber = index + 1;
    const early = compareSteps(lineNumber);
    if (early) return report(early.line, early.message);
    now = line.at;
    const type = String(line.event['type']);
    const overdue = [...timers].find(([timer, due]) => timer !== type && due < now - LATE_TOLERANCE_MS);
    if (overdue) {
      return report(
        lineNumber,
        `the replayed machine would fire ${overdue[0]} at ${overdue[1]} ms, but the recording shows ${type} at ${now} ms first`,
      );
    }
    if (type.startsWith('xstate.after.')) {
      const due = timers.get(type);
      if (due === undefined)
        return report(
          lineNumber,
          `the recording fired ${type} at ${now} ms, but the replayed machine has no such timer`,
        );
      if (now < due - 1)
        return report(lineNumber, `the recording fired ${type} at ${now} ms, before the replayed machine's ${due} ms`);
      if (now > due + LATE_TOLERANCE_MS) {
        return report(
          lineNumber,
          `the recording fired ${type} at ${now} ms, long after the replayed machine's ${due} ms`,
        );
      }
      timers.delete(type);
    }
    lastEvent = type;
    actor.send(line.event as AnyEventObject as never);
  }

  const result = lines.find((line) => line.type === 'result');
  const resultLine = result ? lines.indexOf(result) + 1 : lines.length;
  const late = compareSteps(lines.length);
  if (late) return report(late.line, late.message);
  const snapshot = actor.getSnapshot();
  if (snapshot.status !== 'done') return report(resultLine, `the replay did not finish: it rests in ${current}`);
  const output = JSON.parse(JSON.stringify(summarizePayloads(snapshot.output as JobOutput))) as unknown;
  const difference = result ? firstDifference(output, result.output) : null;
  if (difference)
    return report(resultLine, `the replay's output differs from the recording's at ${difference} (replay ≠ recording)`);
  actor.stop();
  return { jobId: header.jobId, steps, divergence: null };
}

/** The report as text: one line per transition, then the verdict. */
export function formatReplay(report: ReplayReport): string {
  const lines = report.steps.map(
    (step) =>
      `  +${step.at.toFixed(1).padStart(9)} ms  ${(step.from || '(start)').padEnd(40)} → ${step.to.padEnd(40)} ${step.event}`,
  );
  lines.push(
    report.divergence
      ? `DIVERGED at journal line ${report.divergence.line}: ${report.divergence.message}`
      : `replay of ${report.jobId} matches the recording (${report.steps.length} transitions)`,
  );
  return lines.join('\n');
}
