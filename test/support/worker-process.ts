/**
 * Runs the built worker as its own process, the script the image runs (dist/bundle/main.js, read from
 * the Dockerfile's ENTRYPOINT), with real environment variables, and follows its log lines. Processes
 * still running after a test are killed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';
import { imageScript } from '../../bench/image.js';

export const WORKER_ENTRY = imageScript(fileURLToPath(new URL('../..', import.meta.url)));

export type LogRecord = Record<string, unknown>;

export interface WorkerProcess {
  child: ChildProcess;
  lines: string[];
  /** Log lines parsed as JSON (LOG_FORMAT=json); other lines are skipped. */
  records(): LogRecord[];
  waitForLog(predicate: (record: LogRecord) => boolean, timeoutMs?: number): Promise<LogRecord>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

const started: ChildProcess[] = [];

afterEach(() => {
  for (const child of started.splice(0))
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

export const FAST_WORKER_ENV = {
  A1111_RETRY_BASE_DELAY_MS: '5',
  A1111_RETRY_MAX_DELAY_MS: '20',
  A1111_READY_POLL_INTERVAL_MS: '20',
  A1111_ROUTE_RECOVERY_DELAY_MS: '50',
  PROGRESS_POLL_INTERVAL_MS: '50',
  PROGRESS_POST_INTERVAL_MS: '100',
  JOB_DONE_RETRY_DELAY_MS: '50',
  JOB_TAKE_ERROR_DELAY_MS: '300',
  LOG_FORMAT: 'json',
  LOG_LEVEL: 'debug',
  // The warm-up's own tests turn it on; elsewhere A1111's first generation is the test's.
  WARMUP: 'off',
} as const;

export function startWorker(env: Record<string, string>, args: string[] = [], nodeFlags: string[] = []): WorkerProcess {
  if (!existsSync(WORKER_ENTRY)) throw new Error(`${WORKER_ENTRY} is missing: run npm run build`);
  const child = spawn(process.execPath, [...nodeFlags, WORKER_ENTRY, ...args], {
    env: { PATH: process.env['PATH'] ?? '', ...FAST_WORKER_ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  const lines: string[] = [];
  const listeners = new Set<(record: LogRecord) => void>();
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    let record: LogRecord | undefined;
    try {
      record = JSON.parse(line) as LogRecord;
    } catch {
      return;
    }
    for (const listener of listeners) listener(record);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const records = () =>
    lines.flatMap((line) => {
      try {
        return [JSON.parse(line) as LogRecord];
      } catch {
        return [];
      }
    });
  return {
    child,
    lines,
    records,
    stderr: () => stderr,
    exited,
    waitForLog(predicate, timeoutMs = 30_000) {
      const seen = records().find(predicate);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(listener);
          reject(new Error(`no matching log line within ${timeoutMs} ms; last lines:\n${lines.slice(-10).join('\n')}`));
        }, timeoutMs);
        const listener = (record: LogRecord) => {
          if (!predicate(record)) return;
          clearTimeout(timer);
          listeners.delete(listener);
          resolve(record);
        };
        listeners.add(listener);
        void exited.then(() => {
          if (!listeners.has(listener)) return;
          clearTimeout(timer);
          listeners.delete(listener);
          reject(
            new Error(
              `the worker exited before a matching log line; last lines:\n${lines.slice(-10).join('\n')}\n${stderr}`,
            ),
          );
        });
      });
    },
  };
}
