/**
 * Fetching an image a job names by URL, so A1111 never fetches anything itself (its own check is weak
 * against redirects and DNS rebinding, and it has no size cap):
 *
 * - the URL guard of src/net/ on every hop (private, loopback, link-local and metadata addresses
 *   refused after DNS, at most 5 redirects, the connection pinned to the vetted address, IMAGE_URL_HOSTS
 *   when set, only http and https);
 * - a size cap (IMAGE_URL_MAX_BYTES) on the announced length and on the bytes as they come, and a time
 *   cap (IMAGE_URL_TIMEOUT_MS) on the whole fetch;
 * - the image's type sniffed from its bytes, and its pixel size from its header (IMAGE_MAX_PIXELS).
 *
 * A URL the policy refuses, or bytes that are no acceptable image, fail INVALID_INPUT; a server that
 * fails, answers an error status or is too slow fails IMAGE_FETCH_FAILED. Both name the field.
 */
import type { ImageSettings } from '../config/index.js';
import { WorkerError } from '../errors.js';
import { GuardedGetError, guardedGet } from '../net/guarded-get.js';
import { safeUrl, UrlRefusal } from '../net/url-guard.js';
import { imageProblem, type SniffedImage, sniffImage } from './sniff.js';

export interface FetchedImage {
  bytes: Buffer;
  image: SniffedImage;
}

function refused(field: string, url: string, reason: string): WorkerError {
  return new WorkerError('INVALID_INPUT', `invalid input: ${field} = ${JSON.stringify(url)} is refused: ${reason}`, {
    details: { problems: [{ field, value: url, rule: `an image URL the worker may fetch (${reason})` }] },
  });
}

function failed(field: string, url: string, reason: string, details: Record<string, unknown> = {}): WorkerError {
  return new WorkerError('IMAGE_FETCH_FAILED', `${field}: the image at ${url} could not be fetched: ${reason}`, {
    details: { field, url, reason, ...details },
  });
}

/**
 * @example
 * const { bytes } = await fetchImage('init_images[0]', 'https://example.com/cat.png', settings, signal);
 */
export async function fetchImage(
  field: string,
  url: string,
  settings: ImageSettings,
  signal: AbortSignal,
): Promise<FetchedImage> {
  if (!URL.canParse(url)) throw refused(field, url, 'it is not a valid URL');
  const source = new URL(url);
  const shown = safeUrl(source);
  const deadline = AbortSignal.timeout(settings.timeoutMs);
  const combined = AbortSignal.any([signal, deadline]);
  const policy = {
    allowedHosts: settings.urlHosts,
    privateAllow: settings.privateAllow,
    settingNames: { hosts: 'IMAGE_URL_HOSTS', privateAllow: 'IMAGE_URL_PRIVATE_ALLOW' },
  };
  try {
    const response = await guardedGet(source, {
      policy,
      signal: combined,
      idleTimeoutMs: settings.timeoutMs,
      checkAllowlist: settings.urlHosts.length > 0,
      // A redirect may not lead off IMAGE_URL_HOSTS either (an open redirect would make the list moot).
      allowlistOnEveryHop: true,
    });
    const announced = Number(response.headers['content-length']);
    if (Number.isFinite(announced) && announced > settings.maxBytes) {
      response.destroy();
      throw refused(field, shown, `it is ${announced} bytes, over IMAGE_URL_MAX_BYTES (${settings.maxBytes})`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of response as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > settings.maxBytes) {
        response.destroy();
        throw refused(field, shown, `it is over IMAGE_URL_MAX_BYTES (${settings.maxBytes}) bytes`);
      }
      chunks.push(chunk);
    }
    const bytes = Buffer.concat(chunks);
    const image = sniffImage(bytes);
    const problem = imageProblem(image, settings.maxPixels);
    if (problem) throw refused(field, shown, problem);
    return { bytes, image: image! };
  } catch (error) {
    if (error instanceof WorkerError) throw error;
    if (error instanceof UrlRefusal) {
      if (error.reason === 'refused') throw refused(field, shown, error.message);
      throw failed(field, shown, error.message, error.details);
    }
    if (error instanceof GuardedGetError) throw failed(field, shown, error.message, error.details);
    if (deadline.aborted)
      throw failed(field, shown, `it took longer than IMAGE_URL_TIMEOUT_MS (${settings.timeoutMs} ms)`);
    if (signal.aborted) throw new WorkerError('CANCELLED', `the fetch of ${field} was abandoned`);
    throw failed(field, shown, error instanceof Error ? error.message : String(error));
  }
}
