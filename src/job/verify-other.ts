/**
 * `verifyingModels` for the operations that are no generation: the extras' upscaler names against
 * GET /sdapi/v1/upscalers (v1.9.3 answers an unknown one with a 500 after the job waited for the GPU),
 * and a change of options (POST /sdapi/v1/options): its checkpoint must be one A1111 lists (v1.9.3
 * answers 500 "model not found"), sent as its title, and every key an option of GET /sdapi/v1/options
 * (v1.9.3 answers 500 KeyError after it has applied the keys before it).
 */
import type { A1111Client } from '../a1111/client.js';
import { findCheckpoint } from '../a1111/names.js';
import type { A1111Request } from '../a1111/request-fields.js';
import type { SdModel } from '../a1111/schemas.js';
import { WorkerError } from '../errors.js';
import type { A1111Catalog } from './catalog.js';

const NONE = 'None';

function names(list: readonly string[]): string {
  return list.map((name) => `"${name}"`).join(', ');
}

/** The extras' upscalers, sent as A1111 names them (a case slip is mended, and noted). */
export async function verifyUpscalers(
  request: A1111Request,
  client: A1111Client,
  notes: string[],
  signal?: AbortSignal,
): Promise<A1111Request> {
  // v1.9.3 looks at upscaler_2 only when upscaler_1 is one: with "None" there is no upscaling at all.
  const fields =
    request['upscaler_1'] === NONE || request['upscaler_1'] === undefined
      ? []
      : (['upscaler_1', 'upscaler_2'] as const).filter(
          (field) => typeof request[field] === 'string' && request[field] !== NONE,
        );
  if (fields.length === 0) return request;
  const available = (await client.listUpscalers(signal)).map((upscaler) => upscaler.name);
  const verified = { ...request };
  for (const field of fields) {
    const requested = request[field] as string;
    const found =
      available.find((name) => name === requested) ??
      available.find((name) => name.toLowerCase() === requested.toLowerCase());
    if (!found) {
      throw new WorkerError(
        'INVALID_INPUT',
        `invalid input: ${field} = "${requested}" is not an upscaler this A1111 offers (v1.9.3 would fail with a 500 after waiting for the GPU); available: ${names(available)}`,
        {
          details: {
            problems: [{ field, value: requested, rule: 'an upscaler name from GET /sdapi/v1/upscalers, or "None"' }],
            available,
          },
        },
      );
    }
    verified[field] = found;
    if (found !== requested) notes.push(`${field} "${requested}" sent as "${found}"`);
  }
  return verified;
}

/** A change of A1111's options, checked before anything is changed. */
export async function verifyOptionsChange(
  request: A1111Request,
  models: () => Promise<SdModel[]>,
  catalog: A1111Catalog,
  notes: string[],
  signal?: AbortSignal,
): Promise<A1111Request> {
  const verified = { ...request };
  const checkpoint = request['sd_model_checkpoint'];
  if (checkpoint !== undefined) {
    const listed = await models();
    const found = typeof checkpoint === 'string' ? findCheckpoint(checkpoint, listed) : undefined;
    if (!found) {
      const available = listed.map((model) => model.title);
      throw new WorkerError(
        'MODEL_NOT_FOUND',
        `sd_model_checkpoint "${String(checkpoint)}" is not one A1111 lists (v1.9.3 would answer 500 "model not found"); available: ${
          available.length > 0 ? names(available) : '(none)'
        }`,
        { details: { requested: checkpoint, available } },
      );
    }
    verified['sd_model_checkpoint'] = found.title;
    if (found.title !== checkpoint) notes.push(`sd_model_checkpoint "${checkpoint}" sent as "${found.title}"`);
  }
  const unknown = await catalog.unknownOptions(Object.keys(request), signal);
  if (unknown.length > 0) {
    throw new WorkerError(
      'INVALID_INPUT',
      `invalid input: ${names(unknown)} ${unknown.length === 1 ? 'is' : 'are'} not an option GET /sdapi/v1/options lists (A1111 would fail with a 500 KeyError, keeping the keys before it)`,
      {
        details: {
          problems: unknown.map((key) => ({
            field: key,
            value: request[key] ?? null,
            rule: 'an option name from GET /sdapi/v1/options',
          })),
        },
      },
    );
  }
  return verified;
}
