/** What bounds a job (its machine's settings, from the worker's configuration), and the clock that drives it. */
import type { ActorOptions, AnyActorLogic } from 'xstate';
import type { JobSettings } from '../../machines/job.types.js';
import type { Config } from '../config/index.js';

/** XState's clock interface (setTimeout/clearTimeout), as `SimulatedClock` implements it. */
export type Clock = NonNullable<ActorOptions<AnyActorLogic>['clock']>;

/** A job's settings; `withProgress` when someone takes its progress readings. */
export function jobSettings(config: Config, withProgress: boolean): JobSettings {
  return {
    jobTimeoutMs: config.job.timeoutMs,
    readyTimeoutMs: config.a1111.readyTimeoutMs,
    readyPollIntervalMs: config.a1111.readyPollIntervalMs,
    readyLogEvery: config.a1111.readyLogEvery,
    routeRecoveryAttempts: config.a1111.routeRecoveryAttempts,
    routeRecoveryDelayMs: config.a1111.routeRecoveryDelayMs,
    modelRegistryWaitMs: config.models.registryWaitMs,
    progressIntervalMs: withProgress ? config.job.progressPollIntervalMs : 0,
  };
}
