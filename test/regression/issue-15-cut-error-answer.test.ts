/**
 * Issue 15: the chaos run reported "failed BACKEND_UNAVAILABLE without a fault that calls for it" for a
 * job whose route check (GET /txt2img, not retried) met a 504 that was also cut half-way: the worker
 * read the 504 in the status line, as it should, but the simulator recorded the call as cut (-2) only,
 * so the run's check found no 5xx behind the failure. The record now keeps the status a cut answer
 * carried (`cutStatus`).
 */
import { describe, expect, it } from 'vitest';
import { simulator } from '../support/simulator.js';
import { testWorker } from '../support/worker.js';

describe('an error answer cut half-way', () => {
  it('is the status it carried to the worker, and the simulator records that status beside the cut', async () => {
    const sim = await simulator();
    const { client } = testWorker(sim.url);
    sim.failNext(1, 504);
    sim.cutNextResponses(1, '/txt2img');

    const failure = await client.isTxt2ImgRouteMounted().catch((error: unknown) => error);

    expect(failure).toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
    expect((failure as Error).message).toBe('A1111 answered 504 to GET /sdapi/v1/txt2img on each of 1 attempt(s)');
    expect(sim.callsTo('GET', '/txt2img').map((c) => [c.status, c.cutStatus])).toEqual([[-2, 504]]);
  });
});
