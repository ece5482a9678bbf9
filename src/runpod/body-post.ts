/**
 * One POST to the control plane on node:http, its body written as it comes: the buffers are written as
 * they are (never joined into one copy), the answer is read to its end so the connection can be
 * reused, and its status is the result. Redirects are not followed. Without a Content-Length among the
 * headers the body goes chunked.
 *
 * An answer that comes before the body's end (a proxy's 413 or 503 after the first bytes) ends the
 * post: nothing more is written, the connection is closed once the answer is read, and a refusal's
 * status is the result. A 2xx before the end is no delivery (the other side has not seen the body)
 * and fails the post.
 */
import http from 'node:http';
import https from 'node:https';

export interface BodyPost {
  write(bytes: Buffer): void;
  /** Writes the rest, ends the body, and resolves with the answer's status; rejects when the post fails. */
  finish(rest: readonly Buffer[]): Promise<number>;
  /** Closes the connection, the body unfinished if it was. */
  destroy(reason?: string): void;
}

export interface BodyPostOptions {
  headers: http.OutgoingHttpHeaders;
  agents: { http: http.Agent; https: https.Agent };
  /** The answer must come within this long of silence. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

export function openBodyPost(url: string, options: BodyPostOptions): BodyPost {
  const target = new URL(url);
  const secure = target.protocol === 'https:';
  const request = (secure ? https : http).request(target, {
    method: 'POST',
    headers: options.headers,
    agent: secure ? options.agents.https : options.agents.http,
    timeout: options.timeoutMs,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  let ended = false;
  let answered = false;
  const status = new Promise<number>((resolve, reject) => {
    request.on('response', (response) => {
      answered = true;
      const early = !ended;
      response.on('error', reject);
      response.on('end', () => {
        const code = response.statusCode ?? 0;
        if (early && code >= 200 && code < 300)
          reject(new Error(`answered ${code} before the body's end, which it cannot have read`));
        else resolve(code);
        if (early) request.destroy();
      });
      response.resume();
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${options.timeoutMs} ms`)));
    request.on('error', reject);
  });
  // Read by `finish`; a post dropped before its end has nobody waiting for it.
  status.catch(() => undefined);
  const write = (bytes: Buffer) => {
    if (!request.destroyed && !answered) request.write(bytes);
  };
  return {
    write,
    finish(rest) {
      for (const part of rest) write(part);
      ended = true;
      if (!request.destroyed && !answered) request.end();
      return status;
    },
    destroy(reason) {
      request.destroy(reason === undefined ? undefined : new Error(reason));
    },
  };
}
