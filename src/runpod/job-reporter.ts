/**
 * Everything a job tells RunPod, in order: throttled progress posts while A1111 generates, and then
 * the final result, exactly once.
 *
 * Contract: progress posts of a job go out one at a time; once `finish` is called no progress post is
 * started, and the final post waits for one already on the wire. A late progress post therefore can
 * never overwrite the final state (the race of RunPod's Python runtime, runpod-python#250).
 *
 * The final result is the job's only copy, and RunPod waits for it: it is posted until RunPod takes it
 * or refuses it, however long RunPod fails or cannot be reached.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { errorFields } from '../errors.js';
import { restAfterPrefix } from '../json/prefix.js';
import type { Logger } from '../log/index.js';
import type { ControlPlane, OpenPost, PostOutcome } from './control-plane.js';
import type { JobFailureBody, ProgressOutput, ResultStream } from './handler.js';
import {
  encodeResult,
  failureBody,
  progressBody,
  type ResultBody,
  rejectedResultFailure,
  unencodableFailure,
} from './protocol.js';

/**
 * How long one progress or stream post may take; they are small, and the final post waits for them.
 * One on the wire is never cut short for the final post: RunPod may already have its body and would
 * apply it whenever it got to it, possibly after the final result.
 */
const PROGRESS_POST_TIMEOUT_MS = 10_000;
/** Refusals of the request rather than of its body: bad credentials, a job RunPod no longer has. */
const NOT_ABOUT_THE_RESULT = [401, 403, 404, 409, 410];

export interface ReporterOptions {
  /** Least time between two progress posts; 0 disables them. */
  progressIntervalMs: number;
  retries: number;
  retryDelayMs: number;
}

/** The final post opened before the outcome was known (`openResult`). */
interface StreamedResult {
  /** Everything written so far, in order, the body's opening included. */
  written: Buffer[];
  /** Written before the post was open (a progress post was still on the wire). */
  queued: Buffer[];
  post: OpenPost | null;
  opened: Promise<void>;
  dropped: string | null;
}

/** How every result body begins (protocol.ts puts `output` first). */
const OUTPUT_OPENING = '{"output":';

export class JobReporter {
  private chain: Promise<unknown> = Promise.resolve();
  private streamed: StreamedResult | null = null;
  /** Whether the final result went out on the post opened while it was written. */
  resultStreamed = false;
  private closed = false;
  private lastPostAt = Number.NEGATIVE_INFINITY;
  private pending: ProgressOutput | null = null;
  private timer: NodeJS.Timeout | undefined;
  private finished: Promise<PostOutcome> | null = null;
  /** Progress posts sent, for the log and the tests. */
  progressPosts = 0;
  /** Size of the final body, once `finish` was called. */
  resultBytes = 0;
  /** The INTERNAL failure posted instead of a result that could not be encoded; null otherwise. */
  encodingFailure: JobFailureBody | null = null;

  constructor(
    private readonly jobId: string,
    private readonly controlPlane: ControlPlane,
    private readonly options: ReporterOptions,
    private readonly log: Logger,
  ) {}

  /** Takes a progress reading; it is posted now, or later as the latest reading, or never once finished. */
  progress(update: ProgressOutput): void {
    if (this.closed || this.options.progressIntervalMs <= 0) return;
    this.pending = update;
    if (this.timer) return;
    const wait = Math.max(0, this.lastPostAt + this.options.progressIntervalMs - Date.now());
    this.timer = setTimeout(() => this.flushProgress(), wait);
  }

  private flushProgress(): void {
    this.timer = undefined;
    const update = this.pending;
    this.pending = null;
    if (this.closed || !update) return;
    this.lastPostAt = Date.now();
    this.chain = this.chain.then(async () => {
      if (this.closed) return;
      const post = { retries: 0, retryDelayMs: 0, timeoutMs: PROGRESS_POST_TIMEOUT_MS };
      const done = await this.controlPlane.postJobDone(this.jobId, progressBody(update), post);
      this.progressPosts++;
      if (!done.ok) this.log.debug('progress post failed', { status: done.status, error: done.error });
    });
  }

  /**
   * Opens the final post before the outcome is known: no progress post starts from now on, and the
   * post opens once one on the wire is done. `finish` ends it when its body begins with what was
   * written, and drops it otherwise. Only one per job: a second call gets a stream that writes nothing.
   */
  openResult(): ResultStream {
    if (this.streamed || this.finished) return { write: () => undefined, abort: () => undefined };
    this.closed = true;
    clearTimeout(this.timer);
    this.pending = null;
    const opening = Buffer.from(OUTPUT_OPENING);
    const state: StreamedResult = {
      written: [opening],
      queued: [opening],
      post: null,
      opened: Promise.resolve(),
      dropped: null,
    };
    state.opened = this.chain.then(() => {
      if (state.dropped) return;
      try {
        state.post = this.controlPlane.openJobDone(this.jobId);
      } catch (error) {
        // The result goes out the usual way.
        this.dropStream(
          state,
          `the post could not be opened: ${error instanceof Error ? error.message : String(error)}`,
        );
        return;
      }
      for (const bytes of state.queued) state.post.write(bytes);
      state.queued = [];
    });
    this.streamed = state;
    return {
      write: (bytes) => {
        if (state.dropped) return;
        state.written.push(bytes);
        if (state.post) state.post.write(bytes);
        else state.queued.push(bytes);
      },
      abort: (reason) => this.dropStream(state, reason),
    };
  }

  private dropStream(state: StreamedResult, reason: string): void {
    if (state.dropped) return;
    state.dropped = reason;
    state.queued = [];
    state.post?.abort(reason);
    this.log.debug('dropped the unfinished result post', { reason });
  }

  /**
   * Ends the streamed post with the rest of `body`; null when it cannot carry this body (it was
   * dropped, or `body` does not begin with what it holds) or failed on the way (then `body` is posted
   * as usual). A refusal is an outcome like any post's.
   */
  private async endStream(state: StreamedResult, body: Buffer[]): Promise<PostOutcome | null> {
    await state.opened;
    if (state.dropped || !state.post) return null;
    const rest = restAfterPrefix(body, state.written);
    if (!rest) {
      this.dropStream(state, 'the job ended with another body than the one being written');
      return null;
    }
    const outcome = await state.post.end(rest);
    if (outcome.ok || (outcome.status !== undefined && outcome.status < 500)) {
      this.resultStreamed = outcome.ok;
      return outcome;
    }
    this.log.warn('the streamed result post failed; posting the result again', {
      status: outcome.status,
      error: outcome.error,
    });
    return null;
  }

  /**
   * Posts the final result once; later calls return the first call's outcome. Resolves when RunPod
   * has it or refused it (a status below 500); while RunPod fails or cannot be reached, the post is
   * tried again (see `deliver`).
   */
  finish(result: ResultBody): Promise<PostOutcome> {
    if (this.finished) return this.finished;
    this.closed = true;
    clearTimeout(this.timer);
    this.pending = null;
    // A1111's answer goes out as the bytes it came in as (json/source-bytes.ts): no second serialization.
    let body: Buffer[];
    let isOutput = 'output' in result;
    try {
      body = encodeResult(result);
    } catch (error) {
      // A result that cannot be written as JSON still ends the job: as an error that says so.
      this.log.error('the job result could not be encoded; posting an INTERNAL error instead', errorFields(error));
      const failure = unencodableFailure(error);
      this.encodingFailure = failure;
      body = encodeResult(failureBody(failure));
      isOutput = false;
    }
    const bytes = body.reduce((sum, part) => sum + part.length, 0);
    this.resultBytes = bytes;
    const streamed = this.streamed;
    this.finished = this.chain.then(async () => {
      const early = streamed ? await this.endStream(streamed, body) : null;
      const outcome = early ?? (await this.deliver(body));
      if (outcome.ok) {
        this.log.debug('result posted', { bytes, attempts: outcome.attempts, streamed: early !== null });
        return outcome;
      }
      this.log.error('RunPod refused the job result', { bytes, attempts: outcome.attempts, status: outcome.status });
      if (outcome.status === undefined || !isOutput) return outcome;
      if (NOT_ABOUT_THE_RESULT.includes(outcome.status)) {
        // The credentials or the job itself were refused: a second post would be refused the same way.
        this.log.error('RunPod refused the post itself, not the result; not posting again', {
          status: outcome.status,
          hint:
            outcome.status === 401 || outcome.status === 403
              ? 'check RUNPOD_AI_API_KEY'
              : 'RunPod no longer has this job',
        });
        return outcome;
      }
      // RunPod refused the output itself (most often over its size limit): post a small error so the job
      // ends FAILED instead of COMPLETED without an output.
      const failure = rejectedResultFailure(outcome.status, bytes);
      const fallback = await this.deliver(encodeResult(failureBody(failure)));
      this.log.error('posted RESULT_REJECTED in place of the refused result', {
        status: fallback.status,
        ok: fallback.ok,
      });
      return fallback;
    });
    return this.finished;
  }

  /**
   * Posts a final body, in rounds of the configured retries, until RunPod takes it or refuses it (a
   * status below 500). A round that ends with RunPod failing (5xx) or out of reach is logged at error
   * level with the job id and the body's size, and the next one starts after the backoff's ceiling:
   * giving up would lose a finished job while RunPod still waits for it (the heartbeat names it until
   * then), since nothing else holds its result.
   */
  private async deliver(body: Buffer[]): Promise<PostOutcome> {
    const bytes = body.reduce((sum, part) => sum + part.length, 0);
    const post = { retries: this.options.retries, retryDelayMs: this.options.retryDelayMs };
    const pauseMs = this.options.retryDelayMs * 10;
    let attempts = 0;
    for (;;) {
      const outcome = await this.controlPlane.postJobDone(this.jobId, body, post);
      attempts += outcome.attempts;
      const unanswered = outcome.status === undefined || outcome.status >= 500;
      if (outcome.ok || !unanswered) return { ...outcome, attempts };
      this.log.error('failed to post the job result to RunPod; posting it again', {
        bytes,
        attempts,
        status: outcome.status,
        error: outcome.error,
        retryInMs: pauseMs,
      });
      await sleep(pauseMs);
    }
  }
}
