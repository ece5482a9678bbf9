/**
 * Logging: winston, one line per event, in one of three shapes (line-formats.ts), every value
 * sanitized first (sanitize.ts), standard output written once per turn of the event loop
 * (turn-batched-output.ts).
 */
import type { Writable } from 'node:stream';
import winston from 'winston';
import type { Config, ObservabilitySettings } from '../config/index.js';
import { jsonLine, type LogFormat, resolveLogFormat, runpodLine, textLine } from './line-formats.js';
import { sanitize } from './sanitize.js';
import { sharedStandardOutput } from './turn-batched-output.js';

export type { LogFormat } from './line-formats.js';
export { sanitizeForLog } from './sanitize.js';
export { flushLogOutput, TurnBatchedOutput } from './turn-batched-output.js';

export type Logger = winston.Logger;
export type LogLevel = ObservabilitySettings['logLevel'];

const LEVELS = { error: 0, warn: 1, info: 2, debug: 3 } as const;

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
