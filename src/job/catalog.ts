/**
 * The worker's cache of A1111's sampler, scheduler and option lists, shared by every job for the
 * worker's life. A name missing from the cache causes one refetch before it is refused (see
 * verify.ts), so a WebUI that gained a sampler is not refused.
 */

import type { A1111Client } from '../a1111/client.js';
import type { Sampler, Scheduler } from '../a1111/schemas.js';
import { stopWaitingOnAbort } from '../abort.js';

export interface CatalogData {
  samplers: Sampler[];
  schedulers: Scheduler[] | null;
  optionKeys: Set<string>;
}

/** Per-worker cache of A1111's sampler, scheduler and option lists. */
export class A1111Catalog {
  private data: Promise<CatalogData> | null = null;
  private fetchedAt = 0;

  constructor(
    private readonly client: A1111Client,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The cached lists, loading them when needed. The load is shared by every job that asks meanwhile, so
   * it is not tied to any one job: a job that is cancelled stops waiting, the load goes on for the others.
   */
  get(signal?: AbortSignal): Promise<CatalogData> {
    if (!this.data) {
      const loading = this.load();
      this.data = loading;
      // A failed load is not cached: the next job asks again.
      loading.catch(() => {
        if (this.data === loading) this.data = null;
      });
    }
    return stopWaitingOnAbort(this.data, signal, 'the job stopped waiting');
  }

  /** Refetches unless the cache was filled in the last second (several misses in one job share one fetch). */
  refresh(signal?: AbortSignal): Promise<CatalogData> {
    if (this.data && this.now() - this.fetchedAt < 1_000) return this.get(signal);
    this.data = null;
    return this.get(signal);
  }

  /** The keys that are no A1111 option, after one refetch if any looked unknown. */
  async unknownOptions(keys: readonly string[], signal?: AbortSignal): Promise<string[]> {
    const cached = await this.get(signal);
    const unknown = keys.filter((key) => !cached.optionKeys.has(key));
    if (unknown.length === 0) return unknown;
    const fresh = await this.refresh(signal);
    return unknown.filter((key) => !fresh.optionKeys.has(key));
  }

  private async load(): Promise<CatalogData> {
    const [samplers, schedulers, options] = await Promise.all([
      this.client.listSamplers(),
      this.client.listSchedulers(),
      this.client.getOptions(),
    ]);
    this.fetchedAt = this.now();
    return { samplers, schedulers, optionKeys: new Set(Object.keys(options)) };
  }
}
