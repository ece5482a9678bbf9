/**
 * One checkpoint download, from its URL into the models directory.
 *
 * Contract:
 * - the file is streamed to a hidden temporary file beside its final place (temp-files.ts), its size
 *   cap and sha256 checked while it streams, and renamed into place only when complete and correct: no
 *   partial file ever carries the final name, and a failed download leaves nothing behind;
 * - free disk space is checked first; the whole download has a deadline;
 * - URLs follow the URL guard on every hop (src/net/); Hugging Face and Civitai tokens come from the
 *   environment and are sent only to their own hosts, and only over https;
 * - a job that gives a sha256 gets a file with that sha256, whether it was downloaded or already on
 *   disk (a wrong file on disk is left alone and named in the error);
 * - progress goes to the log at most every 5 s and to `onProgress` at most every 250 ms.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rename, stat, statfs, unlink } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ModelSettings } from '../config/index.js';
import { isWorkerError, WorkerError } from '../errors.js';
import type { Logger } from '../log/index.js';
import { GuardedGetError, guardedGet } from '../net/guarded-get.js';
import { hostAllowed, safeUrl, type UrlPolicy, UrlRefusal } from '../net/url-guard.js';
import { failed, mismatch } from './download-failure.js';
import type { ModelSource } from './model-source.js';
import { streamToFile } from './stream-to-file.js';
import { removeStaleTemporaryFiles, temporaryPath } from './temp-files.js';

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

const IDLE_TIMEOUT_MS = 60_000;

const HF_HOSTS = ['huggingface.co', '*.huggingface.co', 'hf.co', '*.hf.co'];
const CIVITAI_HOSTS = ['civitai.com', '*.civitai.com'];

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

/** The URL guard as model downloads apply it. */
function policyOf(settings: ModelSettings): UrlPolicy {
  return {
    allowedHosts: settings.allowedHosts,
    privateAllow: settings.privateAllow,
    settingNames: { hosts: 'MODEL_DOWNLOAD_HOSTS', privateAllow: 'MODEL_DOWNLOAD_PRIVATE_ALLOW' },
  };
}

/** Follows redirects, vetting every hop; resolves with the 200 response. */
async function open(source: URL, settings: ModelSettings, log: Logger, signal: AbortSignal): Promise<IncomingMessage> {
  try {
    return await guardedGet(source, {
      policy: policyOf(settings),
      signal,
      idleTimeoutMs: IDLE_TIMEOUT_MS,
      headersFor: (url): Record<string, string> => {
        const token = tokenFor(url, source, settings);
        return token ? { Authorization: `Bearer ${token}` } : {};
      },
      onRedirect: (to) => log.debug('download redirected', { to: safeUrl(to) }),
    });
  } catch (error) {
    if (error instanceof UrlRefusal) {
      const verb = error.reason === 'refused' ? 'refused' : 'failed';
      return Promise.reject(
        new WorkerError('MODEL_DOWNLOAD_FAILED', `model download ${verb}: ${error.message}`, {
          details: { reason: error.reason, ...error.details },
          ...(error.cause === undefined ? {} : { cause: error.cause }),
        }),
      );
    }
    if (error instanceof GuardedGetError) throw failed('status', error.message, error.details);
    throw error;
  }
}

/** Downloads one checkpoint into the models directory; ModelDownloader shares it between jobs. */
export class CheckpointDownload {
  constructor(
    private readonly settings: ModelSettings,
    private readonly log: Logger,
  ) {}

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

  /** Downloads `model.checkpoint` into `dir` (MODELS_DIR unless another network's folder is given). */
  async download(
    model: ModelSource & { url: string },
    signal: AbortSignal,
    onProgress: (progress: DownloadProgress) => void,
    dir: string = this.settings.dir,
  ): Promise<DownloadResult> {
    const finalPath = path.join(dir, model.checkpoint);
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
    await removeStaleTemporaryFiles(dir, this.log);
    const source = new URL(model.url);
    await this.checkFreeSpace(0, source, dir);
    const deadline = AbortSignal.timeout(this.settings.timeoutMs);
    const combined = AbortSignal.any([signal, deadline]);
    const temp = temporaryPath(dir, model.checkpoint);
    const started = Date.now();
    this.log.info('downloading checkpoint', { file: model.checkpoint, from: safeUrl(source) });
    try {
      const response = await open(source, this.settings, this.log, combined);
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
      if (totalBytes !== null) await this.checkFreeSpace(totalBytes, source, dir);
      const { bytes, sha256 } = await streamToFile(response, temp, {
        file: model.checkpoint,
        totalBytes,
        maxBytes: this.settings.maxBytes,
        signal: combined,
        onProgress,
        log: this.log,
      });
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

  private classify(error: unknown, model: ModelSource, source: URL, deadline: AbortSignal): WorkerError {
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

  private async checkFreeSpace(bytes: number, source: URL, dir: string): Promise<void> {
    let free: number;
    try {
      const info = await statfs(dir);
      free = info.bavail * info.bsize;
    } catch (error) {
      throw failed('disk', `the models directory ${dir} is not usable`, { url: safeUrl(source) }, error);
    }
    const needed = bytes + this.settings.minFreeBytes;
    if (free < needed) {
      throw failed('disk', `${free} bytes free in ${dir}, ${needed} needed`, {
        freeBytes: free,
        neededBytes: needed,
      });
    }
  }
}
