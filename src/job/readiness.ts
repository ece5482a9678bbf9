/**
 * The start-up wait for A1111: the `waitingForApi` rules of the job machine (probe GET /sdapi/v1/sd-models
 * every poll interval, a line every Nth failure, fail at the readiness deadline), run once before the
 * worker takes its first job.
 */
import { createActor, fromPromise, toPromise } from 'xstate';
import type { ReadinessOutput } from '../../machines/job.types.js';
import { readinessMachine } from '../../machines/readiness.machine.js';
import type { A1111Client } from '../a1111/client.js';
import type { SdModel } from '../a1111/schemas.js';
import type { Config } from '../config/index.js';
import type { Logger } from '../log/index.js';
import type { Clock } from './settings.js';

export type ReadinessResult = ReadinessOutput & { waitedMs: number };

/**
 * Waits until A1111 answers, or its readiness deadline passes.
 *
 * @example
 * const ready = await waitForA1111({ client, config, log });
 * if (ready.status === 'failed') process.exit(1);
 */
export async function waitForA1111(deps: {
  client: A1111Client;
  config: Config;
  log: Logger;
  clock?: Clock;
  /** Aborting ends the wait at once with a CANCELLED failure (a shutdown during boot). */
  signal?: AbortSignal;
}): Promise<ReadinessResult> {
  const started = performance.now();
  const machine = readinessMachine.provide({
    actors: { probeApi: fromPromise<SdModel[], void>(({ signal }) => deps.client.probe(signal)) },
  });
  const actor = createActor(machine, {
    input: {
      settings: {
        readyTimeoutMs: deps.config.a1111.readyTimeoutMs,
        readyPollIntervalMs: deps.config.a1111.readyPollIntervalMs,
        readyLogEvery: deps.config.a1111.readyLogEvery,
      },
    },
    ...(deps.clock ? { clock: deps.clock } : {}),
  });
  actor.on('api.waiting', (event) =>
    deps.log.info('A1111 API is not ready yet', { failedProbes: event.failures, lastError: event.lastError?.message }),
  );
  const done = toPromise(actor) as Promise<ReadinessOutput>;
  const aborted = new Promise<ReadinessOutput>((resolve) => {
    const onAbort = () =>
      resolve({
        status: 'failed',
        probes: actor.getSnapshot().context.probeFailures,
        failure: {
          code: 'CANCELLED',
          message: 'the wait for A1111 was cancelled',
          phase: 'waitingForApi',
          retryable: false,
          details: {},
        },
      });
    if (deps.signal?.aborted) onAbort();
    deps.signal?.addEventListener('abort', onAbort, { once: true });
    void done.finally(() => deps.signal?.removeEventListener('abort', onAbort));
  });
  actor.start();
  try {
    const output = await Promise.race([done, aborted]);
    return { ...output, waitedMs: Math.round(performance.now() - started) };
  } finally {
    actor.stop();
  }
}
