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
import type { Delivered, DeliverInput, OutputChoice } from '../../machines/job.types.js';
import type { ResultSettings } from '../config/index.js';
import { WorkerError } from '../errors.js';
import { sourceByteLength } from '../json/source-bytes.js';
import type { Logger } from '../log/index.js';
import { answerImages, formatOf, infotexts, withImages } from './answer-images.js';
import type { ResultBucket } from './bucket.js';
import { CONTENT_TYPES, EXTENSIONS, reencode } from './encode.js';
import { decodeBuffers, describeCause, eachLimited, uploadAll } from './upload.js';

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

const megabytes = (bytes: number) => `${(bytes / 1_000_000).toFixed(1)} MB`;

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
  // Each image is decoded into a buffer only while it is uploaded: UPLOAD_CONCURRENCY of them at most,
  // each reused for the next image (and the next job) once its request has ended, so a batch's decoded
  // pictures never pile up waiting for the collector.
  const objects = (index: number) => {
    const slot = encoded ? undefined : decodeBuffers.take(images.maxBytes);
    const body = encoded?.[index] ?? images.decode(index, slot);
    // A1111's own bytes are in its samples_format, which an options change can make JPEG or WebP.
    const type = encoded ? format : formatOf(body);
    return {
      key: `${input.jobId}/${images.key === 'image' ? 'image' : `image-${index}`}.${EXTENSIONS[type]}`,
      body,
      contentType: CONTENT_TYPES[type],
      ...(slot ? { done: () => decodeBuffers.give(slot) } : {}),
    };
  };
  const uploads = await uploadAll(
    bucket,
    name,
    input.jobId,
    images.count,
    objects,
    settings.concurrency,
    signal,
    log,
  ).finally(() => decodeBuffers.trim(settings.concurrency, images.maxBytes));
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
