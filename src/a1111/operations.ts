/**
 * Every A1111 v1.9.3 operation a job may ask for, and nothing else: the allow-list.
 *
 * A job names one with the envelope `{"api": {"method", "endpoint"}, "payload"}` (the input of
 * ashleykleynhans/runpod-worker-a1111) or, with a plain input, means txt2img. Each operation says how
 * the worker treats it:
 *
 * - `generation` (txt2img, img2img): input checks, model verification, A1111's queue, progress, interrupt;
 * - `image` (extras, interrogate): input checks, verification of upscaler names, A1111's queue;
 * - `info` (png-info): input checks, no queue (A1111 answers it beside a generation);
 * - `read` (the GET listings): nothing but the call;
 * - `write` (options, refresh-*): the call, through A1111's queue when A1111 takes its lock for it.
 *
 * Routes that must never be reachable from a job (server-kill, server-restart, server-stop, train and
 * create, and cmd-flags, whose answer holds the WebUI's --api-auth and --gradio-auth credentials) are
 * not here, so no job reaches them.
 */
import {
  EXTRA_BATCH_FIELDS,
  EXTRA_SINGLE_FIELDS,
  type FieldRule,
  IMG2IMG_FIELDS,
  INTERROGATE_FIELDS,
  PNG_INFO_FIELDS,
  TXT2IMG_FIELDS,
} from './request-fields.js';

export type OperationKind = 'generation' | 'image' | 'info' | 'read' | 'write';

export interface Operation {
  /** Method and path, the operation's identity in the machine and in journals: `POST /sdapi/v1/txt2img`. */
  key: string;
  /** The route's last part, for messages: `txt2img`, `sd-models`, `options`. */
  name: string;
  method: 'GET' | 'POST';
  /** The path under the WebUI's base URL: `/sdapi/v1/txt2img`. */
  path: string;
  kind: OperationKind;
  /** A1111 runs it under its one queue lock (behind any generation). */
  queued: boolean;
  /** The payload's known fields and their rules; null for routes that take no payload. */
  fields: Readonly<Record<string, FieldRule>> | null;
  /** Unknown payload keys go on to A1111 (extensions read them); otherwise they are refused. */
  openPayload: boolean;
  /** What the answer must look like (see client.ts). */
  answer: 'images' | 'extra-single' | 'extra-batch' | 'png-info' | 'interrogate' | 'null' | 'json';
}

const API = '/sdapi/v1';

function op(
  name: string,
  method: 'GET' | 'POST',
  kind: OperationKind,
  answer: Operation['answer'],
  options: {
    queued?: boolean;
    fields?: Readonly<Record<string, FieldRule>>;
    openPayload?: boolean;
    path?: string;
  } = {},
): Operation {
  const path = options.path ?? `${API}/${name}`;
  return {
    key: `${method} ${path}`,
    name,
    method,
    path,
    kind,
    queued: options.queued ?? false,
    fields: options.fields ?? null,
    openPayload: options.openPayload ?? false,
    answer,
  };
}

const read = (name: string, path?: string) => op(name, 'GET', 'read', 'json', path ? { path } : {});

/** The allow-list, in the order docs/operations.md describes it. */
export const OPERATIONS: readonly Operation[] = [
  op('txt2img', 'POST', 'generation', 'images', { queued: true, fields: TXT2IMG_FIELDS, openPayload: true }),
  op('img2img', 'POST', 'generation', 'images', { queued: true, fields: IMG2IMG_FIELDS, openPayload: true }),
  op('extra-single-image', 'POST', 'image', 'extra-single', { queued: true, fields: EXTRA_SINGLE_FIELDS }),
  op('extra-batch-images', 'POST', 'image', 'extra-batch', { queued: true, fields: EXTRA_BATCH_FIELDS }),
  op('interrogate', 'POST', 'image', 'interrogate', { queued: true, fields: INTERROGATE_FIELDS }),
  op('png-info', 'POST', 'info', 'png-info', { fields: PNG_INFO_FIELDS }),
  read('sd-models'),
  read('samplers'),
  read('schedulers'),
  read('upscalers'),
  read('latent-upscale-modes'),
  read('sd-vae'),
  read('loras'),
  read('embeddings'),
  read('hypernetworks'),
  read('face-restorers'),
  read('realesrgan-models'),
  read('prompt-styles'),
  read('scripts'),
  read('script-info'),
  read('extensions'),
  read('memory'),
  read('options'),
  read('progress'),
  read('model_list', '/controlnet/model_list'),
  // A checkpoint change through the options is verified like a job's checkpoint, and waits for A1111's
  // queue (v1.9.3 loads the new weights under its lock).
  op('options', 'POST', 'write', 'null', { queued: true, openPayload: true }),
  op('refresh-checkpoints', 'POST', 'write', 'null', { queued: true }),
  op('refresh-vae', 'POST', 'write', 'null', { queued: true }),
  op('refresh-embeddings', 'POST', 'write', 'null', { queued: true }),
  op('refresh-loras', 'POST', 'write', 'null'),
];

/** The txt2img operation: what a plain job input asks for. */
export const TXT2IMG = OPERATIONS[0]!;

/** The operation for a method and a path (`/sdapi/v1/...`), if it is on the allow-list. */
export function findOperation(method: string, path: string): Operation | undefined {
  return OPERATIONS.find((candidate) => candidate.method === method && candidate.path === path);
}

/** The operation of a key (`POST /sdapi/v1/img2img`), for the machine's actors. */
export function operationOf(key: string): Operation {
  const found = OPERATIONS.find((candidate) => candidate.key === key);
  if (!found) throw new Error(`no operation ${key}`);
  return found;
}
