/**
 * Starts the heartbeat in a worker thread, so its cadence does not depend on the main event loop
 * (RunPod kills workers whose pings stop). When the compiled thread file is not there, as when the
 * sources run under a test runner, the same loop runs on the main thread.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { errorFields } from '../errors.js';
import type { Logger } from '../log/index.js';
import { type HeartbeatOptions, type HeartbeatReport, SharedJobIds, startHeartbeatLoop } from './heartbeat-loop.js';

/** Whether the loop runs on its own thread (the compiled worker) or on the main thread (sources under test). */
export function heartbeatRunsOnThread(): boolean {
  return existsSync(fileURLToPath(new URL('./heartbeat-thread.js', import.meta.url)));
}

export interface Heartbeat {
  /** The jobs this worker holds; sent with every ping from now on. */
  setJobIds(ids: readonly string[]): void;
  stop(): Promise<void>;
}

export function startHeartbeat(
  options: HeartbeatOptions,
  log: Logger,
  observe?: (report: HeartbeatReport) => void,
): Heartbeat {
  let failures = 0;
  const onReport = (report: HeartbeatReport) => {
    observe?.(report);
    if (report.type === 'sent') {
      if (failures > 0) log.info('heartbeat restored', { afterFailures: failures });
      failures = 0;
      log.debug('heartbeat sent', { status: report.status, jobIds: report.jobIds.join(',') });
    } else {
      failures++;
      // The first failure and then every tenth, so a dead control plane does not flood the log.
      if (failures === 1 || failures % 10 === 0) log.error('heartbeat failed', { error: report.error, failures });
    }
  };

  const jobIds = new SharedJobIds();
  const threadFile = fileURLToPath(new URL('./heartbeat-thread.js', import.meta.url));
  if (!existsSync(threadFile)) {
    log.debug('heartbeat started', { thread: 'main', intervalMs: options.intervalMs });
    const loop = startHeartbeatLoop(options, jobIds, onReport);
    return {
      setJobIds: (ids) => jobIds.write(ids),
      stop: async () => loop.stop(),
    };
  }

  const worker = new Worker(threadFile, { workerData: { options, jobIds: jobIds.buffer } });
  worker.unref();
  log.debug('heartbeat started', { thread: 'own', intervalMs: options.intervalMs });
  worker.on('message', onReport);
  worker.on('error', (error) => log.error('heartbeat thread failed', errorFields(error)));
  return {
    setJobIds: (ids) => jobIds.write(ids),
    stop: async () => {
      worker.postMessage({ stop: true });
      await worker.terminate();
    },
  };
}
