/**
 * Values made safe to keep: base64 payloads replaced by their size (and sha256), credentials masked,
 * errors as plain objects. For journals and for what the Stately inspector is sent.
 */
import { createHash } from 'node:crypto';
import { isWorkerError } from '../errors.js';
import { lazyStringLengths } from '../json/source-bytes.js';

const BASE64 = /^(data:[\w/+.-]+;base64,)?[A-Za-z0-9+/\r\n]{200,}={0,2}$/;

/** Keys whose values are credentials: never written to a journal or shown to the inspector. */
const SECRET_KEY =
  /^(.*_)?(token|api[-_]?key|apikey|access[-_]?token|auth|authorization|password|secret|access[-_]?key([-_]?id)?|secret[-_]?(access[-_]?)?key|credentials?)$/i;

/** The query parameters of a presigned S3 URL that grant access or name the key. */
const SIGNED_PARAM = /^x-amz-(signature|credential|security-token)$/i;

/** A URL without its credentials and with token-like query values masked; other text as it is. */
function withoutCredentials(text: string): string {
  if (!/^https?:\/\//i.test(text)) return text;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return text;
  }
  const secretParams = [...url.searchParams.keys()].filter((key) => SECRET_KEY.test(key) || SIGNED_PARAM.test(key));
  if (!url.username && !url.password && secretParams.length === 0) return text;
  url.username = '';
  url.password = '';
  for (const key of secretParams) url.searchParams.set(key, '***');
  return url.toString();
}

/**
 * Replaces every base64 payload in a value by `<base64 N bytes sha256:...>` (or `<base64 N chars>` with
 * `hash: false`, which costs nothing, and does not even decode images A1111's answer still holds as
 * bytes); errors become plain objects; credentials (token-named keys, URL credentials and
 * token query values) are masked.
 */
export function summarizePayloads(value: unknown, options: { hash: boolean } = { hash: true }, depth = 0): unknown {
  if (typeof value === 'string') {
    if (value.length < 200 || !BASE64.test(value)) return withoutCredentials(value);
    if (!options.hash) return `<base64 ${value.length} chars>`;
    const data = value.replace(/^data:[^,]*,/, '');
    const bytes = Buffer.from(data, 'base64');
    return `<base64 ${bytes.length} bytes sha256:${createHash('sha256').update(bytes).digest('hex')}>`;
  }
  if (value === null || typeof value !== 'object' || depth > 20) return value;
  if (isWorkerError(value)) {
    const error = value as unknown as Record<string, unknown>;
    return {
      name: 'WorkerError',
      code: error['code'],
      message: error['message'],
      details: summarizePayloads(error['details'], options, depth + 1),
      ...(error['phase'] ? { phase: error['phase'] } : {}),
    };
  }
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (Array.isArray(value)) return value.map((item) => summarizePayloads(item, options, depth + 1));
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    if (!options.hash && Object.getOwnPropertyDescriptor(value, key)?.get) {
      // A getter may do real work (decoding strings from bytes, json/source-bytes.ts): describe it instead.
      const lengths = lazyStringLengths(value, key);
      out[key] = lengths ? lengths.map((chars) => `<base64 ${chars} chars>`) : '<computed>';
      continue;
    }
    const item = (value as Record<string, unknown>)[key];
    out[key] =
      SECRET_KEY.test(key) && item !== null && item !== undefined ? '***' : summarizePayloads(item, options, depth + 1);
  }
  return out;
}
