/**
 * Model-based coverage of the job machine: xstate/graph explores every state the machine can reach
 * with the events its actors, timers and callers can produce; each edge of that graph is then driven on
 * a live actor (scripted actors, a clock that fires the named timers) and must land where the pure
 * model says. Every transition the machine defines must be taken by some edge, so a transition added
 * without a way to reach it fails here.
 */

import { describe, expect, it } from 'vitest';
import {
  type AnyEventObject,
  type AnyStateMachine,
  type AnyStateNode,
  createActor,
  fromCallback,
  fromPromise,
  type SnapshotFrom,
} from 'xstate';
import { type AdjacencyMap, getAdjacencyMap, getShortestPaths } from 'xstate/graph';
import { jobMachine } from '../../machines/job.machine.js';
import type { JobMachineInput, JobSettings, PreparedJob, VerifiedJob } from '../../machines/job.types.js';
import { WorkerError } from '../../src/errors.js';
import { ScriptedClock } from '../support/scripted-clock.js';

type Snapshot = SnapshotFrom<typeof jobMachine>;
type MachineEvent = Parameters<typeof jobMachine.transition>[1];

// Every named delay gets a distinct value so the clock can tell the timers apart.
const SETTINGS: JobSettings = {
  jobTimeoutMs: 9_000_001,
  readyTimeoutMs: 900_002,
  readyPollIntervalMs: 203,
  readyLogEvery: 3,
  routeRecoveryAttempts: 2,
  routeRecoveryDelayMs: 5_004,
  modelRegistryWaitMs: 3_005,
  progressIntervalMs: 0,
};
const DELAYS: Record<string, number> = {
  jobDeadline: SETTINGS.jobTimeoutMs,
  readinessDeadline: SETTINGS.readyTimeoutMs,
  readinessPoll: SETTINGS.readyPollIntervalMs,
  recoveryDelay: SETTINGS.routeRecoveryDelayMs,
  registryWait: SETTINGS.modelRegistryWaitMs,
};
const INPUT: JobMachineInput = { jobId: 'graph-job', input: { prompt: 'p' }, settings: SETTINGS };

const prepared: PreparedJob = {
  operation: 'POST /sdapi/v1/txt2img',
  request: { prompt: 'p' },
  imageUrls: 0,
  verify: true,
  checkpoint: null,
  model: null,
  notes: [],
};
const withUrls: PreparedJob = { ...prepared, operation: 'POST /sdapi/v1/img2img', imageUrls: 2 };
const unverified: PreparedJob = { ...prepared, operation: 'GET /sdapi/v1/samplers', request: {}, verify: false };
const verified: VerifiedJob = { request: { prompt: 'p' }, notes: [], downloaded: false };
const model = { title: 'model.safetensors', model_name: 'model', filename: '/model.safetensors' };
const routeMissing = new WorkerError('BACKEND_ROUTE_MISSING', 'routes are not mounted');

const EVENTS = [
  { type: 'xstate.done.actor.validateInput', output: prepared },
  { type: 'xstate.done.actor.validateInput', output: withUrls },
  { type: 'xstate.done.actor.validateInput', output: unverified },
  { type: 'xstate.error.actor.validateInput', error: new WorkerError('INVALID_INPUT', 'steps = 0') },
  { type: 'xstate.done.actor.fetchImages', output: { ...withUrls, imageUrls: 0 } },
  { type: 'xstate.error.actor.fetchImages', error: new WorkerError('IMAGE_FETCH_FAILED', 'HTTP 404') },
  { type: 'xstate.done.actor.probeApi', output: [model] },
  { type: 'xstate.error.actor.probeApi', error: new WorkerError('BACKEND_UNAVAILABLE', 'refused') },
  { type: 'xstate.error.actor.probeApi', error: new WorkerError('BACKEND_REJECTED', 'Not authenticated') },
  { type: 'xstate.done.actor.verifyModels', output: verified },
  { type: 'xstate.done.actor.verifyModels', output: { ...verified, downloaded: true } },
  { type: 'xstate.error.actor.verifyModels', error: routeMissing },
  { type: 'xstate.error.actor.verifyModels', error: new WorkerError('MODEL_NOT_FOUND', 'no such checkpoint') },
  { type: 'xstate.done.actor.refreshCheckpoints' },
  { type: 'xstate.error.actor.refreshCheckpoints', error: new WorkerError('BACKEND_ERROR', 'refresh failed') },
  { type: 'xstate.done.actor.healthCheck', output: [model] },
  { type: 'xstate.error.actor.healthCheck', error: new WorkerError('BACKEND_UNAVAILABLE', 'refused') },
  { type: 'xstate.done.actor.checkRoute' },
  { type: 'xstate.error.actor.checkRoute', error: routeMissing },
  { type: 'xstate.done.actor.callA1111', output: { images: ['iVBOR'], parameters: {}, info: '{}' } },
  { type: 'xstate.error.actor.callA1111', error: routeMissing },
  { type: 'xstate.error.actor.callA1111', error: new WorkerError('BACKEND_REJECTED', 'Sampler not found') },
  { type: 'xstate.error.actor.callA1111', error: new WorkerError('BACKEND_TIMEOUT', 'no answer in 600000 ms') },
  {
    type: 'xstate.done.actor.deliverResult',
    output: { response: { images: ['https://bucket/x.png'] }, uploads: [], notes: ['uploaded'] },
  },
  { type: 'xstate.error.actor.deliverResult', error: new WorkerError('UPLOAD_FAILED', 'NoSuchBucket') },
  { type: 'xstate.done.actor.interruptBackend', output: { interrupt: 'sent', settled: true } },
  { type: 'xstate.error.actor.interruptBackend', error: new WorkerError('BACKEND_UNAVAILABLE', 'refused') },
  { type: 'a1111.progress', update: { progress: 0.5, etaSeconds: 1, step: 10, steps: 20, jobNo: 0, jobCount: 1 } },
  { type: 'job.cancel', reason: 'test' },
  { type: 'xstate.after.jobDeadline.job' },
  { type: 'xstate.after.readinessDeadline.job.waitingForApi' },
  { type: 'xstate.after.readinessPoll.job.waitingForApi.pausing' },
  { type: 'xstate.after.registryWait.job.postDownloadStabilizing.settling' },
  { type: 'xstate.after.recoveryDelay.job.recovering' },
] as unknown as MachineEvent[];

function serialize(snapshot: Snapshot): string {
  const c = snapshot.context;
  return `${JSON.stringify(snapshot.value)} r${c.recoveryAttempts} d${c.downloadDone} ${c.job?.verify === false ? 'n' : 'v'} ${c.failure?.code ?? '-'} ${snapshot.status}`;
}

const traversal = {
  input: INPUT,
  events: EVENTS,
  serializeState: serialize,
  filterEvents: (snapshot: Snapshot, event: MachineEvent) =>
    snapshot.status === 'active' && jobMachine.getTransitionData(snapshot, event).length > 0,
};

// xstate/graph is typed for machines without emitted events; the traversal itself is unaffected.
const graphLogic = jobMachine as unknown as AnyStateMachine;
const adjacency = getAdjacencyMap(graphLogic, traversal as never) as unknown as AdjacencyMap<Snapshot, MachineEvent>;
const shortest = new Map(
  getShortestPaths(graphLogic, traversal as never).map((path) => [serialize(path.state as Snapshot), path]),
);
const edges = Object.values(adjacency).flatMap((vertex) =>
  (Object.values(vertex.transitions) as { event: MachineEvent; state: Snapshot }[]).map((edge) => ({
    from: vertex.state,
    event: edge.event,
    to: edge.state,
  })),
);

function allStateNodes(node: AnyStateNode = jobMachine.root): AnyStateNode[] {
  return [node, ...Object.values(node.states).flatMap((child) => allStateNodes(child))];
}

function transitionKey(source: AnyStateNode, eventType: string, index: number): string {
  return `${source.id} on ${eventType || '(always)'} #${index}`;
}

/** Every transition the machine defines, including eventless ones. */
function definedTransitions(): string[] {
  return allStateNodes().flatMap((node) => [
    ...[...node.transitions.entries()].flatMap(([eventType, list]) =>
      list.map((_, index) => transitionKey(node, eventType, index)),
    ),
    ...(node.always ?? []).map((_, index) => transitionKey(node, '', index)),
  ]);
}

function takenKey(transition: { source: AnyStateNode; eventType: string }): string {
  const list: readonly unknown[] =
    transition.eventType === ''
      ? (transition.source.always ?? [])
      : (transition.source.transitions.get(transition.eventType) ?? []);
  return transitionKey(transition.source, transition.eventType, list.indexOf(transition));
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Runs a sequence of events on a live actor whose actors resolve exactly when the path says so. */
async function drive(events: AnyEventObject[], taken: Set<string>): Promise<Snapshot[]> {
  const clock = new ScriptedClock();
  const pending = new Map<string, { resolve: (value: unknown) => void; reject: (error: unknown) => void }>();
  const scripted = <T, I>() =>
    fromPromise<T, I>(
      ({ self }) =>
        new Promise<T>((resolve, reject) => {
          pending.set(self.id, { resolve: resolve as (value: unknown) => void, reject });
        }),
    );
  const machine = jobMachine.provide({
    actors: {
      validateInput: scripted(),
      probeApi: scripted(),
      verifyModels: scripted(),
      refreshCheckpoints: scripted(),
      checkRoute: scripted(),
      fetchImages: scripted(),
      callA1111: scripted(),
      deliverResult: scripted(),
      interruptBackend: scripted(),
      watchProgress: fromCallback(() => () => undefined),
    },
  });
  const actor = createActor(machine, {
    input: INPUT,
    clock,
    inspect: (inspection) => {
      if (inspection.type === '@xstate.microstep' && inspection.actorRef.sessionId === inspection.rootId) {
        for (const t of inspection._transitions) taken.add(takenKey(t as never));
      }
    },
  });
  actor.subscribe({ error: (error) => expect.fail(`machine errored: ${String(error)}`) });
  actor.start();
  await settle();
  const seen: Snapshot[] = [];
  for (const event of events) {
    const done = /^xstate\.(done|error)\.actor\.(.+)$/.exec(event.type);
    const after = /^xstate\.after\.([^.]+)\./.exec(event.type);
    if (done) {
      const handle = pending.get(done[2]!);
      if (!handle) throw new Error(`actor ${done[2]} is not running before ${event.type}`);
      pending.delete(done[2]!);
      if (done[1] === 'done') handle.resolve(event['output']);
      else handle.reject(event['error']);
    } else if (after) {
      clock.fire(DELAYS[after[1]!]!);
    } else {
      actor.send(event as MachineEvent);
    }
    await settle();
    seen.push(actor.getSnapshot());
  }
  actor.stop();
  return seen;
}

describe('job machine, every edge of its state graph', () => {
  it('has the expected number of edges (update after covering a new transition)', () => {
    expect(edges.length).toBe(336);
  });

  it('rests in every state it defines, except the eventless decision points it only passes through', () => {
    const reached = new Set(
      edges.flatMap(({ from, to }) => [...from._nodes, ...to._nodes].map((node: AnyStateNode) => node.id)),
    );
    const unreached = allStateNodes().filter((node) => !reached.has(node.id));
    expect(unreached.map((node) => node.id)).toEqual(['job.ready.routing']);
    expect(unreached.every((node) => (node.always ?? []).length > 0)).toBe(true);
  });

  it('takes every transition the machine defines when each edge is driven on a live actor', async () => {
    const taken = new Set<string>();
    for (const edge of edges) {
      const prefix = shortest.get(serialize(edge.from));
      if (!prefix) throw new Error(`no path to ${serialize(edge.from)}`);
      const events = [...prefix.steps.map((step) => step.event), edge.event].filter((e) => e.type !== 'xstate.init');
      const seen = await drive(events as AnyEventObject[], taken);
      expect(serialize(seen.at(-1)!), `after ${events.map((e) => e.type).join(' → ')}`).toBe(serialize(edge.to));
    }
    expect(definedTransitions().filter((key) => !taken.has(key))).toEqual([]);
  });
});
