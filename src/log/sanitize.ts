/**
 * What a log line may not carry: base64 payloads are replaced by their length, secrets (by key, and the
 * signature and credential of presigned URLs) by `***`, and text longer than 4096 characters loses its middle, so no image or token reaches a log.
 */
import winston from 'winston';

const SECRET_KEY = /(token|secret|password|passwd|authorization|api[-_]?key|access[-_]?key|credential)/i;
const BASE64_RUN = /^(data:[\w/+.-]+;base64,)?[A-Za-z0-9+/\r\n]{200,}={0,2}$/;
export const MAX_MESSAGE = 4096;

/** The query parameters of a presigned S3 URL that grant access or name the access key. */
const SIGNED_PARAM = /(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s"'\\]+/gi;

/** `text` with the signature, credential and token of every presigned URL in it masked. */
export function maskSignedUrls(text: string): string {
  return text.includes('X-Amz-') || text.includes('x-amz-') ? text.replace(SIGNED_PARAM, '$1***') : text;
}

/** Replaces base64 payloads and secrets anywhere in a log value. */
export function sanitizeForLog(value: unknown, key = '', depth = 0): unknown {
  if (key && SECRET_KEY.test(key) && value !== undefined && value !== null && value !== '') return '***';
  if (typeof value === 'string') {
    if (looksLikeBase64(value)) return `<base64 ${value.length} chars>`;
    const masked = maskSignedUrls(value);
    return masked.length > MAX_MESSAGE ? truncateMiddle(masked) : masked;
  }
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => sanitizeForLog(item, '', depth + 1));
  if (value instanceof Error) return { name: value.name, message: value.message };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = sanitizeForLog(v, k, depth + 1);
  return out;
}

/** A run of 200+ base64 characters without a space: an image or a blob, never prose. */
export function looksLikeBase64(text: string): boolean {
  return text.length >= 200 && BASE64_RUN.test(text);
}

export function truncateMiddle(text: string): string {
  const keep = MAX_MESSAGE / 2;
  return `${text.slice(0, keep)}\n...TRUNCATED ${text.length - MAX_MESSAGE} CHARACTERS...\n${text.slice(-keep)}`;
}

/** The sanitizer as a winston format: it runs before every line shape. */
export const sanitize = winston.format((info) => {
  for (const key of Object.keys(info)) {
    if (key === 'level') continue;
    if (key === 'message') {
      const message = String(info.message);
      info.message = looksLikeBase64(message) ? `<base64 ${message.length} chars>` : maskSignedUrls(message);
      continue;
    }
    info[key] = sanitizeForLog(info[key], key);
  }
  return info;
});
