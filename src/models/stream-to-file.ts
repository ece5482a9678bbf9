/**
 * Writes a download's body to its temporary file, counting and hashing it on the way: past the size
 * cap it stops with a `size` failure, a full disk or another write error is a `disk` failure, a body
 * cut short a `network` failure. Progress goes to `onProgress` at most every 250 ms and to the log at
 * most every 5 s.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorFields, isWorkerError } from '../errors.js';
import type { Logger } from '../log/index.js';
import { failed } from './download-failure.js';
import type { DownloadProgress } from './fetch-to-disk.js';

const LOG_EVERY_MS = 5_000;

export async function streamToFile(
  response: IncomingMessage,
  temp: string,
  options: {
    file: string;
    totalBytes: number | null;
    maxBytes: number;
    signal: AbortSignal;
    onProgress: (progress: DownloadProgress) => void;
    log: Logger;
  },
): Promise<{ bytes: number; sha256: string }> {
  const { file, totalBytes, maxBytes, signal, onProgress, log } = options;
  const hash = createHash('sha256');
  const started = Date.now();
  let bytes = 0;
  let lastLog = started;
  let lastProgress = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      if (bytes > maxBytes) {
        callback(
          failed('size', `${file} is larger than MODEL_DOWNLOAD_MAX_BYTES (${maxBytes})`, { file, maxBytes, bytes }),
        );
        return;
      }
      hash.update(chunk);
      const now = Date.now();
      const bytesPerSecond = Math.round(bytes / Math.max(0.001, (now - started) / 1000));
      if (now - lastProgress >= 250) {
        lastProgress = now;
        onProgress({ file, bytes, totalBytes, bytesPerSecond });
      }
      if (now - lastLog >= LOG_EVERY_MS) {
        lastLog = now;
        log.info('downloading checkpoint', {
          file,
          bytes,
          totalBytes,
          percent: totalBytes ? Math.round((bytes / totalBytes) * 1000) / 10 : null,
          megabytesPerSecond: Math.round(bytesPerSecond / 1e5) / 10,
        });
      }
      callback(null, chunk);
    },
  });
  const out = createWriteStream(temp, { flags: 'wx' });
  let writeError: NodeJS.ErrnoException | null = null;
  // Only the file system's own failures (they name a syscall): a deadline or a cancel also ends the
  // write stream with an error, and that is not the disk's doing.
  out.on('error', (error: NodeJS.ErrnoException) => {
    if (error.syscall !== undefined) writeError ??= error;
  });
  try {
    await pipeline(response, meter, out, { signal });
  } catch (error) {
    log.debug('download stream ended early', { file, bytes, ...errorFields(error) });
    if (isWorkerError(error)) throw error;
    const diskError = writeError as NodeJS.ErrnoException | null;
    if (diskError && diskError.code !== 'ENOSPC' && !signal.aborted) {
      throw failed(
        'disk',
        `cannot write ${file} to MODELS_DIR: ${diskError.code ?? ''} ${diskError.message}`.replace(/\s+/g, ' '),
        { file, code: diskError.code ?? null },
        diskError,
      );
    }
    if (bytes > 0 && !signal.aborted && !diskError && (error as { code?: string }).code !== 'ENOSPC') {
      throw failed('network', `the connection dropped after ${bytes}${totalBytes ? ` of ${totalBytes}` : ''} bytes`, {
        file,
        bytes,
        totalBytes,
      });
    }
    throw error;
  }
  onProgress({
    file,
    bytes,
    totalBytes,
    bytesPerSecond: Math.round(bytes / Math.max(0.001, (Date.now() - started) / 1000)),
  });
  return { bytes, sha256: hash.digest('hex') };
}
