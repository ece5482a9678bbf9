/**
 * A generation POST (txt2img) on node:http (post-stream.ts), with the client's retry policy applied
 * by hand: 502/503/504 and refused connections are tried again with the same backoff as every other
 * call, never a reset (A1111 may have been generating). The answer's body is read into one buffer
 * from the buffer pool. Failures come out as the errors axios would give, so `classifyA1111Error`
 * treats them like any other call's.
 */
import type http from 'node:http';
import type https from 'node:https';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { AxiosError, CanceledError, isAxiosError } from 'axios';
import { WorkerError } from '../errors.js';
import { takeBuffer } from '../json/buffer-pool.js';
import { collectWhileReading } from '../memory.js';
import type { AnswerFollower, AnswerTap } from './answer-tap.js';
import { isConnectFailure, isConnectionReset } from './classify.js';
import { postForStream, statusError } from './post-stream.js';
import type { RetryPolicy } from './retry-policy.js';

/**
 * Reads an answer's body into a single buffer: allocated once at its announced length (a large answer
 * is tens of megabytes, and collecting pieces then joining them would hold it twice), with the socket
 * reads already copied freed as it goes (memory.ts).
 */
async function readBody(
  stream: Readable,
  length: number | undefined,
  follower?: AnswerFollower | null,
): Promise<Buffer> {
  if (length !== undefined && length > 0) {
    const out = takeBuffer(length);
    // A followed answer goes out as it is read: a collection every few megabytes would hold it back,
    // and the reads are freed after the result is posted (memory.ts).
    const collect = follower ? () => undefined : collectWhileReading(length);
    let offset = 0;
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        // The HTTP parser stops a body at its Content-Length; this only guards the buffer.
        if (offset + chunk.length > length) throw new Error('the answer is longer than its Content-Length');
        offset += chunk.copy(out, offset);
        follower?.progress(out, offset);
        collect(offset);
      }
    } catch (error) {
      follower?.fail(`A1111's answer stopped after ${offset} of ${length} bytes`);
      throw error;
    }
    if (offset < length) follower?.fail(`A1111's answer ended after ${offset} of ${length} bytes`);
    return offset === length ? out : out.subarray(0, offset);
  }
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/**
 * A failure while reading an answer, in the terms of every other failure: a body cut short fails with
 * Node's own error (ECONNRESET, "aborted"), classified like any reset; one that could not be
 * decompressed is A1111's (or a proxy's) broken answer.
 */
function transportError(error: unknown, route: string): unknown {
  if (isAxiosError(error) || !(error instanceof Error)) return error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code?.startsWith('Z_')) {
    return new WorkerError(
      'BACKEND_ERROR',
      `A1111's answer to POST ${route.startsWith('/sdapi/') ? route : `/sdapi/v1${route}`} was compressed and could not be decompressed (${error.message})`,
      { details: { method: 'POST', route, code }, cause: error },
    );
  }
  return code && (isConnectionReset(code) || isConnectFailure(code)) ? AxiosError.from(error, code) : error;
}

/** The last attempt's error, and how many attempts were made. */
export class DirectPostFailure {
  constructor(
    readonly failure: unknown,
    readonly attempts: number,
  ) {}
}

export interface DirectPostOptions {
  url: string;
  /** The route under /sdapi/v1, for messages and the retry line. */
  route: string;
  body: string;
  headers: Record<string, string>;
  agent: http.Agent | https.Agent;
  timeoutMs: number;
  policy: RetryPolicy;
  signal?: AbortSignal;
  /** Follows a successful answer's bytes as they arrive (answer-tap.ts). */
  tap?: AnswerTap;
}

/**
 * Sends the POST, trying again as the policy says. Resolves with the bytes of a 2xx answer; rejects
 * with a {@link DirectPostFailure} holding the last attempt's error and the attempts made.
 */
export async function postWithRetries(options: DirectPostOptions): Promise<Buffer> {
  const { url, route, policy, signal } = options;
  for (let attempt = 1; ; attempt++) {
    let failure: unknown;
    try {
      const answer = await postForStream({
        url,
        body: options.body,
        headers: options.headers,
        agent: options.agent,
        timeoutMs: options.timeoutMs,
        ...(signal ? { signal } : {}),
      });
      if (answer.status >= 200 && answer.status < 300) {
        const follower = answer.length !== undefined && options.tap ? options.tap.begin(answer.length) : null;
        return await readBody(answer.body, answer.length, follower);
      }
      // An error answer is classified by its status even when its body cannot be read in full.
      const bytes = await readBody(answer.body, undefined).catch((error: unknown) => {
        if (error instanceof CanceledError) throw error;
        return Buffer.alloc(0);
      });
      failure = statusError(url, answer, bytes);
    } catch (error) {
      failure = transportError(error, route);
    }
    const retrying =
      isAxiosError(failure) && attempt <= policy.retries && policy.shouldRetry(failure, 'generation') ? failure : null;
    if (!retrying) throw new DirectPostFailure(failure, attempt);
    policy.logRetry({ method: 'POST', route }, attempt, retrying);
    await sleep(policy.delayMs(attempt), undefined, signal ? { signal } : {}).catch(() => {
      throw new DirectPostFailure(new CanceledError(), attempt);
    });
  }
}
