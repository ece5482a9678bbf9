/**
 * What the job runner sees of a running job machine: a log line per top-level transition (and, at
 * debug level, per move inside one), the time spent in each phase, the machine's own news (waiting
 * for A1111, steps after a download, recoveries) as log lines, and the inspection events for whoever
 * wants them (a journal, the Stately inspector, a caller's observer).
 *
 * Top-level transitions are logged and timed from the machine's own `job.entered` events. The actor
 * system is inspected only when something wants its detail: inspection makes XState describe every
 * event, snapshot and action.
 */
import type { ActorRefFrom, InspectionEvent, SnapshotFrom } from 'xstate';
import type { JobOutput } from '../../machines/job.types.js';
import type { JournalRecorder } from '../journal/journal.js';
import { statePathOf } from '../journal/journal.js';
import type { Logger } from '../log/index.js';
import type { LiveJobMachine } from './actors.js';
import type { PhaseTimings, WorkerReport } from './outcome.js';

type JobActor = ActorRefFrom<LiveJobMachine>;
type JobSnapshot = SnapshotFrom<LiveJobMachine>;

export interface RunObserverOptions {
  log: Logger;
  now: () => number;
  /** Records the job's journal. */
  recorder?: JournalRecorder;
  /** Gets every inspection event of the job's actor system (the Stately inspector). */
  inspectSystem?: (event: InspectionEvent) => void;
  /** Gets the inspection events of the job's own actor (a caller's observer). */
  inspectJob?: (event: InspectionEvent) => void;
}

export class RunObserver {
  readonly startedAt: number;
  private current = 'booting';
  private currentPath = 'booting';
  private enteredAt: number;
  private readonly timings: PhaseTimings = { total: 0 };
  private readonly debugLines: boolean;
  /** Moves within a top-level state, seen during a step; logged once the step's `job.entered` lines are. */
  private readonly innerMoves: { from: string; to: string; event: string }[] = [];
  /** The `inspect` option of the job's actor; undefined when nothing needs inspection. */
  readonly inspect: ((event: InspectionEvent) => void) | undefined;

  constructor(private readonly options: RunObserverOptions) {
    this.startedAt = options.now();
    this.enteredAt = this.startedAt;
    this.debugLines = options.log.isLevelEnabled('debug');
    const { recorder, inspectSystem, inspectJob } = options;
    this.inspect =
      inspectSystem || inspectJob || recorder || this.debugLines ? (event) => this.observe(event) : undefined;
  }

  /** The top-level state the job is in. */
  get phase(): string {
    return this.current;
  }

  /** Listens to the machine's own events. */
  attach(actor: JobActor): void {
    const { log } = this.options;
    actor.on('job.entered', ({ state, event }) => this.entered(state, event));
    if (this.debugLines) {
      // XState hands a step's snapshot to subscribers after its emitted events, so a state's entry line
      // comes before the moves inside it.
      const logInnerMoves = () => {
        for (const move of this.innerMoves.splice(0)) log.debug('transition', move);
      };
      actor.subscribe({ next: logInnerMoves, error: logInnerMoves, complete: logInnerMoves });
    }
    actor.on('api.waiting', (event) =>
      log.info('A1111 API is not ready yet', { failedProbes: event.failures, lastError: event.lastError?.message }),
    );
    actor.on('job.stabilizing', (event) => log[event.level](event.message));
    actor.on('job.recovering', (event) =>
      log.warn('A1111 routes are missing; recovering', {
        attempt: event.attempt,
        of: event.of,
        reason: event.reason?.message,
      }),
    );
  }

  /** Closes the phase the job ended in and returns the report. */
  finish(output: JobOutput): WorkerReport {
    const endedAt = this.options.now();
    const phase = this.current as keyof PhaseTimings;
    if (this.current !== 'succeeded' && this.current !== 'failed') {
      this.timings[phase] = (this.timings[phase] ?? 0) + (endedAt - this.enteredAt);
    }
    this.timings.total = endedAt - this.startedAt;
    return {
      timings_ms: roundTimings(this.timings),
      recoveries: output.recoveries,
      notes: output.notes,
      ...(output.status === 'succeeded' && output.uploads ? { uploads: output.uploads } : {}),
    };
  }

  private entered(state: string, event: string): void {
    if (state === this.current) return;
    const at = this.options.now();
    const phase = this.current as keyof PhaseTimings;
    this.timings[phase] = (this.timings[phase] ?? 0) + (at - this.enteredAt);
    this.options.log.info('transition', {
      from: this.current,
      to: state,
      event,
      elapsedMs: Math.round(at - this.startedAt),
    });
    this.current = state;
    this.enteredAt = at;
  }

  private observe(event: InspectionEvent): void {
    this.options.inspectSystem?.(event);
    this.options.recorder?.observe(event);
    if (event.actorRef.sessionId !== event.rootId) return;
    this.options.inspectJob?.(event);
    if (!this.debugLines || event.type !== '@xstate.microstep') return;
    const path = statePathOf((event.snapshot as JobSnapshot).value);
    if (path === this.currentPath) return;
    // Within one top-level state; a move between two is the `job.entered` line.
    if (path.split('.')[0] === this.currentPath.split('.')[0]) {
      this.innerMoves.push({ from: this.currentPath, to: path, event: event.event.type });
    }
    this.currentPath = path;
  }
}

function roundTimings(timings: PhaseTimings): PhaseTimings {
  const out: PhaseTimings = { total: Math.round(timings.total * 10) / 10 };
  for (const [key, value] of Object.entries(timings)) {
    if (key !== 'total' && typeof value === 'number') out[key as keyof PhaseTimings] = Math.round(value * 10) / 10;
  }
  return out;
}
