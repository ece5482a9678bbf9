/**
 * Where a job's images go: inline in the result up to a size, to an S3-compatible bucket past it. The
 * bucket variables are runpod-python's `rp_upload` ones, so an endpoint's settings carry over.
 */
import { integer, optionalText, settingGroup } from './declare.js';

const HTTP_URL = /^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/i;

export const RESULT_SETTINGS = settingGroup(
  'Results',
  {
    inlineMaxBytes: integer('RESULT_INLINE_MAX_BYTES', {
      default: 15_000_000,
      min: 1_024,
      max: 100_000_000,
      description:
        'Largest result posted inline, in bytes of JSON (RunPod refuses results of about 20 MB). A larger one is uploaded to the bucket when one is set, and fails RESULT_TOO_LARGE before posting when none is.',
    }),
    streamMinBytes: integer('RESULT_STREAM_MIN_BYTES', {
      default: 2_000_000,
      min: 0,
      max: 100_000_000,
      description:
        "A1111 answers at least this large that go out inline (PNG, under RESULT_INLINE_MAX_BYTES) are written into the job-done post while they arrive, once A1111's status says success, with chunked transfer encoding; the worker's key ends the post once the answer is read and checked, and an answer that turns out bad drops the unfinished post before its failure is posted. 0 reads every answer first.",
    }),
    endpointUrl: optionalText('BUCKET_ENDPOINT_URL', {
      rule: 'an http(s) URL',
      pattern: HTTP_URL,
      description:
        'S3-compatible endpoint for results (AWS S3, Cloudflare R2, Backblaze B2, MinIO), e.g. `https://<account>.r2.cloudflarestorage.com`. Unset: no uploads.',
    }),
    accessKeyId: optionalText('BUCKET_ACCESS_KEY_ID', {
      rule: 'text',
      secret: true,
      description: "The bucket's access key id. Never logged; a job may not carry credentials.",
    }),
    secretAccessKey: optionalText('BUCKET_SECRET_ACCESS_KEY', {
      rule: 'text',
      secret: true,
      description: "The bucket's secret access key. Never logged.",
    }),
    bucketName: optionalText('BUCKET_NAME', {
      rule: 'a bucket name (3 to 63 lower-case letters, digits, dots and hyphens)',
      pattern: /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
      description:
        "The bucket. Unset: the month and year of the upload, `MM-YY`, as runpod-python's rp_upload names it.",
    }),
    region: optionalText('BUCKET_REGION', {
      rule: 'a region name',
      pattern: /^[a-z0-9-]+$/,
      description: 'The signing region (`us-east-1` when unset; R2 takes `auto` or any).',
    }),
    publicUrl: optionalText('BUCKET_PUBLIC_URL', {
      rule: 'an http(s) URL',
      pattern: HTTP_URL,
      description:
        'Base URL of a bucket served publicly (an R2 custom domain, a CDN): result URLs are `<base>/<key>`, not presigned. Unset: presigned GET URLs.',
    }),
    urlExpiresSeconds: integer('BUCKET_URL_EXPIRES_S', {
      default: 604_800,
      min: 60,
      max: 604_800,
      description: 'How long a presigned result URL is valid (7 days, the SigV4 maximum, by default).',
    }),
    partBytes: integer('UPLOAD_PART_BYTES', {
      default: 8_388_608,
      min: 5_242_880,
      max: 1_073_741_824,
      description:
        "Images larger than this go up as multipart uploads in parts of this size (5 MiB at least, S3's floor).",
    }),
    concurrency: integer('UPLOAD_CONCURRENCY', {
      default: 4,
      min: 1,
      max: 32,
      description: 'Images of one job uploaded at the same time.',
    }),
  },
  {
    check: (values) => {
      const problems: string[] = [];
      const keys = [values.accessKeyId, values.secretAccessKey].filter((value) => value !== undefined).length;
      if (values.endpointUrl && keys < 2) {
        problems.push('BUCKET_ENDPOINT_URL is set: BUCKET_ACCESS_KEY_ID and BUCKET_SECRET_ACCESS_KEY must be set too');
      }
      if (!values.endpointUrl && keys > 0) {
        problems.push('BUCKET_ACCESS_KEY_ID or BUCKET_SECRET_ACCESS_KEY is set without BUCKET_ENDPOINT_URL');
      }
      return problems;
    },
    finish: ({ endpointUrl, accessKeyId, secretAccessKey, bucketName, region, publicUrl, ...rest }) => ({
      ...rest,
      bucket:
        endpointUrl && accessKeyId && secretAccessKey
          ? {
              endpointUrl,
              accessKeyId,
              secretAccessKey,
              name: bucketName,
              region: region ?? 'us-east-1',
              publicUrl: publicUrl?.replace(/\/+$/, ''),
            }
          : null,
    }),
  },
);
