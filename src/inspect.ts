/**
 * The Stately inspector, opt-in (STATELY_INSPECT): every job machine's events and states go to the
 * inspector UI (stately.ai/inspect) through a WebSocket bridge.
 *
 * - `serve`: the worker starts the bridge itself on STATELY_INSPECT_PORT; open http://localhost:<port>
 *   in a browser that can reach stately.ai.
 * - a ws:// URL: the worker connects to a bridge that runs elsewhere.
 *
 * Contract: the inspector never slows a job and never keeps the process alive. The package is loaded
 * only when asked for; what it is sent is sanitized (no base64 payloads, no secrets), and it buffers
 * at most 200 events while it cannot connect; the entry point exits explicitly when it is on, because
 * the package keeps reconnecting to an unreachable bridge forever.
 */
import type { InspectionEvent } from 'xstate';
import type { Config } from './config/index.js';
import { errorFields } from './errors.js';
import { summarizePayloads } from './journal/payloads.js';
import type { Logger } from './log/index.js';

export interface StatelyInspector {
  inspect(event: InspectionEvent): void;
  close(): void;
}

const CHEAP = { hash: false };

/** A snapshot as the inspector may see it: no payloads in its context, input or output. */
function sanitizeSnapshot(snapshot: unknown): unknown {
  const s = snapshot as {
    status?: unknown;
    value?: unknown;
    context?: unknown;
    input?: unknown;
    output?: unknown;
    error?: unknown;
  };
  return {
    status: s.status,
    value: s.value,
    context: summarizePayloads(s.context, CHEAP),
    ...(s.input === undefined ? {} : { input: summarizePayloads(s.input, CHEAP) }),
    output: summarizePayloads(s.output, CHEAP),
    error: summarizePayloads(s.error, CHEAP),
  };
}

/**
 * An actor as the inspector may see it: it reads a new actor's snapshot, and a promise actor's holds its
 * input (`delivering`'s is A1111's answer).
 */
function sanitizedActor<T extends { getSnapshot(): unknown }>(actorRef: T): T {
  return new Proxy(actorRef, {
    get: (target, key, receiver) =>
      key === 'getSnapshot' ? () => sanitizeSnapshot(target.getSnapshot()) : Reflect.get(target, key, receiver),
  });
}

/**
 * Strips payloads before the inspector sees an event: it serializes every snapshot it is given, and a
 * job's context holds A1111's response (tens of MB of base64) once generation is done.
 */
export function sanitizeInspection(event: InspectionEvent): InspectionEvent {
  switch (event.type) {
    case '@xstate.snapshot':
    case '@xstate.microstep':
      return {
        ...event,
        event: summarizePayloads(event.event, CHEAP),
        snapshot: sanitizeSnapshot(event.snapshot),
      } as InspectionEvent;
    case '@xstate.event':
      return { ...event, event: summarizePayloads(event.event, CHEAP) } as InspectionEvent;
    case '@xstate.actor':
      return { ...event, actorRef: sanitizedActor(event.actorRef) } as InspectionEvent;
    default:
      return event;
  }
}

/**
 * Starts the inspector the settings ask for; undefined when it is off or cannot be loaded.
 *
 * @example
 * const inspector = await startStatelyInspector(config, log);
 * const runner = createJobRunner({ config, log, client, ...(inspector ? { inspect: inspector.inspect } : {}) });
 */
export async function startStatelyInspector(config: Config, log: Logger): Promise<StatelyInspector | undefined> {
  const target = config.observability.inspect;
  if (!target) return undefined;
  try {
    const { createWebSocketInspector } = await import('@statelyai/inspect');
    let server: { stop(): void } | undefined;
    let url = target;
    if (target === 'serve') {
      const { createInspectorServer } = await import('@statelyai/inspect/server');
      server = createInspectorServer({ port: config.observability.inspectPort, autoOpen: false });
      url = `ws://127.0.0.1:${config.observability.inspectPort}`;
      log.info(
        `Stately inspector bridge on http://localhost:${config.observability.inspectPort}: open it in a browser that can reach stately.ai`,
      );
    }
    const inspector = createWebSocketInspector({ url, maxDeferredEvents: 200 });
    log.info('sending job machines to the Stately inspector', { url });
    return {
      inspect: (event) => {
        try {
          inspector.inspect.next?.(sanitizeInspection(event));
        } catch (error) {
          log.debug('inspector dropped an event', errorFields(error));
        }
      },
      close: () => {
        inspector.stop();
        server?.stop();
      },
    };
  } catch (error) {
    log.warn('the Stately inspector could not be started; going on without it', errorFields(error));
    return undefined;
  }
}
