/**
 * Logging: winston, one line per event, in one of three shapes.
 *
 * - `json`: `{"timestamp","level","message","jobId",...fields}`, for log collectors.
 * - `runpod`: `{"requestId","message","level"}` (RunPod's own worker log shape) so the RunPod console
 *   groups lines by job; structured fields are appended to the message as `key=value`.
 * - `text`: a readable line for a terminal.
 *
 * Whatever the shape, a sanitizer runs first: base64 payloads are replaced by their length, secrets by
 * `***`, and messages longer than 4096 characters lose their middle, so no image or token reaches a log.
 */
import type { Writable } from 'node:stream';
import winston from 'winston';
import type { Config, ObservabilitySettings } from './config/index.js';

export type Logger = winston.Logger;
export type LogLevel = ObservabilitySettings['logLevel'];
export type LogFormat = Exclude<ObservabilitySettings['logFormat'], 'auto'>;

const LEVELS = { error: 0, warn: 1, info: 2, debug: 3 } as const;
const RUNPOD_LEVEL: Record<string, string> = { error: 'ERROR', warn: 'WARN', info: 'INFO', debug: 'DEBUG' };

const SECRET_KEY = /(token|secret|password|passwd|authorization|api[-_]?key|credential)/i;
const BASE64_RUN = /^(data:[\w/+.-]+;base64,)?[A-Za-z0-9+/\r\n]{200,}={0,2}$/;
const MAX_MESSAGE = 4096;
const RESERVED = new Set(['level', 'message', 'timestamp', 'jobId']);

/** Replaces base64 payloads and secrets anywhere in a log value. Exported for the journal writer. */
export function sanitizeForLog(value: unknown, key = '', depth = 0): unknown {
  if (key && SECRET_KEY.test(key) && value !== undefined && value !== null && value !== '') return '***';
  if (typeof value === 'string') {
    if (looksLikeBase64(value)) return `<base64 ${value.length} chars>`;
    return value.length > MAX_MESSAGE ? truncateMiddle(value) : value;
  }
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => sanitizeForLog(item, '', depth + 1));
  if (value instanceof Error) return { name: value.name, message: value.message };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = sanitizeForLog(v, k, depth + 1);
  return out;
}

/** A run of 200+ base64 characters without a space: an image or a blob, never prose. */
function looksLikeBase64(text: string): boolean {
  return text.length >= 200 && BASE64_RUN.test(text);
}

function truncateMiddle(text: string): string {
  const keep = MAX_MESSAGE / 2;
  return `${text.slice(0, keep)}\n...TRUNCATED ${text.length - MAX_MESSAGE} CHARACTERS...\n${text.slice(-keep)}`;
}

const sanitize = winston.format((info) => {
  for (const key of Object.keys(info)) {
    if (key === 'level') continue;
    if (key === 'message') {
      const message = String(info.message);
      info.message = looksLikeBase64(message) ? `<base64 ${message.length} chars>` : message;
      continue;
    }
    info[key] = sanitizeForLog(info[key], key);
  }
  return info;
});

/** The message as written: at most 4096 characters, the middle cut out of longer ones. */
function limited(message: unknown): string {
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

const jsonLine = winston.format.printf((info) =>
  JSON.stringify({
    timestamp: loggedAt(info).toISOString(),
    level: info.level,
    message: limited(info.message),
    ...(info['jobId'] !== undefined ? { jobId: info['jobId'] } : {}),
    ...fieldsOf(info),
  }),
);

const runpodLine = winston.format.printf((info) => {
  const pairs = renderPairs(fieldsOf(info));
  const message = pairs ? `${String(info.message)} | ${pairs}` : String(info.message);
  return JSON.stringify({
    requestId: info['jobId'] ?? null,
    message: limited(message),
    level: RUNPOD_LEVEL[info.level] ?? info.level.toUpperCase(),
  });
});

const textLine = winston.format.printf((info) => {
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

/** Where batched lines end up: standard output, or anything with its `write`. */
export interface LineSink {
  write(text: string): unknown;
}

/** A line queued before it is formatted: the call's fields, and the format that turns them into text. */
interface UnformattedLine {
  info: winston.Logform.TransformableInfo;
  format: winston.Logform.Format;
}

/**
 * Standard output for log lines, written once per turn of the event loop: the lines a job logs between
 * two of its steps (a transition, its result) are formatted and go out together once the turn's work is
 * done, so neither formatting nor a write call stands between a job's steps; their order is kept. A
 * line's fields are read when it is formatted: an object logged and then changed in the same turn is
 * written as it is at the end of the turn (the worker logs values and fresh objects).
 * Warnings and errors go out at once (`writeNow`, after the lines pending before them), so a process
 * killed outright has written its last words; whatever else is pending when the process exits
 * (`process.exit`, the end of the event loop, an uncaught error) is written then.
 */
export class TurnBatchedOutput {
  private pending: UnformattedLine[] = [];
  private scheduled = false;

  constructor(private readonly sink: LineSink = process.stdout) {
    process.once('exit', () => this.flush());
  }

  /** Queues a line to be formatted and written at the end of this turn. */
  defer(info: winston.Logform.TransformableInfo, format: winston.Logform.Format): void {
    this.add(info, format);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Writes a line now, after the lines pending. */
  writeNow(info: winston.Logform.TransformableInfo, format: winston.Logform.Format): void {
    this.add(info, format);
    this.flush();
  }

  /** Formats and writes what is pending now. */
  flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const lines = this.pending;
    this.pending = [];
    let text = '';
    for (const line of lines) text += formatLine(line.info, line.format);
    this.sink.write(text);
  }

  /** A line's time is the time it was logged, whenever it is formatted. */
  private add(info: winston.Logform.TransformableInfo, format: winston.Logform.Format): void {
    info[LOGGED_AT] = Date.now();
    this.pending.push({ info, format });
  }
}

/** The formatted line winston hands its transports (triple-beam's MESSAGE). */
const MESSAGE = Symbol.for('message');
/** When a deferred line was logged (ms since the epoch); its timestamp says this, not when it was formatted. */
const LOGGED_AT = Symbol('loggedAt');

function loggedAt(info: winston.Logform.TransformableInfo): Date {
  const at = info[LOGGED_AT];
  return new Date(typeof at === 'number' ? at : Date.now());
}

/** The level of a line as winston's formats read it (triple-beam's LEVEL). */
const LEVEL = Symbol.for('level');

/**
 * One line of text for `info`, newline included. A line the format cannot render (a field JSON cannot
 * encode, say) becomes an error line in the same shape saying so: formatting happens away from the
 * call, where throwing would take the process down.
 */
function formatLine(info: winston.Logform.TransformableInfo, format: winston.Logform.Format): string {
  const render = (line: winston.Logform.TransformableInfo) => {
    const out = format.transform(line, format.options);
    return out ? `${String((out as winston.Logform.TransformableInfo)[MESSAGE])}\n` : '';
  };
  try {
    return render(info);
  } catch (error) {
    // Only strings are left to render; they cannot fail the same way.
    return render({
      level: 'error',
      [LEVEL]: 'error',
      [LOGGED_AT]: info[LOGGED_AT],
      message: `a log line could not be written: ${error instanceof Error ? error.message : String(error)}`,
      ...(typeof info['jobId'] === 'string' ? { jobId: info['jobId'] } : {}),
      lostMessage: sanitizeForLog(limited(info.message), 'message'),
    });
  }
}

let standardOutput: TurnBatchedOutput | undefined;

function sharedStandardOutput(): TurnBatchedOutput {
  standardOutput ??= new TurnBatchedOutput();
  return standardOutput;
}

/** Writes the log lines still pending, before something else writes to standard output itself. */
export function flushLogOutput(): void {
  standardOutput?.flush();
}

export interface LoggerOptions {
  level: LogLevel;
  format: LogFormat;
  /** Where lines go; standard output (in batches, see TurnBatchedOutput) when omitted (RunPod collects a worker's stdout). */
  stream?: Writable;
}

/**
 * Creates the worker's root logger; per-job loggers are `logger.child({ jobId })`.
 *
 * @example
 * const log = createLogger({ level: 'info', format: 'runpod' });
 * log.child({ jobId: 'abc-u1' }).info('transition', { from: 'booting', to: 'waitingForApi' });
 * // {"requestId":"abc-u1","message":"transition | from=booting to=waitingForApi","level":"INFO"}
 */
export function createLogger(options: LoggerOptions): Logger {
  const line = options.format === 'runpod' ? runpodLine : options.format === 'text' ? textLine : jsonLine;
  const format = winston.format.combine(sanitize(), line);
  const logger = winston.createLogger({
    levels: LEVELS,
    level: options.level,
    format,
    transports: options.stream ? [new winston.transports.Stream({ stream: options.stream })] : [],
    exitOnError: false,
  });
  // winston formats every line before its transport looks at the level, so a debug line costs as much as
  // any other at level info: lines of a level not logged stop here. Child loggers write through this.
  const enabled = (info: winston.Logform.TransformableInfo) =>
    (LEVELS[info.level as LogLevel] ?? 0) <= LEVELS[logger.level as LogLevel];
  if (options.stream) {
    const write = logger.write.bind(logger);
    logger.write = (info: winston.Logform.TransformableInfo) => (enabled(info) ? write(info) : true);
    return logger;
  }
  // Standard output: the line is formatted with the turn's batch (one batch for every logger of the
  // process, so lines from all of them keep their order), not through winston's streams on the caller's
  // way; warnings and errors are formatted and written at once.
  const output = sharedStandardOutput();
  logger.write = (info: winston.Logform.TransformableInfo) => {
    if (!enabled(info)) return true;
    if (info.level === 'warn' || info.level === 'error') output.writeNow(info, format);
    else output.defer(info, format);
    return true;
  };
  return logger;
}

/** Creates the logger the settings ask for. */
export function createLoggerFromConfig(config: Config, stream?: Writable): Logger {
  return createLogger({
    level: config.observability.logLevel,
    format: resolveLogFormat(config.observability.logFormat, config.runpod.endpointId),
    ...(stream ? { stream } : {}),
  });
}
