/**
 * The worker's own `model` block of a generation's input: a checkpoint, the LoRAs, the VAE, the
 * embeddings and the ControlNet models it needs, and where to download each from when A1111 does not have it. It never reaches A1111 (A1111 gets the checkpoint as an override). No
 * credentials may ride in a job: tokens come from the worker's environment.
 */

import {
  fileNameProblem,
  NETWORK_EXTENSIONS,
  type NetworkSource,
  type NetworkSources,
  networkFileProblem,
} from '../models/model-source.js';
import type { InputProblem } from './envelope.js';

/** The worker's own input key, removed before the request goes to A1111. */
export const MODEL_KEY = 'model';
const NETWORK_LISTS = ['loras', 'embeddings', 'controlnets'] as const;
const MODEL_KEYS = new Set(['checkpoint', 'url', 'sha256', 'vae', ...NETWORK_LISTS]);
const NETWORK_KEYS = new Set(['file', 'url', 'sha256']);
/** Keys and URL parameters that carry credentials; the job input must never hold one. */
export const TOKEN_NAME =
  /^(.*_)?(token|api[-_]?key|apikey|access[-_]?token|auth|authorization|password|secret|access[-_]?key([-_]?id)?|secret[-_]?(access[-_]?)?key|credentials?)$/i;
export const TOKEN_RULE =
  'no credentials: Hugging Face and Civitai tokens come from HF_TOKEN and CIVITAI_TOKEN on the worker, bucket keys from BUCKET_*';

/** The problems of a source's `url` and `sha256` (a checkpoint's, a LoRA's, the VAE's). */
function sourceProblems(block: Record<string, unknown>, at: string): InputProblem[] {
  const problems: InputProblem[] = [];
  const url = block['url'];
  if (url !== undefined) {
    let parsed: URL | null = null;
    try {
      parsed = typeof url === 'string' ? new URL(url) : null;
    } catch {
      parsed = null;
    }
    if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
      problems.push({ field: `${at}.url`, value: url, rule: 'an absolute http(s) URL' });
    } else if (parsed.username || parsed.password || [...parsed.searchParams.keys()].some((k) => TOKEN_NAME.test(k))) {
      problems.push({
        field: `${at}.url`,
        value: `${parsed.protocol}//${parsed.host}${parsed.pathname}`,
        rule: TOKEN_RULE,
      });
    }
  }
  const sha256 = block['sha256'];
  if (sha256 !== undefined && (typeof sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(sha256))) {
    problems.push({ field: `${at}.sha256`, value: sha256, rule: "the 64 hexadecimal digits of the file's SHA-256" });
  }
  return problems;
}

const NETWORK_RULE = 'an object {"file": "name.safetensors", "url"?: "https://...", "sha256"?: "..."}';

/** The problems of a LoRA's, the VAE's, an embedding's or a ControlNet model's entry. */
function networkProblems(entry: unknown, at: string, kind: keyof typeof NETWORK_EXTENSIONS): InputProblem[] {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    return [{ field: at, value: entry, rule: NETWORK_RULE }];
  }
  const block = entry as Record<string, unknown>;
  const problems: InputProblem[] = [];
  for (const key of Object.keys(block)) {
    if (TOKEN_NAME.test(key)) problems.push({ field: `${at}.${key}`, value: '***', rule: TOKEN_RULE });
    else if (!NETWORK_KEYS.has(key))
      problems.push({ field: `${at}.${key}`, value: block[key], rule: 'one of file, url, sha256' });
  }
  const file = block['file'];
  const nameProblem = typeof file === 'string' ? networkFileProblem(file, kind) : 'it must be text';
  if (nameProblem) {
    const endings = NETWORK_EXTENSIONS[kind].map((ending) => `.${ending}`).join(', ');
    problems.push({
      field: `${at}.file`,
      value: file,
      rule: `a plain file name ending in ${endings} (${nameProblem})`,
    });
  }
  return [...problems, ...sourceProblems(block, at)];
}

export function modelProblems(model: unknown): InputProblem[] {
  if (typeof model !== 'object' || model === null || Array.isArray(model)) {
    return [
      {
        field: 'model',
        value: model,
        rule: 'an object {"checkpoint"?: "name.safetensors", "url"?: "https://...", "sha256"?: "...", "loras"?: [...], "vae"?: {...}, "embeddings"?: [...], "controlnets"?: [...]}',
      },
    ];
  }
  const block = model as Record<string, unknown>;
  const problems: InputProblem[] = [];
  for (const key of Object.keys(block)) {
    if (TOKEN_NAME.test(key)) problems.push({ field: `model.${key}`, value: '***', rule: TOKEN_RULE });
    else if (!MODEL_KEYS.has(key))
      problems.push({
        field: `model.${key}`,
        value: block[key],
        rule: 'one of checkpoint, url, sha256, loras, vae, embeddings, controlnets',
      });
  }
  const checkpoint = block['checkpoint'];
  const networks = block['vae'] !== undefined || NETWORK_LISTS.some((key) => block[key] !== undefined);
  if (checkpoint !== undefined || !networks) {
    const nameProblem = typeof checkpoint === 'string' ? fileNameProblem(checkpoint) : 'it must be text';
    if (nameProblem) {
      problems.push({
        field: 'model.checkpoint',
        value: checkpoint ?? null,
        rule: `a plain file name ending in .safetensors or .ckpt (${nameProblem})`,
      });
    }
  } else if (block['url'] !== undefined || block['sha256'] !== undefined) {
    problems.push({ field: 'model.url', value: block['url'] ?? null, rule: 'with a "checkpoint" to download' });
  }
  problems.push(...sourceProblems(block, 'model'));
  for (const [key, kind, what] of [
    ['loras', 'lora', 'LoRAs'],
    ['embeddings', 'embedding', 'embeddings'],
    ['controlnets', 'controlnet', 'ControlNet models'],
  ] as const) {
    const list = block[key];
    if (list === undefined) continue;
    if (!Array.isArray(list) || list.length === 0 || list.length > 20) {
      problems.push({ field: `model.${key}`, value: list, rule: `a list of 1 to 20 ${what}, each ${NETWORK_RULE}` });
    } else {
      list.forEach((entry, index) => {
        problems.push(...networkProblems(entry, `model.${key}[${index}]`, kind));
      });
    }
  }
  if (block['vae'] !== undefined) problems.push(...networkProblems(block['vae'], 'model.vae', 'vae'));
  return problems;
}

function networkSource(entry: Record<string, unknown>): NetworkSource {
  return {
    file: entry['file'] as string,
    ...(typeof entry['url'] === 'string' ? { url: entry['url'] } : {}),
    ...(typeof entry['sha256'] === 'string' ? { sha256: entry['sha256'] } : {}),
  };
}

/** The extra networks of a `model` block without problems; undefined when it names none. */
export function readNetworks(model: unknown): NetworkSources | undefined {
  const block = (model ?? {}) as Record<string, unknown>;
  if (block['vae'] === undefined && NETWORK_LISTS.every((key) => block[key] === undefined)) return undefined;
  const list = (key: string) => (Array.isArray(block[key]) ? (block[key] as Record<string, unknown>[]) : []);
  const vae = block['vae'] as Record<string, unknown> | undefined;
  return {
    loras: list('loras').map(networkSource),
    vae: vae ? networkSource(vae) : null,
    embeddings: list('embeddings').map(networkSource),
    controlnets: list('controlnets').map(networkSource),
  };
}
