/**
 * What a 200 from A1111 must be, per operation, before it is a job's success: the shape of its model
 * (images, parameters and info for the generations; html_info and the image(s) for the extras; info,
 * items and parameters for png-info; a caption for interrogate), and pictures that look whole
 * (picture-check.ts). An answer that is not JSON, of another shape, or whose images are no pictures is
 * A1111's failure (BACKEND_ERROR), never handed on as a result.
 *
 * The generations' answers keep their images as undecoded bytes (images-answer.ts); any object answer
 * remembers its bytes, so it is posted to RunPod as it came (src/json/source-bytes.ts).
 */
import type { z } from 'zod';
import { WorkerError } from '../errors.js';
import { rememberSourceBytes } from '../json/source-bytes.js';
import { pathOf } from './classify.js';
import { badImage, imageStats, parseImagesAnswer } from './images-answer.js';
import type { Operation } from './operations.js';
import { pictureProblemOf } from './picture-check.js';
import type { A1111Request } from './request-fields.js';
import {
  AnyJsonSchema,
  ExtraBatchResponseSchema,
  ExtraSingleResponseSchema,
  InterrogateResponseSchema,
  PngInfoResponseSchema,
  Txt2ImgResponseSchema,
  Txt2ImgRestSchema,
} from './schemas.js';

const SCHEMAS: Record<Exclude<Operation['answer'], 'images'>, z.ZodType> = {
  'extra-single': ExtraSingleResponseSchema,
  'extra-batch': ExtraBatchResponseSchema,
  'png-info': PngInfoResponseSchema,
  interrogate: InterrogateResponseSchema,
  null: AnyJsonSchema,
  json: AnyJsonSchema,
};

function notAPicture(operation: Operation, problem: string): WorkerError {
  return new WorkerError(
    'BACKEND_ERROR',
    `A1111 answered ${operation.method} ${pathOf({ method: operation.method, route: '', path: operation.path })} with 200, but ${problem}`,
    { details: { method: operation.method, route: operation.path } },
  );
}

/** The images-first answer of a generation: images checked at their ends, still undecoded. */
function generationAnswer(operation: Operation, request: A1111Request, raw: Buffer): Record<string, unknown> {
  const { value, lazyImages } = parseImagesAnswer(raw);
  // With lazily decoded images, the images were checked while locating them; the rest is checked here
  // without reading them, and the object itself is kept (zod would copy it, decoding them).
  if (lazyImages) Txt2ImgRestSchema.parse({ parameters: value['parameters'], info: value['info'] });
  const parsed = lazyImages ? value : (Txt2ImgResponseSchema.parse(value) as Record<string, unknown>);
  const images = parsed as { images: string[] };
  const { count } = imageStats(images);
  // A success must hold pictures: a string that is none would be handed to the client as one.
  const broken = count === 0 && request['send_images'] !== false ? 'with no images' : badImage(images);
  if (broken) throw notAPicture(operation, broken);
  return parsed;
}

/**
 * The parsed answer of a successful call; throws a SyntaxError, a ZodError or a WorkerError otherwise
 * (the client classifies them).
 *
 * @example
 * const answer = readAnswer(operation, request, bytes);
 */
export function readAnswer(operation: Operation, request: A1111Request, raw: Buffer): unknown {
  let parsed: unknown;
  if (operation.answer === 'images') parsed = generationAnswer(operation, request, raw);
  else {
    parsed = SCHEMAS[operation.answer].parse(JSON.parse(raw.length === 0 ? 'null' : raw.toString('utf8')));
    const pictures =
      operation.answer === 'extra-single'
        ? [(parsed as { image: string }).image]
        : operation.answer === 'extra-batch'
          ? (parsed as { images: string[] }).images
          : [];
    for (const [index, picture] of pictures.entries()) {
      const problem = pictureProblemOf(picture);
      if (problem)
        throw notAPicture(
          operation,
          `${operation.answer === 'extra-single' ? 'image' : `images[${index}]`} is ${problem}`,
        );
    }
  }
  // An object is posted to RunPod as the bytes it came in (with the worker's key appended).
  if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) && raw.at(-1) === 0x7d) {
    rememberSourceBytes(parsed, raw);
  }
  return parsed;
}
