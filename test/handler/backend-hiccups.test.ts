import { describe, expect, it } from 'vitest';
import { A1111Simulator } from '../../src/simulator/server.js';
import { bootingSimulator, simulator } from '../support/simulator.js';
import { generated, runPodResult, testWorker } from '../support/worker.js';

const input = { prompt: 'a lighthouse', steps: 4, seed: 11 };

describe('a slow-booting A1111', () => {
  it('is waited for: probes fail while the port is closed, the job succeeds once it answers', async () => {
    const { sim, started } = await bootingSimulator({ bootDelayMs: 400 });
    const { runner, logs } = testWorker(sim.url, { A1111_READY_LOG_EVERY: '3' });

    const outcome = await runner.run({ id: 'job-slow-boot', input });
    await started;

    expect(outcome.ok).toBe(true);
    const waiting = logs.records().filter((r) => r['message'] === 'A1111 API is not ready yet');
    expect(waiting.length).toBeGreaterThan(0);
    expect(waiting[0]?.['failedProbes']).toBe(3);
    expect(String(waiting[0]?.['lastError'])).toContain('ECONNREFUSED');
    expect(sim.callsTo('POST', '/txt2img')).toHaveLength(1);
    // At debug level, the moves inside waitingForApi are lines too.
    const inner = logs.records().filter((r) => r['message'] === 'transition' && r['level'] === 'debug');
    expect(inner).toContainEqual(
      expect.objectContaining({
        from: 'waitingForApi.probing',
        to: 'waitingForApi.pausing',
        event: 'xstate.error.actor.probeApi',
        jobId: 'job-slow-boot',
      }),
    );
    expect(inner).toContainEqual(
      expect.objectContaining({ from: 'waitingForApi.pausing', to: 'waitingForApi.probing' }),
    );
  });

  it('fails BACKEND_UNAVAILABLE at the readiness deadline when nothing ever answers', async () => {
    const closed = new A1111Simulator();
    const url = await closed.reservePort(); // a port nobody listens on
    const { runner } = testWorker(url, { A1111_READY_TIMEOUT_MS: '300' });

    const outcome = await runner.run({ id: 'job-never-ready', input });

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure).toMatchObject({ code: 'BACKEND_UNAVAILABLE', phase: 'waitingForApi', retryable: true });
    expect(outcome.failure.message).toMatch(
      /did not become ready within 300 ms \(\d+ failed probe\(s\); last: .*ECONNREFUSED/,
    );
    const posted = JSON.parse((runPodResult(outcome) as { error: string }).error);
    expect(posted).toEqual(outcome.failure);
  });

  it('keeps probing while /sd-models answers 503, one probe per answer, and runs the job once it lists models', async () => {
    const sim = await simulator();
    sim.failNext(3, 503, '/sd-models');
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({ id: 'job-probe-503', input });

    expect(outcome.ok).toBe(true);
    expect(sim.callsTo('GET', '/sd-models').map((c) => c.status)).toEqual([503, 503, 503, 200]);
  });
});

describe('an A1111 that refuses the worker’s credentials', () => {
  it('fails BACKEND_REJECTED at once instead of waiting out the readiness deadline', async () => {
    const sim = await simulator({ apiAuth: 'alice:right' });
    const { runner } = testWorker(sim.url, { A1111_API_AUTH: 'alice:wrong' });

    const outcome = await runner.run({ id: 'job-401', input });

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure).toMatchObject({
      code: 'BACKEND_REJECTED',
      phase: 'waitingForApi',
      details: { status: 401 },
    });
    expect(sim.callsTo('GET', '/sd-models')).toHaveLength(1);
  });
});

describe('a burst of 502/503/504', () => {
  it('is retried, txt2img POSTs included, until A1111 answers', async () => {
    const sim = await simulator();
    sim.failNext(2, 502, '/txt2img');
    sim.failNext(2, 504, '/txt2img');
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({ id: 'job-5xx', input });

    expect(outcome.ok).toBe(true);
    expect(sim.callsTo('POST', '/txt2img').map((c) => c.status)).toEqual([502, 502, 504, 504, 200]);
  });

  it('fails BACKEND_UNAVAILABLE with the status and attempts once the retries are spent', async () => {
    const sim = await simulator();
    sim.failNext(10, 503, '/txt2img');
    const { runner } = testWorker(sim.url, { A1111_HTTP_RETRIES: '2' });

    const outcome = await runner.run({ id: 'job-5xx-spent', input });

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure).toMatchObject({
      code: 'BACKEND_UNAVAILABLE',
      phase: 'inferring',
      details: { status: 503, attempts: 3, route: '/txt2img' },
    });
    expect(sim.callsTo('POST', '/txt2img')).toHaveLength(3);
  });
});

describe('an A1111 that crashes', () => {
  it('fails the job BACKEND_CRASHED without sending the generation again', async () => {
    const sim = await simulator({ stepDelayMs: 5 });
    sim.crashDuringNextGeneration({ atStep: 2 });
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({ id: 'job-crash', input: { ...input, steps: 20 } });

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure).toMatchObject({ code: 'BACKEND_CRASHED', phase: 'inferring', retryable: true });
    expect(outcome.failure.message).toContain('dropped the connection during POST /sdapi/v1/txt2img');
    expect(sim.crashes).toBe(1);
    expect(sim.callsTo('POST', '/txt2img')).toHaveLength(1);
  });

  it('serves the next job once the WebUI is back', async () => {
    const sim = await simulator({ stepDelayMs: 5 });
    sim.crashDuringNextGeneration({ atStep: 1, restartAfterMs: 300 });
    const { runner } = testWorker(sim.url);

    const first = await runner.run({ id: 'job-crash-1', input });
    const second = await runner.run({ id: 'job-crash-2', input });

    expect(first.ok).toBe(false);
    expect(second.ok).toBe(true);
  });
});

describe('a WebUI reload (route 404 {"detail":"Not Found"})', () => {
  it('is recovered: the job waits, re-verifies, checks the route and generates', async () => {
    const sim = await simulator();
    sim.reloadOnNext('/txt2img', 300);
    const { runner, logs } = testWorker(sim.url);

    const outcome = await runner.run({ id: 'job-reload', input });

    if (!outcome.ok) throw new Error(outcome.failure.message);
    expect(generated(outcome).worker.recoveries).toBe(1);
    expect(sim.callsTo('POST', '/txt2img').map((c) => c.status)).toEqual([404, 200]);
    expect(sim.callsTo('GET', '/txt2img').at(-1)?.status).toBe(405); // the route check before the second POST
    expect(logs.statePath()).toEqual([
      'waitingForApi',
      'verifyingModels',
      'ready',
      'inferring',
      'recovering',
      'waitingForApi',
      'verifyingModels',
      'ready',
      'inferring',
      'delivering',
      'succeeded',
    ]);
    expect(
      logs.records().some((r) => r['message'] === 'A1111 routes are missing; recovering' && r['attempt'] === 1),
    ).toBe(true);
    // Every line in the order it happened: entering `ready` before the moves inside it.
    const lines = logs
      .records()
      .filter((r) => r['message'] === 'transition')
      .map((r) => `${r['from']}→${r['to']}`);
    const entered = lines.lastIndexOf('verifyingModels→ready');
    expect(entered).toBeGreaterThan(0);
    expect(lines.slice(entered, entered + 4)).toEqual([
      'verifyingModels→ready',
      'ready.routing→ready.checkingRoute',
      'ready→inferring',
      'inferring→delivering',
    ]);
  });

  it('fails BACKEND_ROUTE_MISSING after the configured attempts when the route never comes back', async () => {
    const sim = await simulator();
    sim.setRouteMounted('/txt2img', false);
    const { runner } = testWorker(sim.url, { A1111_ROUTE_RECOVERY_ATTEMPTS: '3' });

    const outcome = await runner.run({ id: 'job-no-route', input });

    if (outcome.ok) throw new Error('expected a failure');
    expect(outcome.failure).toMatchObject({
      code: 'BACKEND_ROUTE_MISSING',
      retryable: true,
      details: { recoveryAttempts: 3 },
    });
    expect(outcome.failure.message).toContain('after 3 recovery attempt(s)');
    // One POST; each recovery attempt stops at the route check.
    expect(sim.callsTo('POST', '/txt2img')).toHaveLength(1);
    expect(sim.callsTo('GET', '/txt2img')).toHaveLength(3);
  });
});
