/**
 * The opt-in Stately inspector, with the built worker: it sends sanitized machine events to a
 * WebSocket bridge, and an unreachable bridge neither fails a job nor keeps the process alive.
 */
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { A1111Simulator } from '../src/simulator/server.js';
import { simulator } from './support/simulator.js';
import { WORKER_ENTRY } from './support/worker-process.js';

async function runWorker(env: Record<string, string>) {
  const cwd = await mkdtemp(path.join(tmpdir(), 'inspect-'));
  return new Promise<{ code: number; stdout: string }>((resolve) => {
    execFile(
      process.execPath,
      [WORKER_ENTRY, '--test_input', '{"input":{"prompt":"x","steps":3,"width":64,"height":64}}'],
      { cwd, env: { PATH: process.env['PATH'] ?? '', LOG_FORMAT: 'json', ...env }, timeout: 50_000 },
      (error, stdout) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout }),
    );
  });
}

describe('the Stately inspector', () => {
  it('receives the job machine’s events and snapshots, without image payloads', async () => {
    const sim = await simulator();
    const bridge = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await new Promise((resolve) => bridge.once('listening', resolve));
    const messages: string[] = [];
    bridge.on('connection', (socket) => socket.on('message', (data) => messages.push(String(data))));

    const { code } = await runWorker({
      A1111_BASE_URL: sim.url,
      STATELY_INSPECT: `ws://127.0.0.1:${(bridge.address() as AddressInfo).port}`,
    });
    await new Promise<void>((resolve) => bridge.close(() => resolve()));

    expect(code).toBe(0);
    const events = messages.map((m) => JSON.parse(m) as { type: string; snapshot?: string; event?: string });
    expect(events.some((e) => e.type === '@xstate.snapshot')).toBe(true);
    const all = messages.join('\n');
    expect(all).toContain('inferring');
    expect(all).toContain('xstate.done.actor.callA1111');
    expect(all).not.toContain('iVBORw0KGgo');
  });

  it('neither fails the job nor keeps the worker alive when the bridge is unreachable', async () => {
    const sim = await simulator();
    const closed = await new A1111Simulator().reservePort(); // a port nobody listens on

    const { code, stdout } = await runWorker({
      A1111_BASE_URL: sim.url,
      STATELY_INSPECT: closed.replace('http', 'ws'),
    });

    expect(code).toBe(0);
    expect(stdout).toContain('Job local_test completed successfully');
  });
});
