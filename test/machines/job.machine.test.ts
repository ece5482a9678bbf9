/**
 * The job machine's timing rules, driven by xstate's SimulatedClock with stub actors: no network, no
 * real time.
 */
import { describe, expect, it } from 'vitest';
import { createActor, fromCallback, fromPromise, SimulatedClock, waitFor } from 'xstate';
import { jobMachine } from '../../machines/job.machine.js';
import type {
  Delivered,
  DeliverInput,
  InterruptResult,
  JobEmitted,
  JobOutput,
  JobSettings,
  PreparedJob,
  VerifiedJob,
} from '../../machines/job.types.js';
import type { A1111Request } from '../../src/a1111/request-fields.js';
import type { SdModel, Txt2ImgResponse } from '../../src/a1111/schemas.js';
import { WorkerError } from '../../src/errors.js';

const settings: JobSettings = {
  jobTimeoutMs: 0,
  readyTimeoutMs: 10_000,
  readyPollIntervalMs: 200,
  readyLogEvery: 15,
  routeRecoveryAttempts: 3,
  routeRecoveryDelayMs: 5_000,
  modelRegistryWaitMs: 3_000,
  progressIntervalMs: 0,
};
const prepared: PreparedJob = {
  operation: 'POST /sdapi/v1/txt2img',
  request: { prompt: 'p' },
  imageUrls: 0,
  verify: true,
  checkpoint: null,
  model: null,
  notes: [],
};
const response: Txt2ImgResponse = { images: ['iVBOR'], parameters: {}, info: '{}' };
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

interface Stubs {
  probe?: () => Promise<SdModel[]>;
  verify?: () => Promise<VerifiedJob>;
  callA1111?: () => Promise<Txt2ImgResponse>;
  checkRoute?: () => Promise<void>;
  refresh?: () => Promise<void>;
  interrupt?: () => Promise<InterruptResult>;
}

function start(stubs: Stubs, overrides: Partial<JobSettings> = {}) {
  const clock = new SimulatedClock();
  const calls: string[] = [];
  const track =
    <T>(name: string, fn: () => Promise<T>) =>
    () => {
      calls.push(name);
      return fn();
    };
  const machine = jobMachine.provide({
    actors: {
      validateInput: fromPromise<PreparedJob, { jobId: string; input: unknown }>(async () => prepared),
      probeApi: fromPromise<SdModel[], void>(track('probeApi', stubs.probe ?? (async () => []))),
      verifyModels: fromPromise(
        track(
          'verifyModels',
          stubs.verify ?? (async () => ({ request: { prompt: 'p' }, notes: [], downloaded: false })),
        ),
      ),
      refreshCheckpoints: fromPromise<void, void>(
        track('refreshCheckpoints', stubs.refresh ?? (async () => undefined)),
      ),
      checkRoute: fromPromise<void, { operation: string }>(
        track('checkRoute', stubs.checkRoute ?? (async () => undefined)),
      ),
      callA1111: fromPromise<unknown, { jobId: string; operation: string; request: A1111Request }>(
        track('callA1111', stubs.callA1111 ?? (async () => response)),
      ),
      deliverResult: fromPromise<Delivered, DeliverInput>(
        track('deliverResult', async () => ({ response, uploads: [], notes: [] })),
      ),
      interruptBackend: fromPromise(
        track(
          'interruptBackend',
          stubs.interrupt ?? (async (): Promise<InterruptResult> => ({ interrupt: 'sent', settled: true })),
        ),
      ),
      watchProgress: fromCallback(() => () => undefined),
    },
  });
  const actor = createActor(machine, {
    clock,
    input: { jobId: 'j', input: {}, settings: { ...settings, ...overrides } },
  });
  const emitted: JobEmitted[] = [];
  actor.on('*', (event) => emitted.push(event));
  actor.start();
  return { actor, clock, calls, emitted };
}

const never = <T>() => new Promise<T>(() => undefined);
const routeMissing = () => Promise.reject(new WorkerError('BACKEND_ROUTE_MISSING', 'routes are not mounted'));

describe('waitingForApi', () => {
  it('probes every poll interval and fails BACKEND_UNAVAILABLE exactly at the readiness deadline', async () => {
    const { actor, clock, calls, emitted } = start({
      probe: () => Promise.reject(new WorkerError('BACKEND_UNAVAILABLE', 'connect ECONNREFUSED')),
    });
    await flush();
    for (let t = 0; t < 9_800; t += 200) {
      clock.increment(200);
      await flush();
    }
    expect(actor.getSnapshot().status).toBe('active');
    clock.increment(200);
    await flush();

    expect(actor.getSnapshot().value).toBe('failed');
    expect(actor.getSnapshot().output).toMatchObject({
      status: 'failed',
      failure: { code: 'BACKEND_UNAVAILABLE', phase: 'waitingForApi' },
    });
    expect(calls.filter((c) => c === 'probeApi')).toHaveLength(50);
    expect(emitted.filter((e) => e.type === 'api.waiting').map((e) => (e as { failures: number }).failures)).toEqual([
      15, 30, 45,
    ]);
  });

  it('waits forever when the readiness deadline is 0', async () => {
    const { actor, clock } = start(
      { probe: () => Promise.reject(new WorkerError('BACKEND_UNAVAILABLE', 'refused')) },
      { readyTimeoutMs: 0 },
    );
    await flush();
    for (let i = 0; i < 500; i++) {
      clock.increment(200);
      await flush();
    }
    expect(actor.getSnapshot().matches('waitingForApi')).toBe(true);
    actor.stop();
  });
});

describe('recovering', () => {
  it('waits the recovery delay before each attempt and gives up after the configured number', async () => {
    const { actor, clock, calls, emitted } = start({ callA1111: routeMissing, checkRoute: routeMissing });
    await waitFor(actor, (s) => s.matches('recovering'));
    for (let attempt = 1; attempt <= 3; attempt++) {
      expect(actor.getSnapshot().context.recoveryAttempts).toBe(attempt);
      clock.increment(4_999);
      await flush();
      expect(actor.getSnapshot().matches('recovering')).toBe(true);
      clock.increment(1);
      await flush();
    }
    expect(actor.getSnapshot().output).toMatchObject({
      status: 'failed',
      recoveries: 3,
      failure: { code: 'BACKEND_ROUTE_MISSING', phase: 'ready', details: { recoveryAttempts: 3 } },
    });
    expect(calls.filter((c) => c === 'callA1111')).toHaveLength(1);
    expect(calls.filter((c) => c === 'checkRoute')).toHaveLength(3);
    expect(emitted.filter((e) => e.type === 'job.recovering')).toHaveLength(3);
  });

  it('is not entered for an application 404: the job fails BACKEND_REJECTED at once', async () => {
    const { actor, calls } = start({
      callA1111: () => Promise.reject(new WorkerError('BACKEND_REJECTED', 'A1111 rejected ...: Sampler not found')),
    });
    await waitFor(actor, (s) => s.status === 'done');
    expect(actor.getSnapshot().output).toMatchObject({
      failure: { code: 'BACKEND_REJECTED', phase: 'inferring' },
      recoveries: 0,
    });
    expect(calls.filter((c) => c === 'callA1111')).toHaveLength(1);
  });
});

describe('the job deadline', () => {
  it('interrupts a running generation and fails BACKEND_TIMEOUT', async () => {
    const { actor, clock, calls } = start({ callA1111: never }, { jobTimeoutMs: 60_000 });
    await waitFor(actor, (s) => s.matches('inferring'));
    clock.increment(59_999);
    await flush();
    expect(actor.getSnapshot().matches('inferring')).toBe(true);
    clock.increment(1);
    await waitFor(actor, (s) => s.status === 'done');
    expect(calls.at(-1)).toBe('interruptBackend');
    expect(actor.getSnapshot().output).toMatchObject({
      failure: { code: 'BACKEND_TIMEOUT', phase: 'inferring', details: { interrupt: 'sent', a1111Idle: true } },
    });
  });

  it('fails without an interrupt when nothing is generating yet', async () => {
    const { actor, clock, calls } = start({ probe: never }, { jobTimeoutMs: 1_000 });
    await flush();
    clock.increment(1_000);
    await waitFor(actor, (s) => s.status === 'done');
    expect(calls).not.toContain('interruptBackend');
    expect(actor.getSnapshot().output).toMatchObject({ failure: { code: 'BACKEND_TIMEOUT', phase: 'waitingForApi' } });
  });

  it('keeps the original failure when the interrupt itself fails, noting why', async () => {
    const { actor } = start({
      callA1111: never,
      interrupt: () => Promise.reject(new WorkerError('BACKEND_UNAVAILABLE', 'connection refused')),
    });
    await waitFor(actor, (s) => s.matches('inferring'));
    actor.send({ type: 'job.cancel', reason: 'user' });
    await waitFor(actor, (s) => s.status === 'done');
    expect(actor.getSnapshot().output).toMatchObject({
      failure: { code: 'CANCELLED', details: { interruptError: 'connection refused' } },
    });
  });
});

describe('postDownloadStabilizing', () => {
  it('refreshes checkpoints, waits the registry delay, checks health, then verifies again', async () => {
    let verifications = 0;
    const { actor, clock, calls } = start({
      verify: async () => ({ request: { prompt: 'p' }, notes: [], downloaded: ++verifications === 1 }),
    });
    await waitFor(actor, (s) => s.matches({ postDownloadStabilizing: 'settling' }));
    expect(calls).toEqual(['probeApi', 'verifyModels', 'refreshCheckpoints']);
    clock.increment(2_999);
    await flush();
    expect(actor.getSnapshot().matches({ postDownloadStabilizing: 'settling' })).toBe(true);
    clock.increment(1);
    await waitFor(actor, (s) => s.status === 'done');
    expect(calls).toEqual([
      'probeApi',
      'verifyModels',
      'refreshCheckpoints',
      'probeApi',
      'verifyModels',
      'callA1111',
      'deliverResult',
    ]);
    expect(actor.getSnapshot().output).toMatchObject({ status: 'succeeded' });
  });

  it('goes on with a note when the refresh and the health check fail', async () => {
    let verifications = 0;
    let probes = 0;
    const { actor, clock } = start({
      probe: async () => {
        if (++probes > 1) throw new WorkerError('BACKEND_UNAVAILABLE', 'health check refused');
        return [];
      },
      refresh: () => Promise.reject(new WorkerError('BACKEND_ERROR', 'refresh broke')),
      verify: async () => ({ request: { prompt: 'p' }, notes: [], downloaded: ++verifications === 1 }),
    });
    await waitFor(actor, (s) => s.matches({ postDownloadStabilizing: 'settling' }));
    clock.increment(3_000);
    await waitFor(actor, (s) => s.status === 'done');
    const output = actor.getSnapshot().output as JobOutput | undefined;
    expect(output?.status).toBe('succeeded');
    expect(output?.notes.join('\n')).toMatch(/refresh-checkpoints failed \(refresh broke\); going on/);
    expect(output?.notes.join('\n')).toMatch(
      /health check after the download failed \(health check refused\); going on/,
    );
  });
});
