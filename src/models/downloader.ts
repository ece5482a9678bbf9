/**
 * Downloads checkpoints into A1111's models directory, safely.
 *
 * Contract:
 * - the file is streamed to a hidden temporary file beside its final place (`.name.<host>~<uuid>.download`,
 *   which A1111's scanner ignores), its size cap and sha256 checked while it streams, and renamed into
 *   place only when complete and correct: no partial file ever carries the final name, and a failed
 *   download leaves nothing behind. Temporary files carry the name of the host that wrote them: at
 *   start-up a worker removes its own host's at once (whatever wrote them died with the previous
 *   process), and, at start-up and before each download, any other whose file nothing has written to
 *   for STALE_AFTER_MS (a live download that long without data has already given up, so a download
 *   another worker is making on a shared volume is never touched);
 * - free disk space is checked first; the whole download has a deadline;
 * - URLs follow the policy in url-policy.ts on every hop; Hugging Face and Civitai tokens come from the
 *   environment and are sent only to their own hosts, and only over https;
 * - a job that gives a sha256 gets a file with that sha256, whether it was downloaded or already on
 *   disk (a wrong file on disk is left alone and named in the error);
 * - two jobs asking for the same file share one download when they expect the same contents (the
 *   same sha256, or without one the same URL); different sha256s from one URL download separately, so
 *   one job's wrong sha256 fails only that job, and a job that wants the file from another URL while
 *   it downloads fails `conflict` instead of overwriting it. A download is abandoned only when every job
 *   that waits for it has gone, and a job arriving after that starts a fresh one;
 * - progress goes to the log at most every 5 s and to each waiting job's progress callback.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { readdir, rename, stat, statfs, unlink } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { hostname } from 'node:os';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ModelSettings } from '../config/index.js';
import { errorFields, isWorkerError, WorkerError } from '../errors.js';
import type { Logger } from '../log.js';
import { hostAllowed, safeUrl, type VettedTarget, vetTarget } from './url-policy.js';

export interface ModelRequest {
  checkpoint: string;
  url?: string;
  sha256?: string;
}

export interface DownloadProgress {
  file: string;
  bytes: number;
  totalBytes: number | null;
  bytesPerSecond: number;
}

export interface DownloadResult {
  path: string;
  bytes: number;
  /** True when the file was already on disk and nothing was downloaded. */
  reused: boolean;
  /** The file's SHA-256 in lowercase hex, when it was computed (always for downloads). */
  sha256?: string;
}

interface SharedDownload {
  checkpoint: string;
  url: string;
  promise: Promise<DownloadResult>;
  controller: AbortController;
  waiters: number;
  listeners: Set<(progress: DownloadProgress) => void>;
}

const MAX_REDIRECTS = 5;
const IDLE_TIMEOUT_MS = 60_000;
const LOG_EVERY_MS = 5_000;
const TEMP_SUFFIX = '.download';
/** A temporary file untouched this long belongs to no live download (those give up after IDLE_TIMEOUT_MS). */
export const STALE_AFTER_MS = 10 * 60_000;
/** This host, as it appears in temporary file names: `.<file>.<host>~<uuid>.download`. */
export const HOST_TAG =
  hostname()
    .replace(/[^A-Za-z0-9-]/g, '-')
    .slice(0, 63) || 'host';
const TEMP_NAME = /\.([A-Za-z0-9-]+)~[0-9a-f-]{36}\.download$/;

const HF_HOSTS = ['huggingface.co', '*.huggingface.co', 'hf.co', '*.hf.co'];
const CIVITAI_HOSTS = ['civitai.com', '*.civitai.com'];

function failed(reason: string, message: string, details: Record<string, unknown>, cause?: unknown): WorkerError {
  return new WorkerError('MODEL_DOWNLOAD_FAILED', `model download failed: ${message}`, {
    details: { reason, ...details },
    ...(cause === undefined ? {} : { cause }),
  });
}

function mismatch(file: string, expected: string, actual: string, onDisk: boolean): WorkerError {
  return failed(
    'checksum',
    onDisk
      ? `${file} is already in MODELS_DIR with sha256 ${actual}, not the expected ${expected}; it was left alone (remove it, or correct model.sha256)`
      : `${file} has sha256 ${actual}, not the expected ${expected}`,
    { file, expected, actual, onDisk },
  );
}

/**
 * The token a request to `url` carries, if any: the Hugging Face or Civitai token, only to that
 * service's own hosts, only over https, and never on a redirect that left the host the job named.
 */
export function tokenFor(
  url: URL,
  source: URL,
  settings: Pick<ModelSettings, 'hfToken' | 'civitaiToken'>,
): string | undefined {
  if (url.host !== source.host || url.protocol !== 'https:') return undefined;
  if (settings.hfToken && hostAllowed(url.hostname, HF_HOSTS)) return settings.hfToken;
  if (settings.civitaiToken && hostAllowed(url.hostname, CIVITAI_HOSTS)) return settings.civitaiToken;
  return undefined;
}

export class ModelDownloader {
  private readonly inFlight = new Map<string, SharedDownload>();

  constructor(
    private readonly settings: ModelSettings,
    private readonly log: Logger,
  ) {}

  /**
   * Removes temporary files killed downloads left behind: with `atStartUp`, every one this host wrote
   * (nothing of this process is downloading yet); always, those nothing has written to for
   * STALE_AFTER_MS. Returns their names.
   */
  async removeStaleTemporaryFiles(options: { atStartUp?: boolean; now?: number } = {}): Promise<string[]> {
    const now = options.now ?? Date.now();
    let names: string[];
    try {
      names = await readdir(this.settings.dir);
    } catch {
      return [];
    }
    const candidates = names.filter((name) => name.startsWith('.') && name.endsWith(TEMP_SUFFIX));
    const removed: string[] = [];
    await Promise.all(
      candidates.map(async (name) => {
        const file = path.join(this.settings.dir, name);
        const info = await stat(file).catch(() => null);
        if (!info?.isFile()) return;
        const ours = options.atStartUp === true && TEMP_NAME.exec(name)?.[1] === HOST_TAG;
        if (!ours && now - info.mtimeMs < STALE_AFTER_MS) return;
        await unlink(file).then(
          () => removed.push(name),
          () => undefined,
        );
      }),
    );
    if (removed.length > 0) this.log.info('removed stale partial downloads', { files: removed.sort() });
    return removed;
  }

  /**
   * Makes `model.checkpoint` exist in the models directory, downloading it from `model.url` unless it is
   * already there. Several callers of the same file share one download.
   */
  fetch(
    model: ModelRequest & { url: string },
    options: { signal?: AbortSignal; onProgress?: (progress: DownloadProgress) => void } = {},
  ): Promise<DownloadResult> {
    // Jobs share a download when they expect the same contents: the same sha256, or without one the
    // same URL. A job's wrong sha256 must not fail the others, so different sha256s download apart.
    const sha256 = model.sha256?.toLowerCase();
    const key = `${model.checkpoint}\n${sha256 ? `sha256:${sha256}` : `url:${model.url}`}`;
    if (options.signal?.aborted) {
      return Promise.reject(new WorkerError('CANCELLED', 'the job stopped waiting for its model download'));
    }
    let shared = this.inFlight.get(key);
    const rival = [...this.inFlight.values()].find((d) => d.checkpoint === model.checkpoint && d.url !== model.url);
    if (!shared && rival) {
      // Two sources for one file name: whichever finished last would be the file both jobs generate with.
      return Promise.reject(
        failed(
          'conflict',
          `another job is downloading ${model.checkpoint} from ${safeUrl(new URL(rival.url))}; retry once it is done, or give this file another name`,
          { file: model.checkpoint, url: safeUrl(new URL(model.url)), otherUrl: safeUrl(new URL(rival.url)) },
        ),
      );
    }
    if (!shared) {
      const controller = new AbortController();
      const listeners = new Set<(progress: DownloadProgress) => void>();
      const created: SharedDownload = {
        checkpoint: model.checkpoint,
        url: model.url,
        controller,
        listeners,
        waiters: 0,
        promise: this.fetchOnce(model, controller.signal, (progress) => {
          for (const listener of listeners) listener(progress);
        }).finally(() => this.forget(key, created)),
      };
      // Every waiter may have gone by the time it settles: its outcome then matters to nobody.
      created.promise.catch(() => undefined);
      shared = created;
      this.inFlight.set(key, created);
    } else {
      this.log.info('joining a download another job started', { file: model.checkpoint });
    }
    const download = shared;
    download.waiters++;
    if (options.onProgress) download.listeners.add(options.onProgress);
    const leave = () => {
      if (options.onProgress) download.listeners.delete(options.onProgress);
      download.waiters--;
      if (download.waiters === 0) {
        download.controller.abort(new Error('every job waiting for this download has gone'));
        // A job that asks for this file from now on starts afresh instead of joining a dying download.
        this.forget(key, download);
      }
    };
    return new Promise<DownloadResult>((resolve, reject) => {
      const onAbort = () => {
        leave();
        reject(new WorkerError('CANCELLED', 'the job stopped waiting for its model download'));
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => {
        options.signal?.removeEventListener('abort', onAbort);
        if (options.onProgress) download.listeners.delete(options.onProgress);
      };
      download.promise.finally(done).then(resolve, reject);
    });
  }

  private forget(key: string, download: SharedDownload): void {
    if (this.inFlight.get(key) === download) this.inFlight.delete(key);
  }

  private async hashFile(file: string, checkpoint: string, signal?: AbortSignal): Promise<string> {
    const started = Date.now();
    const hash = createHash('sha256');
    await pipeline(createReadStream(file), hash, ...(signal ? [{ signal }] : []));
    const sha256 = hash.digest('hex');
    this.log.info('checked the sha256 of a checkpoint already on disk', {
      file: checkpoint,
      sha256,
      seconds: Math.round((Date.now() - started) / 100) / 10,
    });
    return sha256;
  }

  private async fetchOnce(
    model: ModelRequest & { url: string },
    signal: AbortSignal,
    onProgress: (progress: DownloadProgress) => void,
  ): Promise<DownloadResult> {
    const finalPath = path.join(this.settings.dir, model.checkpoint);
    const existing = await stat(finalPath).catch(() => null);
    if (existing?.isFile()) {
      this.log.info('the checkpoint is already on disk; not downloading it', { file: model.checkpoint });
      const reused: DownloadResult = { path: finalPath, bytes: existing.size, reused: true };
      if (!model.sha256) return reused;
      const sha256 = await this.hashFile(finalPath, model.checkpoint, signal);
      if (sha256 !== model.sha256.toLowerCase())
        throw mismatch(model.checkpoint, model.sha256.toLowerCase(), sha256, true);
      return { ...reused, sha256 };
    }
    await this.removeStaleTemporaryFiles();
    const source = new URL(model.url);
    await this.checkFreeSpace(0, source);
    const deadline = AbortSignal.timeout(this.settings.timeoutMs);
    const combined = AbortSignal.any([signal, deadline]);
    // At most 1 + 140 + 1 + 63 + 1 + 36 + 9 bytes: within the 255-byte limit of a file name.
    const temp = path.join(
      this.settings.dir,
      `.${model.checkpoint.slice(0, 140)}.${HOST_TAG}~${randomUUID()}${TEMP_SUFFIX}`,
    );
    const started = Date.now();
    this.log.info('downloading checkpoint', { file: model.checkpoint, from: safeUrl(source) });
    try {
      const response = await this.open(source, combined);
      const length = Number(response.headers['content-length']);
      const totalBytes = Number.isFinite(length) && length > 0 ? length : null;
      if (totalBytes !== null && totalBytes > this.settings.maxBytes) {
        response.destroy();
        throw failed(
          'size',
          `${model.checkpoint} is ${totalBytes} bytes, over MODEL_DOWNLOAD_MAX_BYTES (${this.settings.maxBytes})`,
          {
            file: model.checkpoint,
            bytes: totalBytes,
            maxBytes: this.settings.maxBytes,
          },
        );
      }
      if (totalBytes !== null) await this.checkFreeSpace(totalBytes, source);
      const { bytes, sha256 } = await this.stream(response, temp, model.checkpoint, totalBytes, combined, onProgress);
      if (totalBytes !== null && bytes !== totalBytes) {
        throw failed('network', `the connection ended after ${bytes} of ${totalBytes} bytes`, {
          file: model.checkpoint,
          bytes,
          totalBytes,
        });
      }
      if (model.sha256 && sha256 !== model.sha256.toLowerCase()) {
        throw mismatch(model.checkpoint, model.sha256.toLowerCase(), sha256, false);
      }
      await rename(temp, finalPath);
      const seconds = Math.max(0.001, (Date.now() - started) / 1000);
      this.log.info('checkpoint downloaded', {
        file: model.checkpoint,
        bytes,
        sha256,
        seconds: Math.round(seconds * 10) / 10,
        megabytesPerSecond: Math.round((bytes / seconds / 1e6) * 10) / 10,
      });
      return { path: finalPath, bytes, reused: false, sha256 };
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw this.classify(error, model, source, deadline);
    }
  }

  private classify(error: unknown, model: ModelRequest, source: URL, deadline: AbortSignal): WorkerError {
    if (isWorkerError(error)) return error as WorkerError;
    const code = (error as { code?: string }).code;
    if (deadline.aborted) {
      return failed(
        'timeout',
        `${model.checkpoint} did not finish within MODEL_DOWNLOAD_TIMEOUT_MS (${this.settings.timeoutMs} ms)`,
        {
          file: model.checkpoint,
          url: safeUrl(source),
        },
      );
    }
    if (code === 'ENOSPC')
      return failed('disk', `the disk filled up while writing ${model.checkpoint}`, { file: model.checkpoint }, error);
    if (code === 'ABORT_ERR' || (error as Error).name === 'AbortError') {
      return new WorkerError('CANCELLED', `the download of ${model.checkpoint} was abandoned`);
    }
    return failed(
      'network',
      `${safeUrl(source)}: ${(error as Error).message ?? String(error)}`,
      { file: model.checkpoint, url: safeUrl(source), code },
      error,
    );
  }

  private async checkFreeSpace(bytes: number, source: URL): Promise<void> {
    let free: number;
    try {
      const info = await statfs(this.settings.dir);
      free = info.bavail * info.bsize;
    } catch (error) {
      throw failed('disk', `the models directory ${this.settings.dir} is not usable`, { url: safeUrl(source) }, error);
    }
    const needed = bytes + this.settings.minFreeBytes;
    if (free < needed) {
      throw failed('disk', `${free} bytes free in ${this.settings.dir}, ${needed} needed`, {
        freeBytes: free,
        neededBytes: needed,
      });
    }
  }

  /** Follows redirects, vetting every hop; resolves with the 200 response. */
  private async open(source: URL, signal: AbortSignal): Promise<IncomingMessage> {
    let url = source;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const target = await vetTarget(url, this.settings, { checkAllowlist: hop === 0 });
      const response = await this.request(target, source, signal);
      const status = response.statusCode ?? 0;
      if (status >= 300 && status < 400 && response.headers.location) {
        response.resume();
        url = new URL(response.headers.location, url);
        this.log.debug('download redirected', { to: safeUrl(url) });
        continue;
      }
      if (status !== 200) {
        response.resume();
        throw failed('status', `${safeUrl(url)} answered ${status}`, { url: safeUrl(url), status });
      }
      return response;
    }
    throw failed('status', `more than ${MAX_REDIRECTS} redirects from ${safeUrl(source)}`, { url: safeUrl(source) });
  }

  private request(target: VettedTarget, source: URL, signal: AbortSignal): Promise<IncomingMessage> {
    // Connections go only to the addresses that were vetted: no second lookup that could rebind.
    const pinned: LookupFunction = (_hostname, options, callback) => {
      const first = target.addresses[0]!;
      if ((options as { all?: boolean }).all) {
        (callback as (err: null, addresses: { address: string; family: number }[]) => void)(null, target.addresses);
      } else callback(null, first.address, first.family);
    };
    const headers: Record<string, string> = { 'User-Agent': 'runpod-a1111-worker' };
    const token = tokenFor(target.url, source, this.settings);
    if (token) headers['Authorization'] = `Bearer ${token}`;
    const client = target.url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const request = client.get(target.url, { headers, lookup: pinned, signal, timeout: IDLE_TIMEOUT_MS }, resolve);
      request.on('timeout', () => request.destroy(new Error(`no data for ${IDLE_TIMEOUT_MS} ms`)));
      request.on('error', reject);
    });
  }

  private async stream(
    response: IncomingMessage,
    temp: string,
    file: string,
    totalBytes: number | null,
    signal: AbortSignal,
    onProgress: (progress: DownloadProgress) => void,
  ): Promise<{ bytes: number; sha256: string }> {
    const hash = createHash('sha256');
    const maxBytes = this.settings.maxBytes;
    const started = Date.now();
    let bytes = 0;
    let lastLog = started;
    let lastProgress = 0;
    const log = this.log;
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
}
