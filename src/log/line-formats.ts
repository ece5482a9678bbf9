/**
 * The three shapes of a log line:
 *
 * - `json`: `{"timestamp","level","message","jobId",...fields}`, for log collectors.
 * - `runpod`: `{"requestId","message","level"}` (RunPod's own worker log shape) so the RunPod console
 *   groups lines by job; structured fields are appended to the message as `key=value`.
 * - `text`: a readable line for a terminal.
 */
import winston from 'winston';
import type { ObservabilitySettings } from '../config/index.js';
import { MAX_MESSAGE, truncateMiddle } from './sanitize.js';

export type LogFormat = Exclude<ObservabilitySettings['logFormat'], 'auto'>;

const RUNPOD_LEVEL: Record<string, string> = { error: 'ERROR', warn: 'WARN', info: 'INFO', debug: 'DEBUG' };
const RESERVED = new Set(['level', 'message', 'timestamp', 'jobId']);
/** When a deferred line was logged (ms since the epoch); its timestamp says this, not when it was formatted. */
export const LOGGED_AT = Symbol('loggedAt');

function loggedAt(info: winston.Logform.TransformableInfo): Date {
  const at = info[LOGGED_AT];
  return new Date(typeof at === 'number' ? at : Date.now());
}

/** The message as written: at most 4096 characters, the middle cut out of longer ones. */
export function limited(message: unknown): string {
  const text = String(message);
  return text.length > MAX_MESSAGE ? truncateMiddle(text) : text;
}

function fieldsOf(info: winston.Logform.TransformableInfo): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(info)) {
    if (!RESERVED.has(key) && value !== undefined) fields[key] = value;
  }
  return fields;
}

function renderPairs(fields: Record<string, unknown>): string {
  return Object.entries(fields)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ');
}

export const jsonLine = winston.format.printf((info) =>
  JSON.stringify({
    timestamp: loggedAt(info).toISOString(),
    level: info.level,
    message: limited(info.message),
    ...(info['jobId'] !== undefined ? { jobId: info['jobId'] } : {}),
    ...fieldsOf(info),
  }),
);

export const runpodLine = winston.format.printf((info) => {
  const pairs = renderPairs(fieldsOf(info));
  const message = pairs ? `${String(info.message)} | ${pairs}` : String(info.message);
  return JSON.stringify({
    requestId: info['jobId'] ?? null,
    message: limited(message),
    level: RUNPOD_LEVEL[info.level] ?? info.level.toUpperCase(),
  });
});

export const textLine = winston.format.printf((info) => {
  const pairs = renderPairs(fieldsOf(info));
  const job = info['jobId'] === undefined ? '' : ` ${String(info['jobId'])} |`;
  const level = (RUNPOD_LEVEL[info.level] ?? info.level).padEnd(5);
  return `${loggedAt(info).toISOString()} ${level}|${job} ${limited(info.message)}${pairs ? `  ${pairs}` : ''}`;
});

/** Picks the concrete shape for `auto`: RunPod's on RunPod, text in a terminal, JSON otherwise. */
export function resolveLogFormat(
  format: ObservabilitySettings['logFormat'],
  runpodEndpointId: string | undefined,
): LogFormat {
  if (format !== 'auto') return format;
  if (runpodEndpointId) return 'runpod';
  return process.stdout.isTTY ? 'text' : 'json';
}
