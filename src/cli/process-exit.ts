/**
 * How the worker process ends when it must: a defect that escaped every handler logs which jobs it
 * takes down and exits 1; the first SIGTERM/SIGINT asks for a clean end, the second exits at once,
 * killing the processes the worker started.
 */
import { errorFields } from '../errors.js';
import type { Logger } from '../log/index.js';

/** Processes to kill outright if the worker exits on a second signal or a crash. */
export const killOnForcedExit: { kill(): void }[] = [];
/** The jobs running now, for the last log line of a worker that exits without finishing them. */
let runningJobs: () => string[] = () => [];

/** Names the jobs a forced exit would abandon. */
export function reportRunningJobs(list: () => string[]): void {
  runningJobs = list;
}

/** A defect that escaped every handler: say which jobs it takes down, then exit so RunPod replaces the worker. */
export function exitOnCrash(log: Logger): void {
  const crash = (error: unknown) => {
    log.error('the worker crashed; its running jobs are lost', { ...errorFields(error), runningJobs: runningJobs() });
    for (const child of killOnForcedExit) child.kill();
    process.exit(1);
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);
}

/** Calls `onFirst` on the first SIGTERM/SIGINT and exits at once on the second. */
export function onSignals(log: Logger, onFirst: (signal: string) => void): void {
  let received = 0;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      received++;
      if (received > 1) {
        log.warn(`${signal} received again; exiting now`, { abandonedJobs: runningJobs() });
        for (const child of killOnForcedExit) child.kill();
        process.exit(signal === 'SIGINT' ? 130 : 143);
      }
      log.info(`${signal} received; finishing the running jobs (send it again to exit at once)`);
      onFirst(signal);
    });
  }
}
