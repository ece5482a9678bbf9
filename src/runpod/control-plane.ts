/**
 * HTTP to RunPod's control plane: job-take (single and batch), job-done, stream posts and the stop
 * channel, with the headers RunPod's own runtime sends (a raw `Authorization`, `X-Request-ID` per
 * request, the job-done body as JSON under a form content type).
 *
 * Statuses are interpreted here, retries are not (the job loop decides how long to wait), except for
 * job-done, whose contract is "posted exactly once from the worker's side": it is retried on 5xx and
 * network errors with backoff, and a result whose retries all fail is reported to the caller.
 *
 * The long-polls go through axios. Results and progress go straight to node:http (body-post.ts) on the
 * same keep-alive agents: a result is A1111's answer passed on as bytes, and axios's request pipeline
 * cost about 0.35 ms per megabyte-sized post, a sixth of the worker's latency budget (docs/performance.md).
 */
import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import axios, { type AxiosInstance, type AxiosResponse, isAxiosError } from 'axios';
import { USER_AGENT } from '../version.js';
import { openBodyPost } from './body-post.js';
import type { RunPodJob } from './handler.js';
import type { RunPodUrls } from './urls.js';

/** RunPod answered 429: wait before asking again. */
export class ThrottledError extends Error {
  override readonly name = 'ThrottledError';
}

/** RunPod answered with a status the protocol does not expect. */
export class ControlPlaneError extends Error {
  override readonly name = 'ControlPlaneError';
  constructor(
    readonly status: number,
    readonly body: string,
    message: string,
  ) {
    super(message);
  }
}

/** A job-take item without an id or without an input: logged, and answered when it has an id. */
export interface MalformedJob {
  id: string | undefined;
  raw: unknown;
  reason: string;
}

export interface TakenJobs {
  jobs: RunPodJob[];
  malformed: MalformedJob[];
  /** The long-poll ran out of time without an answer: no jobs, and nothing wrong (ask again at once). */
  timedOut?: boolean;
}

export interface ControlPlaneOptions {
  urls: RunPodUrls;
  apiKey: string | undefined;
  /** How long a job-take or stop long-poll may stay open (RunPod's runtime uses 90 s). */
  longPollTimeoutMs: number;
}

export interface PostOptions {
  retries: number;
  retryDelayMs: number;
  /** One attempt's timeout; 600 s (RunPod's runtime) by default. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface PostOutcome {
  ok: boolean;
  attempts: number;
  status?: number;
  error?: string;
}

/** A job-done post whose body is still being written (`ControlPlane.openJobDone`). */
export interface OpenPost {
  write(bytes: Buffer): void;
  /** Writes the rest of the body, ends it, and resolves with RunPod's answer (one attempt, no retries). */
  end(rest: readonly Buffer[]): Promise<PostOutcome>;
  /** Drops the post: the connection is closed with the body unfinished. */
  abort(reason: string): void;
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // node:http errors carry the reason in `code` (ECONNRESET …), axios errors too (ECONNABORTED …).
  const code = isAxiosError(error) ? error.code : (error as NodeJS.ErrnoException).code;
  return code && !error.message.includes(code) ? `${code} ${error.message}` : error.message;
}

function classifyItem(item: unknown): {
  job?: RunPodJob;
  problem?: MalformedJob;
} {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    return { problem: { id: undefined, raw: item, reason: 'the job is not an object' } };
  }
  const record = item as Record<string, unknown>;
  const id = typeof record['id'] === 'string' && record['id'] !== '' ? record['id'] : undefined;
  if (!id) return { problem: { id: undefined, raw: item, reason: 'the job has no id' } };
  if (!('input' in record)) return { problem: { id, raw: item, reason: 'the job has no input' } };
  return { job: { ...record, id, input: record['input'] } as RunPodJob };
}

export class ControlPlane {
  private readonly http: AxiosInstance;
  private readonly httpAgent = new http.Agent({ keepAlive: true });
  private readonly httpsAgent = new https.Agent({ keepAlive: true });
  private readonly agents = { http: this.httpAgent, https: this.httpsAgent };

  constructor(private readonly options: ControlPlaneOptions) {
    this.http = axios.create({
      httpAgent: this.httpAgent,
      httpsAgent: this.httpsAgent,
      validateStatus: () => true,
      // Straight to RunPod, as the results posted through node:http go: an HTTP(S)_PROXY set for the
      // WebUI's downloads must not split the worker's control traffic across two routes.
      proxy: false,
      // No redirects: following them would make axios keep a copy of every request body to replay.
      maxRedirects: 0,
      responseType: 'text',
      transformResponse: [(data: unknown) => data],
      maxBodyLength: -1,
      maxContentLength: -1,
      headers: {
        'User-Agent': USER_AGENT,
        'Accept-Encoding': 'gzip, deflate',
        ...(options.apiKey ? { Authorization: options.apiKey } : {}),
      },
    });
  }

  /**
   * One job-take long-poll for up to `count` jobs. Resolves with the jobs (none on 204, 400 and empty
   * or non-JSON answers); rejects with ThrottledError on 429 and ControlPlaneError on other statuses.
   */
  async takeJobs(count: number, jobInProgress: boolean, signal?: AbortSignal): Promise<TakenJobs> {
    const url = this.options.urls.jobTake(count, jobInProgress);
    const none: TakenJobs = { jobs: [], malformed: [] };
    const response = await this.longPoll(url, signal, { 'Content-Type': 'application/json' });
    if (!response) return { ...none, timedOut: true };
    if (response.status === 204 || response.status === 400) return none;
    if (response.status === 429) throw new ThrottledError('RunPod answered 429 Too Many Requests to job-take');
    if (response.status < 200 || response.status >= 300) {
      throw new ControlPlaneError(response.status, String(response.data ?? ''), `job-take answered ${response.status}`);
    }
    const text = String(response.data ?? '');
    if (text.trim() === '' || !/json/i.test(String(response.headers['content-type'] ?? ''))) return none;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return {
        jobs: [],
        malformed: [{ id: undefined, raw: text.slice(0, 500), reason: 'the job-take body is not JSON' }],
      };
    }
    const items = Array.isArray(parsed) ? parsed : [parsed];
    const taken: TakenJobs = { jobs: [], malformed: [] };
    for (const item of items) {
      const { job, problem } = classifyItem(item);
      if (job) taken.jobs.push(job);
      if (problem) taken.malformed.push(problem);
    }
    return taken;
  }

  /**
   * Posts a job's final result (or a progress update) to job-done. `body` is the JSON text, encoded
   * once by the caller. Retries on 5xx and network errors; 4xx is final.
   */
  async postJobDone(
    jobId: string,
    body: string | Buffer[],
    options: PostOptions & { isStream?: boolean },
  ): Promise<PostOutcome> {
    return this.post(this.options.urls.jobDone(jobId, options.isStream ?? false), jobId, body, options);
  }

  /**
   * Opens a job's final post and leaves its body to be written as it comes, with chunked transfer
   * encoding: a result streamed while A1111's answer still arrives. One attempt; `end` says how it went.
   */
  openJobDone(jobId: string, timeoutMs = 600_000): OpenPost {
    const post = openBodyPost(this.options.urls.jobDone(jobId, false), {
      headers: this.postHeaders(jobId),
      agents: this.agents,
      timeoutMs,
    });
    return {
      write: (bytes) => post.write(bytes),
      end: async (rest) => {
        try {
          const code = await post.finish(rest);
          const ok = code >= 200 && code < 300;
          // An answer that came before the body's end (a refusal) leaves nothing of it to send.
          if (!ok) post.destroy();
          return { ok, attempts: 1, status: code, ...(code >= 500 ? { error: `HTTP ${code}` } : {}) };
        } catch (error) {
          post.destroy();
          return { ok: false, attempts: 1, error: describe(error) };
        }
      },
      abort: (reason) => post.destroy(reason),
    };
  }

  private postHeaders(jobId: string, length?: number): http.OutgoingHttpHeaders {
    return {
      'User-Agent': USER_AGENT,
      // What RunPod's runtime sends: a JSON body under a form content type.
      'Content-Type': 'application/x-www-form-urlencoded',
      charset: 'utf-8',
      // A header holds printable ASCII only; an id with anything else goes percent-encoded.
      'X-Request-ID': /^[\x20-\x7e]*$/.test(jobId) ? jobId : encodeURIComponent(jobId),
      ...(length !== undefined ? { 'Content-Length': length } : {}),
      ...(this.options.apiKey ? { Authorization: this.options.apiKey } : {}),
    };
  }

  private async post(url: string, jobId: string, body: string | Buffer[], options: PostOptions): Promise<PostOutcome> {
    const parts = typeof body === 'string' ? [Buffer.from(body)] : body;
    const headers = this.postHeaders(
      jobId,
      parts.reduce((sum, part) => sum + part.length, 0),
    );
    let outcome: PostOutcome = { ok: false, attempts: 0 };
    for (let attempt = 1; attempt <= options.retries + 1; attempt++) {
      if (attempt > 1) await sleep(Math.min(options.retryDelayMs * 2 ** (attempt - 2), options.retryDelayMs * 10));
      try {
        const status = await openBodyPost(url, {
          headers,
          agents: this.agents,
          timeoutMs: options.timeoutMs ?? 600_000,
          signal: options.signal,
        }).finish(parts);
        outcome = { ok: status >= 200 && status < 300, attempts: attempt, status };
        if (outcome.ok || status < 500) return outcome;
        outcome.error = `HTTP ${status}`;
      } catch (error) {
        outcome = { ok: false, attempts: attempt, error: describe(error) };
        if (options.signal?.aborted) return outcome;
      }
    }
    return outcome;
  }

  /**
   * One long-poll GET; null when it outlasted its timeout without an answer, which is an empty answer,
   * as RunPod's own runtime treats it. (ETIMEDOUT, a connection that could not be made, is an error.)
   */
  private async longPoll(
    url: string,
    signal: AbortSignal | undefined,
    headers: Record<string, string> = {},
  ): Promise<AxiosResponse<string> | null> {
    try {
      return await this.http.get<string>(url, {
        timeout: this.options.longPollTimeoutMs,
        headers,
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      if (isAxiosError(error) && error.code === 'ECONNABORTED' && !signal?.aborted) return null;
      throw error;
    }
  }

  /** Whether the job-take URL has a stop channel to derive (`/job-take/` → `/job-stop/`). */
  get hasStopChannel(): boolean {
    return this.options.urls.jobStop() !== undefined;
  }

  /** One stop-channel long-poll: the ids of jobs RunPod wants stopped. */
  async pollStop(signal?: AbortSignal): Promise<string[]> {
    const url = this.options.urls.jobStop();
    if (!url) return [];
    const response = await this.longPoll(url, signal);
    if (!response) return [];
    if (response.status === 204) return [];
    if (response.status === 429) throw new ThrottledError('RunPod answered 429 Too Many Requests to job-stop');
    if (response.status < 200 || response.status >= 300) {
      throw new ControlPlaneError(response.status, String(response.data ?? ''), `job-stop answered ${response.status}`);
    }
    try {
      const parsed = JSON.parse(String(response.data ?? '')) as { jobsToStop?: unknown };
      return Array.isArray(parsed.jobsToStop)
        ? parsed.jobsToStop.filter((id): id is string => typeof id === 'string')
        : [];
    } catch {
      return [];
    }
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}
