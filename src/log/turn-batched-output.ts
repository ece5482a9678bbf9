/** Standard output for log lines, written once per turn of the event loop (see TurnBatchedOutput). */
import type winston from 'winston';
import { LOGGED_AT, limited } from './line-formats.js';
import { sanitizeForLog } from './sanitize.js';

/** Where batched lines end up: standard output, or anything with its `write`. */
export interface LineSink {
  write(text: string): unknown;
}

/** A line queued before it is formatted: the call's fields, and the format that turns them into text. */
interface UnformattedLine {
  info: winston.Logform.TransformableInfo;
  format: winston.Logform.Format;
}

/**
 * Standard output for log lines, written once per turn of the event loop: the lines a job logs between
 * two of its steps (a transition, its result) are formatted and go out together once the turn's work is
 * done, so neither formatting nor a write call stands between a job's steps; their order is kept. A
 * line's fields are read when it is formatted: an object logged and then changed in the same turn is
 * written as it is at the end of the turn (the worker logs values and fresh objects).
 * Warnings and errors go out at once (`writeNow`, after the lines pending before them), so a process
 * killed outright has written its last words; whatever else is pending when the process exits
 * (`process.exit`, the end of the event loop, an uncaught error) is written then.
 */
export class TurnBatchedOutput {
  private pending: UnformattedLine[] = [];
  private scheduled = false;

  constructor(private readonly sink: LineSink = process.stdout) {
    process.once('exit', () => this.flush());
  }

  /** Queues a line to be formatted and written at the end of this turn. */
  defer(info: winston.Logform.TransformableInfo, format: winston.Logform.Format): void {
    this.add(info, format);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Writes a line now, after the lines pending. */
  writeNow(info: winston.Logform.TransformableInfo, format: winston.Logform.Format): void {
    this.add(info, format);
    this.flush();
  }

  /** Formats and writes what is pending now. */
  flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const lines = this.pending;
    this.pending = [];
    let text = '';
    for (const line of lines) text += formatLine(line.info, line.format);
    this.sink.write(text);
  }

  /** A line's time is the time it was logged, whenever it is formatted. */
  private add(info: winston.Logform.TransformableInfo, format: winston.Logform.Format): void {
    info[LOGGED_AT] = Date.now();
    this.pending.push({ info, format });
  }
}

/** The formatted line winston hands its transports (triple-beam's MESSAGE). */
const MESSAGE = Symbol.for('message');
/** The level of a line as winston's formats read it (triple-beam's LEVEL). */
const LEVEL = Symbol.for('level');

/**
 * One line of text for `info`, newline included. A line the format cannot render (a field JSON cannot
 * encode, say) becomes an error line in the same shape saying so: formatting happens away from the
 * call, where throwing would take the process down.
 */
function formatLine(info: winston.Logform.TransformableInfo, format: winston.Logform.Format): string {
  const render = (line: winston.Logform.TransformableInfo) => {
    const out = format.transform(line, format.options);
    return out ? `${String((out as winston.Logform.TransformableInfo)[MESSAGE])}\n` : '';
  };
  try {
    return render(info);
  } catch (error) {
    // Only strings are left to render; they cannot fail the same way.
    return render({
      level: 'error',
      [LEVEL]: 'error',
      [LOGGED_AT]: info[LOGGED_AT],
      message: `a log line could not be written: ${error instanceof Error ? error.message : String(error)}`,
      ...(typeof info['jobId'] === 'string' ? { jobId: info['jobId'] } : {}),
      lostMessage: sanitizeForLog(limited(info.message), 'message'),
    });
  }
}

let standardOutput: TurnBatchedOutput | undefined;

/** The one batched standard output of the process, shared by every logger so lines keep their order. */
export function sharedStandardOutput(): TurnBatchedOutput {
  standardOutput ??= new TurnBatchedOutput();
  return standardOutput;
}

/** Writes the log lines still pending, before something else writes to standard output itself. */
export function flushLogOutput(): void {
  standardOutput?.flush();
}
