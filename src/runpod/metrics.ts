/**
 * Counters and duration percentiles of the jobs a worker ran: logged as a summary every minute while
 * busy and at shutdown, and reported by the local API's /health.
 */
import type { HandlerOutcome, WarmUpResult } from './handler.js';

const WINDOW = 1_000;

export interface DurationSummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface MetricsSnapshot {
  /** The warm-up before the first job-take: its time, and whether it succeeded (absent when none ran). */
  warmup?: { ms: number; ok: boolean };
  jobs: { taken: number; succeeded: number; failed: number; inProgress: number };
  failedByCode: Record<string, number>;
  recoveries: number;
  /** Per phase, over the last 1000 jobs. */
  durationsMs: Record<string, DurationSummary>;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return Math.round(sorted[Math.max(0, index)]! * 10) / 10;
}

export class WorkerMetrics {
  private taken = 0;
  private succeeded = 0;
  private failed = 0;
  private recoveries = 0;
  private readonly failedByCode: Record<string, number> = {};
  private readonly durations = new Map<string, number[]>();
  /** Jobs finished since the last periodic summary. */
  finishedSinceSummary = 0;
  private warmup: { ms: number; ok: boolean } | undefined;

  warmedUp(result: WarmUpResult): void {
    if (result.ran) this.warmup = { ms: Math.round(result.ms), ok: result.ok };
  }

  jobTaken(): void {
    this.taken++;
  }

  jobFinished(outcome: HandlerOutcome): void {
    this.finishedSinceSummary++;
    this.recoveries += outcome.stats.recoveries;
    if (outcome.ok) this.succeeded++;
    else {
      this.failed++;
      this.failedByCode[outcome.failure.code] = (this.failedByCode[outcome.failure.code] ?? 0) + 1;
    }
    for (const [phase, ms] of Object.entries(outcome.stats.timingsMs)) {
      if (typeof ms !== 'number') continue;
      const list = this.durations.get(phase) ?? [];
      list.push(ms);
      if (list.length > WINDOW) list.shift();
      this.durations.set(phase, list);
    }
  }

  snapshot(inProgress: number): MetricsSnapshot {
    const durationsMs: Record<string, DurationSummary> = {};
    for (const [phase, list] of this.durations) {
      const sorted = [...list].sort((a, b) => a - b);
      durationsMs[phase] = {
        count: sorted.length,
        p50: percentile(sorted, 50),
        p90: percentile(sorted, 90),
        p99: percentile(sorted, 99),
        max: percentile(sorted, 100),
      };
    }
    return {
      ...(this.warmup ? { warmup: { ...this.warmup } } : {}),
      jobs: { taken: this.taken, succeeded: this.succeeded, failed: this.failed, inProgress },
      failedByCode: { ...this.failedByCode },
      recoveries: this.recoveries,
      durationsMs,
    };
  }
}

/** Memory and open resources of this process, for the metrics line (leaks show up here first). */
export function processFigures(): Record<string, unknown> {
  const resources: Record<string, number> = {};
  for (const name of process.getActiveResourcesInfo()) resources[name] = (resources[name] ?? 0) + 1;
  const memory = process.memoryUsage();
  return {
    rssBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    heapTotalBytes: memory.heapTotal,
    externalBytes: memory.external,
    activeResources: resources,
  };
}
