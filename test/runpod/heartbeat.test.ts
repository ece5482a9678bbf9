/**
 * The heartbeat keeps its schedule while the main thread is busy with a large result. This uses the
 * compiled module (dist/), whose loop runs on a worker thread; `npm test` builds it first.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import type * as HeartbeatModule from '../../src/runpod/heartbeat.js';
import type { HeartbeatReport } from '../../src/runpod/heartbeat-loop.js';
import { A1111Simulator } from '../../src/simulator/server.js';
import { FakeRunPod } from '../support/fake-runpod.js';
import { captureLog } from '../support/logs.js';
import { startWorker, WORKER_ENTRY } from '../support/worker-process.js';

const compiled = (await import(
  new URL('../../dist/src/runpod/heartbeat.js', import.meta.url).href
)) as typeof HeartbeatModule;

/** About 25 MB of JSON in the shape of an A1111 response: parsed and re-encoded, as the worker does. */
function largeResult(): string {
  const image = Buffer.alloc(3_200_000, 'iVBORw0KGgoAAAANSUhEUg').toString('base64');
  return JSON.stringify({ images: Array(8).fill(image), parameters: {}, info: '{}' });
}

describe('the heartbeat thread', () => {
  it('runs from the compiled worker on its own thread', () => {
    expect(compiled.heartbeatRunsOnThread()).toBe(true);
  });

  it('runs on its own thread in the worker the image runs (the bundle), and pings', async () => {
    const runpod = new FakeRunPod({ longPollMs: 200 });
    await runpod.start();
    const sim = new A1111Simulator();
    await sim.start();
    try {
      const worker = startWorker({ ...runpod.env({ RUNPOD_PING_INTERVAL: '100' }), A1111_BASE_URL: sim.url });
      expect(WORKER_ENTRY).toMatch(/dist\/bundle\/main\.js$/);
      const started = await worker.waitForLog((r) => r['message'] === 'heartbeat started');
      expect(started).toMatchObject({ thread: 'own', intervalMs: 100 });
      await runpod.waitFor((r) => r.kind === 'ping');
      worker.child.kill('SIGTERM');
      await worker.exited;
    } finally {
      await runpod.close();
      await sim.close();
    }
  });

  it('keeps pinging every interval while the main thread parses and posts a 25 MB result', async () => {
    // The control plane answers from its own process, so this thread being busy does not slow it down.
    const server = spawn(process.execPath, [
      '-e',
      `const s = require('node:http').createServer((q, r) => r.end('{"status":"pong"}'));
       s.listen(0, '127.0.0.1', () => console.log(s.address().port));`,
    ]);
    const [portLine] = (await once(server.stdout, 'data')) as [Buffer];
    const url = `http://127.0.0.1:${portLine.toString().trim()}/ping/pod-1`;
    const reports: HeartbeatReport[] = [];
    const heartbeat = compiled.startHeartbeat(
      { url, intervalMs: 100, apiKey: 'k', version: '0.0.0', userAgent: 'test' },
      captureLog().log,
      (report) => reports.push(report),
    );
    heartbeat.setJobIds(['job-big']);

    const text = largeResult();
    const busyFrom = Date.now();
    // The main thread does nothing but parse and re-encode for about a second.
    while (Date.now() - busyFrom < 1_000) JSON.stringify(JSON.parse(text));
    const busyUntil = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 300)); // let the blocked replies and reports arrive
    await heartbeat.stop();
    server.kill();

    const during = reports.filter((r) => r.startedAt >= busyFrom && r.startedAt <= busyUntil);
    // On a blocked main thread there would be none; the thread keeps its 100 ms schedule.
    expect(during.length).toBeGreaterThanOrEqual(5);
    expect(reports.some((r) => r.type === 'sent' && r.jobIds.includes('job-big'))).toBe(true);
  });
});
