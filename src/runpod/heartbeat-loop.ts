/**
 * The heartbeat loop: GET the ping URL every interval with the ids of the jobs in progress.
 *
 * Contract: pings keep their cadence whatever the job loop is doing. The loop runs in a worker thread
 * (see heartbeat.ts), so parsing and posting a 25 MB result on the main thread cannot delay it, and it
 * keeps a fixed schedule: a slow ping does not push the next one back, and at most three pings are in
 * flight at once (each times out after two intervals), so a stalled control plane cannot pile them up.
 */
import http from 'node:http';
import https from 'node:https';
import { withQuery } from './urls.js';

export interface HeartbeatOptions {
  /** The ping URL with the worker id substituted, without the query the loop adds. */
  url: string;
  intervalMs: number;
  apiKey: string;
  version: string;
  userAgent: string;
}

/** Messages from the loop to its owner. */
export type HeartbeatReport =
  | { type: 'sent'; status: number; jobIds: string[]; startedAt: number }
  | { type: 'failed'; error: string; startedAt: number };

export interface HeartbeatLoop {
  stop(): void;
}

const MAX_ID_BYTES = 65_536;

/**
 * The ids of the jobs in progress, shared between the job loop and the heartbeat thread without
 * messages: a length and up to 64 KiB of comma-separated ids (cut at a comma when longer, as RunPod's
 * runtime does), in a SharedArrayBuffer.
 */
export class SharedJobIds {
  readonly buffer: SharedArrayBuffer;
  /** [sequence, length]: the sequence is odd while a write is under way (a seqlock). */
  private readonly header: Int32Array;
  private readonly bytes: Uint8Array;

  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(8 + MAX_ID_BYTES);
    this.header = new Int32Array(this.buffer, 0, 2);
    this.bytes = new Uint8Array(this.buffer, 8);
  }

  /** Only one thread writes (the main thread). */
  write(ids: readonly string[]): void {
    let encoded = Buffer.from(ids.join(','));
    // Too many ids for the buffer: as many whole ones as fit (none, if even the first is too long).
    if (encoded.length > MAX_ID_BYTES)
      encoded = encoded.subarray(0, Math.max(0, encoded.lastIndexOf(0x2c, MAX_ID_BYTES)));
    Atomics.add(this.header, 0, 1);
    try {
      this.bytes.set(encoded);
      Atomics.store(this.header, 1, encoded.length);
    } finally {
      // Never left odd: the reader would wait for this write forever.
      Atomics.add(this.header, 0, 1);
    }
  }

  /** A whole list as one write left it, never a mix of two (retried while a write is under way). */
  read(): string[] {
    for (;;) {
      const before = Atomics.load(this.header, 0);
      if (before % 2 === 0) {
        const length = Atomics.load(this.header, 1);
        const text = Buffer.from(this.bytes.subarray(0, length)).toString();
        if (Atomics.load(this.header, 0) === before) return length === 0 ? [] : text.split(',');
      }
    }
  }
}

function ping(url: string, options: HeartbeatOptions): Promise<number> {
  const client = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const request = client.get(
      url,
      {
        headers: { Authorization: options.apiKey, 'User-Agent': options.userAgent },
        timeout: options.intervalMs * 2,
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      },
    );
    request.on('timeout', () => request.destroy(new Error(`no answer within ${options.intervalMs * 2} ms`)));
    request.on('error', reject);
  });
}

export function startHeartbeatLoop(
  options: HeartbeatOptions,
  jobIds: SharedJobIds,
  report: (message: HeartbeatReport) => void,
): HeartbeatLoop {
  let inFlight = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const startedAt = Date.now();
  let tick = 0;

  const beat = () => {
    if (stopped) return;
    if (inFlight < 3) {
      inFlight++;
      const ids = jobIds.read();
      const sentAt = Date.now();
      const url = withQuery(options.url, {
        job_id: ids.length > 0 ? ids.join(',') : undefined,
        runpod_version: options.version,
      });
      ping(url, options)
        .then((status) => report({ type: 'sent', status, jobIds: ids, startedAt: sentAt }))
        .catch((error: unknown) =>
          report({ type: 'failed', error: error instanceof Error ? error.message : String(error), startedAt: sentAt }),
        )
        .finally(() => {
          inFlight--;
        });
    }
    tick++;
    timer = setTimeout(beat, Math.max(0, startedAt + tick * options.intervalMs - Date.now()));
  };
  beat();

  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
