/**
 * The job ids the main thread shares with the heartbeat thread: a reader on another thread sees whole
 * lists only. The reader runs the compiled module (dist/) on a real worker thread; `npm test` builds it.
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { SharedJobIds } from '../../src/runpod/heartbeat-loop.js';

const MODULE = new URL('../../dist/src/runpod/heartbeat-loop.js', import.meta.url).href;

describe('shared job ids', () => {
  it('never gives the other thread a mix of two lists, however often they change', async () => {
    const ids = new SharedJobIds();
    const lists = [
      ['job-aaaaaaaaaaaaaaaa', 'job-bbbbbbbbbbbbbbbb'],
      ['job-c'],
      [],
      ['job-dddddddddddddddddddddddddddddd'],
    ];
    ids.write(lists[0]!);
    // The reader reads as fast as it can for a while and reports every distinct list it saw.
    const reader = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       import(workerData.module).then(({ SharedJobIds }) => {
         const ids = new SharedJobIds(workerData.buffer);
         const seen = new Set();
         const until = Date.now() + 1500;
         while (Date.now() < until) seen.add(JSON.stringify(ids.read()));
         parentPort.postMessage([...seen]);
       });`,
      { eval: true, workerData: { module: MODULE, buffer: ids.buffer } },
    );
    const seen = new Promise<string[]>((resolve, reject) => {
      reader.once('message', resolve);
      reader.once('error', reject);
    });
    let writes = 0;
    const writer = setInterval(() => {
      for (let i = 0; i < 2_000; i++) ids.write(lists[writes++ % lists.length]!);
    }, 1);

    const results = await seen;
    clearInterval(writer);
    await reader.terminate();

    expect(writes).toBeGreaterThan(0);
    const whole = new Set(lists.map((list) => JSON.stringify(list)));
    expect(results.filter((list) => !whole.has(list))).toEqual([]);
    expect(ids.read()).toEqual(lists[(writes - 1) % lists.length]);
  });

  it('keeps only whole ids when they do not all fit, and stays readable whatever it is given', () => {
    const ids = new SharedJobIds();
    const many = Array.from({ length: 10_000 }, (_, i) => `job-${String(i).padStart(8, '0')}`);
    ids.write(many);
    const kept = ids.read();
    expect(kept.length).toBeGreaterThan(0);
    expect(kept).toEqual(many.slice(0, kept.length));

    ids.write(['x'.repeat(100_000)]);
    expect(ids.read()).toEqual([]);
    ids.write(['job-after']);
    expect(ids.read()).toEqual(['job-after']);
  });
});
