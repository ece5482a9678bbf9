/**
 * A GET that follows the URL guard on every hop (url-guard.ts): each redirect is vetted again, the
 * connection goes only to the addresses that were vetted (no second lookup that could rebind), at most
 * MAX_REDIRECTS redirects are followed, and a socket silent for `idleTimeoutMs` ends the request.
 * Resolves with the 200 answer, its body unread; anything else rejects with a {@link GuardedGetError}
 * or a {@link UrlRefusal}.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { safeUrl, type UrlPolicy, type VettedTarget, vetTarget } from './url-guard.js';

export const MAX_REDIRECTS = 5;

/** The server answered something other than 200 (or redirected too often). */
export class GuardedGetError extends Error {
  override readonly name = 'GuardedGetError';
  constructor(
    message: string,
    readonly details: Record<string, unknown>,
  ) {
    super(message);
  }
}

export interface GuardedGetOptions {
  policy: UrlPolicy;
  signal: AbortSignal;
  idleTimeoutMs: number;
  /** Headers for one hop (a token only for the host the job named, say). */
  headersFor?: (url: URL) => Record<string, string>;
  /** Told about each redirect. */
  onRedirect?: (to: URL) => void;
  /** Whether the job's own URL must be on the policy's host list (default: yes). */
  checkAllowlist?: boolean;
  /**
   * Whether every redirect must stay on the host list too. Checkpoint hosts redirect to CDNs off the
   * list (Hugging Face to its storage), so for them only the first hop is checked.
   */
  allowlistOnEveryHop?: boolean;
}

/**
 * @example
 * const response = await guardedGet(new URL(url), { policy, signal, idleTimeoutMs: 60_000 });
 */
export async function guardedGet(source: URL, options: GuardedGetOptions): Promise<IncomingMessage> {
  let url = source;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const target = await vetTarget(url, options.policy, {
      checkAllowlist: (hop === 0 || options.allowlistOnEveryHop === true) && options.checkAllowlist !== false,
    });
    const response = await request(target, options);
    const status = response.statusCode ?? 0;
    if (status >= 300 && status < 400 && response.headers.location) {
      response.resume();
      url = new URL(response.headers.location, url);
      options.onRedirect?.(url);
      continue;
    }
    if (status !== 200) {
      response.resume();
      throw new GuardedGetError(`${safeUrl(url)} answered ${status}`, { url: safeUrl(url), status });
    }
    return response;
  }
  throw new GuardedGetError(`more than ${MAX_REDIRECTS} redirects from ${safeUrl(source)}`, { url: safeUrl(source) });
}

function request(target: VettedTarget, options: GuardedGetOptions): Promise<IncomingMessage> {
  // Connections go only to the addresses that were vetted: no second lookup that could rebind.
  const pinned: LookupFunction = (_hostname, lookupOptions, callback) => {
    const first = target.addresses[0]!;
    if ((lookupOptions as { all?: boolean }).all) {
      (callback as (err: null, addresses: { address: string; family: number }[]) => void)(null, target.addresses);
    } else callback(null, first.address, first.family);
  };
  const headers = { 'User-Agent': 'runpod-a1111-worker', ...(options.headersFor?.(target.url) ?? {}) };
  const client = target.url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.get(
      target.url,
      { headers, lookup: pinned, signal: options.signal, timeout: options.idleTimeoutMs },
      resolve,
    );
    req.on('timeout', () => req.destroy(new Error(`no data for ${options.idleTimeoutMs} ms`)));
    req.on('error', reject);
  });
}
