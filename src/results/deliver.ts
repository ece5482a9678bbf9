/**
 * `delivering`: A1111's answer made into the result RunPod gets. The images are re-encoded when the job
 * asks for WebP or JPEG; then, when the result would pass RESULT_INLINE_MAX_BYTES (or the job asks for
 * it), they go to the bucket and the answer holds their URLs instead (the rest of it unchanged). A
 * result too large for RunPod with no bucket to go to fails RESULT_TOO_LARGE here, before any post.
 *
 * Each image is decoded from A1111's answer only when its upload starts, UPLOAD_CONCURRENCY at a time,
 * so a large batch never sits in memory twice. An upload that fails (after the SDK's retries) fails the
 * job UPLOAD_FAILED; the objects already stored for it are deleted, as they are when the job is
 * cancelled or passes its deadline while uploading.
 */
import type { Delivered, DeliverInput, OutputChoice, UploadedImage } from '../../machines/job.types.js';
import { operationOf } from '../a1111/operations.js';
import type { ResultSettings } from '../config/index.js';
import { WorkerError } from '../errors.js';
import { lazyStrings, releaseWith, sourceByteLength } from '../json/source-bytes.js';
import type { Logger } from '../log/index.js';
import type { ResultBucket } from './bucket.js';
import { CONTENT_TYPES, EXTENSIONS, reencode } from './encode.js';

/** How a job's images come back when it does not say. */
export const DEFAULT_OUTPUT: OutputChoice = { delivery: 'auto', format: 'png', quality: 90 };

/** Room kept for the `worker` key the result gets after delivery (timings, notes, uploads). */
export const REPORT_ROOM_BYTES = 16_384;

export interface DeliveryDeps {
  settings: Pick<ResultSettings, 'inlineMaxBytes' | 'concurrency'>;
  bucket: ResultBucket | null;
  log: Logger;
  now?: () => Date;
}

/** The images of an answer, decoded one at a time. */
interface AnswerImages {
  key: 'images' | 'image';
  count: number;
  /** Base64 characters of all of them. */
  chars: number;
  decode(index: number): Buffer;
}

function answerImages(operation: string, response: unknown): AnswerImages | null {
  const answer = operationOf(operation).answer;
  if (typeof response !== 'object' || response === null) return null;
  if (answer === 'extra-single') {
    const image = (response as { image?: unknown }).image;
    if (typeof image !== 'string') return null;
    return { key: 'image', count: 1, chars: image.length, decode: () => Buffer.from(image, 'base64') };
  }
  if (answer !== 'images' && answer !== 'extra-batch') return null;
  const lazy = lazyStrings(response, 'images');
  if (lazy) {
    const { raw, spans } = lazy;
    return {
      key: 'images',
      count: spans.length,
      chars: spans.reduce((sum, [start, end]) => sum + end - start, 0),
      decode: (index) => decodeBase64Span(raw, spans[index]![0], spans[index]![1]),
    };
  }
  const images = (response as { images?: unknown }).images;
  if (!Array.isArray(images) || !images.every((image) => typeof image === 'string')) return null;
  return {
    key: 'images',
    count: images.length,
    chars: images.reduce((sum: number, image: string) => sum + image.length, 0),
    decode: (index) => Buffer.from(images[index] as string, 'base64'),
  };
}

/**
 * Base64 characters decoded at a time: a multiple of 4, so every piece decodes on its own, and small
 * enough for V8's young generation (a string over 128 KB lives in the old one until a full collection,
 * and eight images of a batch would leave 28 MB of such strings per job).
 */
const DECODE_CHARS = 1 << 16;

/**
 * The bytes of the base64 text at `raw[start..end)`, decoded piece by piece into one buffer, so no
 * string of the whole image is made.
 */
function decodeBase64Span(raw: Buffer, start: number, end: number): Buffer {
  let padding = 0;
  while (padding < 2 && end - padding > start && raw[end - 1 - padding] === 0x3d) padding++;
  const out = Buffer.allocUnsafe(Math.floor(((end - start) * 3) / 4) - padding);
  let written = 0;
  for (let at = start; at < end; at += DECODE_CHARS) {
    written += out.write(raw.toString('latin1', at, Math.min(end, at + DECODE_CHARS)), written, 'base64');
  }
  return written === out.length ? out : out.subarray(0, written);
}

/** The format a picture's bytes say it is in (A1111 answers in PNG, JPEG or WebP); PNG when unsure. */
function formatOf(bytes: Buffer): 'png' | 'jpeg' | 'webp' {
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.toString('latin1', 8, 12) === 'WEBP') return 'webp';
  return 'png';
}

/** A1111's infotext of each image (txt2img and img2img `info.infotexts`), for re-encoded images. */
function infotexts(response: unknown): string[] {
  const info = (response as { info?: unknown }).info;
  if (typeof info !== 'string') return [];
  try {
    const parsed = JSON.parse(info) as { infotexts?: unknown };
    return Array.isArray(parsed.infotexts)
      ? parsed.infotexts.map((text) => (typeof text === 'string' ? text : ''))
      : [];
  } catch {
    return [];
  }
}

/** `response` with `key` holding `values` (a list, or the single image), the rest of it unchanged. */
function withImages(response: unknown, key: 'images' | 'image', values: string[]): unknown {
  const descriptors = Object.getOwnPropertyDescriptors(response as object);
  delete descriptors[key];
  const copy = Object.defineProperties({}, descriptors) as Record<string, unknown>;
  copy[key] = key === 'image' ? values[0] : values;
  // The answer's bytes go back to their pool when the copy's result has been posted.
  releaseWith(copy, response as object);
  return copy;
}

/**
 * Runs `task` for 0..count-1, at most `limit` at once. The first failure stops the ones not started
 * (`onFailure` can stop the running ones), and is the one thrown once every running task has ended.
 */
async function eachLimited<T>(
  count: number,
  limit: number,
  task: (index: number) => Promise<T>,
  onFailure: (error: unknown) => void = () => undefined,
): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  let first: { error: unknown } | null = null;
  const worker = async () => {
    while (!first && next < count) {
      const index = next++;
      try {
        results[index] = await task(index);
      } catch (error) {
        if (!first) {
          first = { error };
          onFailure(error);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  if (first) throw (first as { error: unknown }).error;
  return results;
}

const megabytes = (bytes: number) => `${(bytes / 1_000_000).toFixed(1)} MB`;

function describeCause(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { Code?: unknown }).Code ?? (error as { code?: unknown }).code;
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  const name = error.name && error.name !== 'Error' ? error.name : typeof code === 'string' ? code : '';
  return [name, error.message, status ? `(HTTP ${status})` : '']
    .filter(Boolean)
    .join(': ')
    .replace(/: \(HTTP/, ' (HTTP');
}

/**
 * @example
 * const { response, uploads } = await deliverResult(deps, { jobId, operation, response, output }, signal);
 */
export async function deliverResult(deps: DeliveryDeps, input: DeliverInput, signal: AbortSignal): Promise<Delivered> {
  const { settings, bucket } = deps;
  const log = deps.log.child({ jobId: input.jobId });
  const choice = input.output ?? DEFAULT_OUTPUT;
  const images = answerImages(input.operation, input.response);
  if (!images || images.count === 0) return { response: input.response, uploads: [], notes: [] };
  const notes: string[] = [];

  let encoded: Buffer[] | null = null;
  if (choice.format !== 'png') {
    const texts = infotexts(input.response);
    const format = choice.format;
    encoded = await eachLimited(images.count, settings.concurrency, async (index) => {
      signal.throwIfAborted();
      try {
        return await reencode(images.decode(index), format, choice.quality, texts[index] ?? null);
      } catch (error) {
        const field = images.key === 'image' ? 'image' : `images[${index}]`;
        throw new WorkerError(
          'ENCODE_FAILED',
          `${field} could not be re-encoded as ${format}: ${describeCause(error)}`,
          {
            cause: error,
          },
        );
      }
    });
    const bytes = encoded.reduce((sum, image) => sum + image.length, 0);
    notes.push(
      `${images.count} image(s) re-encoded as ${format} at quality ${choice.quality}: ${bytes} bytes, from ${Math.floor((images.chars * 3) / 4)} bytes of PNG`,
    );
  }

  const answerBytes = sourceByteLength(input.response) ?? Buffer.byteLength(JSON.stringify(input.response));
  const size = encoded
    ? answerBytes - images.chars + encoded.reduce((sum, image) => sum + Math.ceil(image.length / 3) * 4, 0)
    : answerBytes;
  const fits = size + REPORT_ROOM_BYTES <= settings.inlineMaxBytes;
  const upload = choice.delivery === 'upload' || (choice.delivery === 'auto' && !fits && bucket !== null);

  if (!upload) {
    if (!fits) throw tooLarge(size, settings.inlineMaxBytes, choice.delivery === 'inline' && bucket !== null);
    const response = encoded
      ? withImages(
          input.response,
          images.key,
          encoded.map((image) => image.toString('base64')),
        )
      : input.response;
    return { response, uploads: [], notes };
  }
  if (!bucket) throw new WorkerError('INTERNAL', 'an upload was asked for, and the worker has no bucket');

  const name = bucket.name(deps.now?.() ?? new Date());
  const format = choice.format;
  const objects = (index: number) => {
    const body = encoded?.[index] ?? images.decode(index);
    // A1111's own bytes are in its samples_format, which an options change can make JPEG or WebP.
    const type = encoded ? format : formatOf(body);
    return {
      key: `${input.jobId}/${images.key === 'image' ? 'image' : `image-${index}`}.${EXTENSIONS[type]}`,
      body,
      contentType: CONTENT_TYPES[type],
    };
  };
  const uploads = await uploadAll(bucket, name, input.jobId, images.count, objects, settings.concurrency, signal, log);
  const response = withImages(
    input.response,
    images.key,
    uploads.map((item) => item.url),
  );
  // The rest of the answer can be large too: `parameters` echoes the request (its init images with
  // include_init_images, a ControlNet unit's image).
  const rest = Buffer.byteLength(JSON.stringify(response));
  if (rest + REPORT_ROOM_BYTES > settings.inlineMaxBytes) {
    await bucket.remove(
      name,
      uploads.map((item) => item.key),
    );
    throw new WorkerError(
      'RESULT_TOO_LARGE',
      `even with its images uploaded, the result would be ${megabytes(rest)} (${rest} bytes), over RESULT_INLINE_MAX_BYTES (${settings.inlineMaxBytes}): A1111's answer echoes the request in "parameters" (its init images when include_init_images is true, ControlNet images); leave those out, or raise the limit`,
      { details: { bytes: rest, limit: settings.inlineMaxBytes, uploaded: 0 } },
    );
  }
  const why =
    choice.delivery === 'upload'
      ? 'the job asked for "delivery": "upload"'
      : `the result would be ${megabytes(size)}, over RESULT_INLINE_MAX_BYTES (${settings.inlineMaxBytes})`;
  notes.push(`${uploads.length} image(s) uploaded to bucket "${name}": ${why}`);
  log.info('images uploaded', {
    bucket: name,
    objects: uploads.length,
    bytes: uploads.reduce((sum, item) => sum + item.bytes, 0),
  });
  return { response, uploads, notes };
}

function tooLarge(size: number, limit: number, inlineAsked: boolean): WorkerError {
  const ways = inlineAsked
    ? 'the job asked for "output": {"delivery": "inline"}; "auto" or "upload" would upload the images to the bucket'
    : 'set a bucket (BUCKET_ENDPOINT_URL, BUCKET_ACCESS_KEY_ID, BUCKET_SECRET_ACCESS_KEY) to have the images uploaded, or ask for less: a smaller batch_size or n_iter, smaller images, or "output": {"format": "webp"}';
  return new WorkerError(
    'RESULT_TOO_LARGE',
    `the result would be ${megabytes(size)} (${size} bytes), over RESULT_INLINE_MAX_BYTES (${limit}; RunPod refuses results of about 20 MB): ${ways}`,
    { details: { bytes: size, limit } },
  );
}

/**
 * Uploads every image, `concurrency` at a time. On a failure or an abort no further upload starts; once
 * every request already sent has ended (stored or not), the job's objects are deleted, and what its
 * prefix still lists is deleted too, so a failed, cancelled or timed-out job leaves nothing behind.
 */
async function uploadAll(
  bucket: ResultBucket,
  name: string,
  jobId: string,
  count: number,
  objectOf: (index: number) => { key: string; body: Buffer; contentType: string },
  concurrency: number,
  signal: AbortSignal,
  log: Logger,
): Promise<UploadedImage[]> {
  const started: string[] = [];
  let stopped = false;
  const stop = () => {
    stopped = true;
  };
  signal.addEventListener('abort', stop, { once: true });
  // Runs after every request has ended; a cancelled job does not wait for it.
  const cleanUp = async (): Promise<{ deleted: number; failed: string[] }> => {
    const first = await bucket.remove(name, started);
    // What the prefix still lists: an object a request stored after all, or one a delete missed.
    const left = await bucket.keysBelow(name, `${jobId}/`).catch(() => first.failed);
    const failed = left.length > 0 ? (await bucket.remove(name, left)).failed : [];
    if (failed.length > 0) log.warn('objects of a failed upload left in the bucket', { bucket: name, keys: failed });
    return { deleted: started.length - failed.length, failed };
  };
  try {
    const stored = await eachLimited(
      count,
      concurrency,
      async (index) => {
        if (stopped) throw signal.reason ?? new Error('the job stopped');
        const object = objectOf(index);
        started.push(object.key);
        return bucket.put(name, object);
      },
      stop,
    );
    if (!signal.aborted) return stored;
    void cleanUp().catch(() => undefined);
    throw signal.reason;
  } catch (error) {
    if (signal.aborted) {
      void cleanUp().catch(() => undefined);
      throw error;
    }
    const { failed } = await cleanUp();
    throw new WorkerError(
      'UPLOAD_FAILED',
      `uploading the job's images to bucket "${name}" at ${bucket.endpoint} failed: ${describeCause(error)}${failed.length > 0 ? ` (${failed.length} stored object(s) could not be deleted)` : ''}`,
      { cause: error, details: { bucket: name, objects: count, deleted: started.length - failed.length } },
    );
  } finally {
    signal.removeEventListener('abort', stop);
  }
}
