/**
 * The worker's own `output` block of a job that answers images (the generations and the extras): how
 * its images come back. It never reaches A1111.
 *
 *   {"output": {"delivery": "auto" | "inline" | "upload", "format": "png" | "webp" | "jpeg", "quality": 1-100}}
 *
 * - `delivery`: `auto` (the default) posts the images inline and uploads them to the bucket when the
 *   result would pass RESULT_INLINE_MAX_BYTES; `inline` never uploads; `upload` always does.
 * - `format`: `png` (the default) keeps A1111's bytes; `webp` and `jpeg` are re-encoded by the worker
 *   with the generation parameters kept in EXIF, as A1111 stores them for those formats.
 * - `quality`: for webp and jpeg, 90 by default.
 *
 * No bucket setting may ride in a job: the bucket and its credentials come from the worker's environment.
 */
import type { OutputChoice } from '../../machines/job.types.js';
import { DEFAULT_OUTPUT } from '../results/deliver.js';
import type { InputProblem } from './envelope.js';
import { TOKEN_NAME, TOKEN_RULE } from './model-block.js';

/** The worker's input key, removed before the request goes to A1111. */
export const OUTPUT_KEY = 'output';

export type Delivery = OutputChoice['delivery'];
export type ImageFormat = OutputChoice['format'];

const DELIVERIES: readonly Delivery[] = ['auto', 'inline', 'upload'];
const FORMATS: readonly ImageFormat[] = ['png', 'webp', 'jpeg'];
const BUCKET_NAME = /^bucket|^(aws|s3)_|endpoint|region|credential|access[-_]?key|secret/i;
const BUCKET_RULE = 'no bucket settings: the bucket and its credentials come from BUCKET_* on the worker';

/** The problems of an `output` block; `bucket` says whether the worker has one to upload to. */
export function outputProblems(block: unknown, bucket: boolean): InputProblem[] {
  if (typeof block !== 'object' || block === null || Array.isArray(block)) {
    return [
      {
        field: OUTPUT_KEY,
        value: block,
        rule: 'an object {"delivery"?: "auto" | "inline" | "upload", "format"?: "png" | "webp" | "jpeg", "quality"?: 1-100}',
      },
    ];
  }
  const record = block as Record<string, unknown>;
  const problems: InputProblem[] = [];
  for (const key of Object.keys(record)) {
    if (TOKEN_NAME.test(key)) problems.push({ field: `output.${key}`, value: '***', rule: TOKEN_RULE });
    else if (BUCKET_NAME.test(key)) problems.push({ field: `output.${key}`, value: '***', rule: BUCKET_RULE });
    else if (!['delivery', 'format', 'quality'].includes(key)) {
      problems.push({ field: `output.${key}`, value: record[key], rule: 'one of delivery, format, quality' });
    }
  }
  const { delivery, format, quality } = record;
  if (delivery !== undefined && !DELIVERIES.includes(delivery as Delivery)) {
    problems.push({ field: 'output.delivery', value: delivery, rule: '"auto", "inline" or "upload"' });
  } else if (delivery === 'upload' && !bucket) {
    problems.push({
      field: 'output.delivery',
      value: delivery,
      rule: '"upload" needs a bucket on the worker (BUCKET_ENDPOINT_URL, BUCKET_ACCESS_KEY_ID, BUCKET_SECRET_ACCESS_KEY), and none is set',
    });
  }
  if (format !== undefined && !FORMATS.includes(format as ImageFormat)) {
    problems.push({ field: 'output.format', value: format, rule: '"png", "webp" or "jpeg"' });
  }
  if (quality !== undefined && !(Number.isInteger(quality) && (quality as number) >= 1 && (quality as number) <= 100)) {
    problems.push({ field: 'output.quality', value: quality, rule: 'a whole number from 1 to 100' });
  } else if (quality !== undefined && (format === undefined || format === 'png')) {
    problems.push({ field: 'output.quality', value: quality, rule: 'only with "format": "webp" or "jpeg"' });
  }
  return problems;
}

/** The choice an `output` block makes (one without problems), the defaults filled in. */
export function readOutputChoice(block: unknown): OutputChoice {
  const record = (block ?? {}) as Partial<OutputChoice>;
  return {
    delivery: record.delivery ?? DEFAULT_OUTPUT.delivery,
    format: record.format ?? DEFAULT_OUTPUT.format,
    quality: record.quality ?? DEFAULT_OUTPUT.quality,
  };
}
