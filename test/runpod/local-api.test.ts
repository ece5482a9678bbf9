/**
 * The local API (`--rp_serve_api`) driven by RunPod's official JS client, runpod-sdk, unchanged: only
 * its baseUrl points at the worker.
 */
import runpodSdk from 'runpod-sdk';
import { describe, expect, it } from 'vitest';
import { decodePng } from '../support/png.js';
import { simulator } from '../support/simulator.js';
import { startWorker } from '../support/worker-process.js';

async function localApi(stepDelayMs = 0, env: Record<string, string> = {}) {
  const sim = await simulator({ stepDelayMs });
  const worker = startWorker({ A1111_BASE_URL: sim.url, ...env }, [
    '--rp_serve_api',
    '--rp_api_host',
    '127.0.0.1',
    '--rp_api_port',
    '0',
    // Flags of RunPod's Python runtime the worker accepts without needing them.
    '--rp_api_concurrency',
    '1',
    '--rp_debugger',
  ]);
  const line = await worker.waitForLog((r) => String(r['message']).startsWith('Local API listening on'));
  const endpoint = runpodSdk('local-key', { baseUrl: `${String(line['url'])}/v2` }).endpoint('local-ep')!;
  return { sim, worker, endpoint, url: String(line['url']) };
}

/** What runpod-sdk returns for status calls at run time (its types leave out the flags it adds). */
interface StatusView {
  id: string;
  status: string;
  completed?: boolean;
  succeeded?: boolean;
  output?: unknown;
  error?: string;
  executionTime?: number;
}

const input = { prompt: 'a lighthouse', steps: 3, seed: 4, width: 128, height: 128 };

describe('the local API with runpod-sdk', () => {
  it('run + status: queued, then COMPLETED with the images', async () => {
    const { endpoint, worker } = await localApi();

    const queued = await endpoint.run({ input });
    expect(queued).toMatchObject({ status: 'IN_QUEUE' });
    let status = (await endpoint.status(queued.id)) as StatusView;
    while (!status.completed) status = (await endpoint.status(queued.id)) as StatusView;

    expect(status).toMatchObject({
      id: queued.id,
      status: 'COMPLETED',
      started: true,
      completed: true,
      succeeded: true,
    });
    const output = status.output as { images: string[] };
    expect(decodePng(output.images[0]!).text['parameters']).toContain('Seed: 4');
    expect(typeof status.executionTime).toBe('number');
    worker.child.kill('SIGTERM');
    expect((await worker.exited).code).toBe(0);
  });

  it('runSync: one call, the finished job', async () => {
    const { endpoint, worker } = await localApi();

    const result = (await endpoint.runSync({ input: { ...input, batch_size: 2 } })) as StatusView;

    expect(result).toMatchObject({ status: 'COMPLETED', succeeded: true });
    expect((result.output as { images: string[] }).images).toHaveLength(2);
    worker.child.kill('SIGTERM');
    await worker.exited;
  });

  it('runSync of a bad input: FAILED with the worker’s error JSON', async () => {
    const { endpoint, worker, sim } = await localApi();

    const result = (await endpoint.runSync({ input: { steps: 0 } })) as StatusView;

    expect(result).toMatchObject({ status: 'FAILED', succeeded: false });
    expect(JSON.parse(String(result.error))).toMatchObject({ code: 'INVALID_INPUT', phase: 'booting' });
    expect(sim.calls).toEqual([]);
    worker.child.kill('SIGTERM');
    await worker.exited;
  });

  it('stream: progress readings while it generates, as on RunPod; the output comes from status', async () => {
    const { endpoint, worker } = await localApi(20, { PROGRESS_POLL_INTERVAL_MS: '50' });

    const { id } = await endpoint.run({ input: { ...input, steps: 30 } });
    const items: { output: Record<string, unknown> }[] = [];
    for await (const item of endpoint.stream(id)) items.push(item as { output: Record<string, unknown> });

    const progress = items.filter((item) => 'step' in item.output);
    expect(progress.length).toBeGreaterThan(0);
    expect(progress[0]!.output['steps']).toBe(30);
    expect(items.every((item) => !('images' in item.output))).toBe(true);
    const status = (await endpoint.status(id)) as StatusView;
    expect((status.output as { images: string[] }).images).toHaveLength(1);
    worker.child.kill('SIGTERM');
    await worker.exited;
  });

  it('stream: holds the request open until there is news, so a client does not spin', async () => {
    // No progress readings at all: the only news is the job's end.
    const { endpoint, worker, url } = await localApi(20, { PROGRESS_POLL_INTERVAL_MS: '0' });

    const { id } = await endpoint.run({ input: { ...input, steps: 30 } });
    const asked = Date.now();
    const answer = (await (await fetch(`${url}/v2/local-ep/stream/${id}`)).json()) as {
      status: string;
      stream: unknown[];
    };

    expect(answer).toEqual({ id, status: 'COMPLETED', stream: [] });
    // 30 steps of 20 ms: the answer waited for the job instead of coming back at once, IN_PROGRESS.
    expect(Date.now() - asked).toBeGreaterThanOrEqual(400);
    worker.child.kill('SIGTERM');
    await worker.exited;
  });

  it('cancel: the running job ends CANCELLED and A1111 is interrupted', async () => {
    const { endpoint, worker, sim } = await localApi(30);

    const { id } = await endpoint.run({ input: { ...input, steps: 300 } });
    while (!sim.engine.busy) await new Promise((resolve) => setTimeout(resolve, 10));
    const answer = await endpoint.cancel(id);
    expect(answer).toMatchObject({ id, status: 'CANCELLED' });
    let status = (await endpoint.status(id)) as StatusView;
    while (!status.completed) status = (await endpoint.status(id)) as StatusView;

    expect(status.status).toBe('CANCELLED');
    expect(sim.callsTo('POST', '/interrupt')).toHaveLength(1);
    await sim.engine.generationsEnded(1);
    expect(sim.engine.generations[0]?.interrupted).toBe(true);
    worker.child.kill('SIGTERM');
    await worker.exited;
  });

  it('health: the platform’s shape plus the worker’s own metrics', async () => {
    const { endpoint, worker } = await localApi();
    await endpoint.runSync({ input });
    await endpoint.runSync({ input: { steps: -2 } });

    const health = (await endpoint.health()) as Record<string, Record<string, unknown>>;

    expect(health['jobs']).toEqual({ completed: 1, failed: 1, inProgress: 0, inQueue: 0, retried: 0 });
    expect(health['workers']).toMatchObject({ idle: 1, running: 0 });
    expect(health['worker']).toMatchObject({
      concurrency: 1,
      jobs: { taken: 2, succeeded: 1, failed: 1 },
      failedByCode: { INVALID_INPUT: 1 },
    });
    worker.child.kill('SIGTERM');
    await worker.exited;
  });

  it('purge-queue: removes jobs still waiting', async () => {
    const { endpoint, worker, url } = await localApi(30);
    await endpoint.run({ input: { ...input, steps: 100 } });
    const waiting = await endpoint.run({ input });
    // A client holding a status-sync on the queued job is answered when it is purged, not after its wait.
    const asked = Date.now();
    const held = fetch(`${url}/v2/local-ep/status-sync/${waiting.id}?wait=60000`).then((r) => r.json());
    await new Promise((resolve) => setTimeout(resolve, 100));

    const purged = await endpoint.purgeQueue();

    expect(purged).toEqual({ removed: 1, status: 'completed' });
    expect(await held).toMatchObject({ id: waiting.id, status: 'CANCELLED' });
    expect(Date.now() - asked).toBeLessThan(30_000);
    // As on the platform, a request that no longer exists is a 404 (which runpod-sdk throws).
    await expect(endpoint.status(waiting.id)).rejects.toThrow('404');
    worker.child.kill('SIGTERM');
    await worker.exited;
  });
});
