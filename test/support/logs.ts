/**
 * Captures a logger's lines in memory so tests can assert on what a user would read in the log.
 */
import { Writable } from 'node:stream';
import { createLogger, type LogFormat, type Logger, type LogLevel } from '../../src/log/index.js';

export interface CapturedLog {
  log: Logger;
  /** Raw lines, in order. */
  lines: string[];
  /** Lines parsed as JSON (json and runpod formats). */
  records(): Record<string, unknown>[];
  /** The states the job machine entered, in order, from its `transition` log lines. */
  statePath(): unknown[];
}

export function captureLog(options: { level?: LogLevel; format?: LogFormat } = {}): CapturedLog {
  const lines: string[] = [];
  let pending = '';
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      pending += String(chunk);
      let index = pending.indexOf('\n');
      while (index >= 0) {
        lines.push(pending.slice(0, index));
        pending = pending.slice(index + 1);
        index = pending.indexOf('\n');
      }
      callback();
    },
  });
  const log = createLogger({ level: options.level ?? 'debug', format: options.format ?? 'json', stream });
  const records = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  return {
    log,
    lines,
    records,
    statePath: () =>
      records()
        .filter((r) => r['message'] === 'transition' && r['level'] === 'info')
        .map((r) => r['to']),
  };
}
