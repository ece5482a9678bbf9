/**
 * Model downloads (checkpoints, and the LoRAs and VAEs a job names, each into its own folder) shared
 * between jobs (the download itself is fetch-to-disk.ts).
 *
 * Contract: two jobs asking for the same file share one download when they expect the same contents
 * (the same sha256, or without one the same URL); different sha256s from one URL download separately,
 * so one job's wrong sha256 fails only that job, and a job that wants the file from another URL while
 * it downloads fails `conflict` instead of overwriting it. A download is abandoned only when every job
 * that waits for it has gone, and a job arriving after that starts a fresh one.
 */
import { stopWaitingOnAbort } from '../abort.js';
import type { ModelSettings } from '../config/index.js';
import { WorkerError } from '../errors.js';
import type { Logger } from '../log/index.js';
import { safeUrl } from '../net/url-guard.js';
import { failed } from './download-failure.js';
import { CheckpointDownload, type DownloadProgress, type DownloadResult } from './fetch-to-disk.js';
import type { ModelSource } from './model-source.js';
import { removeStaleTemporaryFiles } from './temp-files.js';

export type { DownloadProgress, DownloadResult } from './fetch-to-disk.js';

interface SharedDownload {
  dir: string;
  checkpoint: string;
  url: string;
  promise: Promise<DownloadResult>;
  controller: AbortController;
  waiters: number;
  listeners: Set<(progress: DownloadProgress) => void>;
}

const LEFT = 'the job stopped waiting for its model download';

/** What a download is: a checkpoint, a LoRA, a VAE, an embedding or a ControlNet model, each going to A1111's folder for it. */
export type ModelKind = 'checkpoint' | 'lora' | 'vae' | 'embedding' | 'controlnet';

export class ModelDownloader {
  private readonly inFlight = new Map<string, SharedDownload>();
  private readonly disk: CheckpointDownload;

  constructor(
    private readonly settings: ModelSettings,
    private readonly log: Logger,
  ) {
    this.disk = new CheckpointDownload(settings, log);
  }

  /** The folder a kind of model goes to: MODELS_DIR, LORA_DIR, VAE_DIR, EMBEDDINGS_DIR or CONTROLNET_DIR. */
  folder(kind: ModelKind): string {
    const folders = {
      checkpoint: this.settings.dir,
      lora: this.settings.loraDir,
      vae: this.settings.vaeDir,
      embedding: this.settings.embeddingsDir,
      controlnet: this.settings.controlnetDir,
    };
    return folders[kind];
  }

  /** Removes the temporary files of downloads killed before they ended, in every model folder (see temp-files.ts). */
  async removeStaleTemporaryFiles(options: { atStartUp?: boolean; now?: number } = {}): Promise<string[]> {
    const kinds: ModelKind[] = ['checkpoint', 'lora', 'vae', 'embedding', 'controlnet'];
    const folders = [...new Set(kinds.map((kind) => this.folder(kind)))];
    const removed = await Promise.all(folders.map((dir) => removeStaleTemporaryFiles(dir, this.log, options)));
    return removed.flat();
  }

  /**
   * Makes `model.checkpoint` exist in the models directory, downloading it from `model.url` unless it is
   * already there. Several callers of the same file share one download.
   */
  fetch(
    model: ModelSource & { url: string },
    options: { signal?: AbortSignal; onProgress?: (progress: DownloadProgress) => void; kind?: ModelKind } = {},
  ): Promise<DownloadResult> {
    const dir = this.folder(options.kind ?? 'checkpoint');
    // Jobs share a download when they expect the same contents: the same sha256, or without one the
    // same URL. A job's wrong sha256 must not fail the others, so different sha256s download apart.
    const sha256 = model.sha256?.toLowerCase();
    const key = `${dir}\n${model.checkpoint}\n${sha256 ? `sha256:${sha256}` : `url:${model.url}`}`;
    if (options.signal?.aborted) return Promise.reject(new WorkerError('CANCELLED', LEFT));
    let shared = this.inFlight.get(key);
    const rival = [...this.inFlight.values()].find(
      (d) => d.dir === dir && d.checkpoint === model.checkpoint && d.url !== model.url,
    );
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
        dir,
        checkpoint: model.checkpoint,
        url: model.url,
        controller,
        listeners,
        waiters: 0,
        promise: this.disk
          .download(
            model,
            controller.signal,
            (progress) => {
              for (const listener of listeners) listener(progress);
            },
            dir,
          )
          .finally(() => this.forget(key, created)),
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
    const waited = download.promise.finally(() => {
      if (options.onProgress) download.listeners.delete(options.onProgress);
    });
    return stopWaitingOnAbort(waited, options.signal, LEFT, leave);
  }

  private forget(key: string, download: SharedDownload): void {
    if (this.inFlight.get(key) === download) this.inFlight.delete(key);
  }
}
