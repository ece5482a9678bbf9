/**
 * Which A1111 operation a job asks for. A plain input is a txt2img request, as it always was. The
 * envelope of ashleykleynhans/runpod-worker-a1111 names any operation on the allow-list
 * (src/a1111/operations.ts):
 *
 *   {"api": {"method": "POST", "endpoint": "/sdapi/v1/img2img"}, "payload": {...}}
 *
 * The endpoint may come with or without its leading slash; the method in any case. Anything not on the
 * allow-list (server-kill, unknown paths, `..`, a method a route does not take) is refused
 * INVALID_INPUT naming the endpoint, before anything reaches A1111.
 */
import { findOperation, OPERATIONS, type Operation, TXT2IMG } from '../a1111/operations.js';
import { WorkerError } from '../errors.js';

export interface InputProblem {
  field: string;
  value: unknown;
  rule: string;
}

/** The operation a job asks for and its payload (the object A1111 is to get, before checks). */
export interface RequestedOperation {
  operation: Operation;
  payload: Record<string, unknown>;
  /** True when the job used the envelope. */
  enveloped: boolean;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Renders a value for a message: short, JSON, never a whole image. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (value === undefined) return 'undefined';
  const json = JSON.stringify(value) ?? String(value);
  return json.length > 80 ? `${json.slice(0, 80)}…` : json;
}

/** The refusal of an input: every broken rule, with the field, the value and the rule. */
export function invalidInput(problems: InputProblem[]): WorkerError {
  const summary = problems.map((p) => `${p.field} = ${describeValue(p.value)} breaks the rule "${p.rule}"`).join('; ');
  return new WorkerError('INVALID_INPUT', `invalid input: ${summary}`, {
    details: { problems: problems.map((p) => ({ ...p, value: p.value ?? null })) },
  });
}

const ENDPOINT_RULE = 'an endpoint of the allow-list, such as "/sdapi/v1/img2img" (see docs/operations.md)';

function endpointProblem(endpoint: string): string | null {
  if (endpoint.includes('..')) return 'it must not contain ".."';
  if (/[?#\\\s]/.test(endpoint)) return 'it must be a plain path, without a query, a fragment or spaces';
  return null;
}

/**
 * @example
 * readOperation({ api: { method: 'GET', endpoint: 'sdapi/v1/sd-models' }, payload: {} }).operation.name;
 * // 'sd-models'
 */
export function readOperation(input: Record<string, unknown>): RequestedOperation {
  if (!Object.hasOwn(input, 'api')) return { operation: TXT2IMG, payload: input, enveloped: false };
  const problems: InputProblem[] = [];
  for (const key of Object.keys(input)) {
    if (key !== 'api' && key !== 'payload') {
      problems.push({ field: key, value: input[key], rule: 'an envelope holds "api" and "payload" only' });
    }
  }
  const api = input['api'];
  if (!isPlainObject(api)) {
    throw invalidInput([
      { field: 'api', value: api, rule: 'an object {"method": "GET" or "POST", "endpoint": "/sdapi/v1/..."}' },
    ]);
  }
  for (const key of Object.keys(api)) {
    if (key !== 'method' && key !== 'endpoint')
      problems.push({ field: `api.${key}`, value: api[key], rule: 'one of method, endpoint' });
  }
  const method = api['method'];
  const endpoint = api['endpoint'];
  const verb = typeof method === 'string' && /^(get|post)$/i.test(method) ? method.toUpperCase() : undefined;
  if (!verb) problems.push({ field: 'api.method', value: method ?? null, rule: '"GET" or "POST"' });
  let operation: Operation | undefined;
  if (typeof endpoint !== 'string' || endpoint.trim() === '') {
    problems.push({ field: 'api.endpoint', value: endpoint ?? null, rule: ENDPOINT_RULE });
  } else {
    const bad = endpointProblem(endpoint);
    const path = `/${endpoint.replace(/^\/+/, '')}`;
    const routes = OPERATIONS.filter((candidate) => candidate.path === path);
    if (bad) problems.push({ field: 'api.endpoint', value: endpoint, rule: `${ENDPOINT_RULE} (${bad})` });
    else if (routes.length === 0) {
      problems.push({ field: 'api.endpoint', value: endpoint, rule: `${ENDPOINT_RULE}; ${path} is not on it` });
    } else if (verb) {
      operation = findOperation(verb, path);
      const methods = routes.map((candidate) => candidate.method).join(' or ');
      if (!operation) problems.push({ field: 'api.method', value: method, rule: `${methods} for ${path}` });
    }
  }
  const payload = input['payload'] ?? {};
  if (!isPlainObject(payload)) {
    problems.push({ field: 'payload', value: payload, rule: 'an object of the operation’s fields ({} for none)' });
  }
  if (problems.length > 0 || !operation) throw invalidInput(problems);
  return { operation, payload: payload as Record<string, unknown>, enveloped: true };
}
