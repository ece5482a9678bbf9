/**
 * The worker's own `model` block of a generation's input: a checkpoint, and where to download it from
 * when A1111 does not have it. It never reaches A1111 (A1111 gets the checkpoint as an override). No
 * credentials may ride in a job: tokens come from the worker's environment.
 */

import { fileNameProblem } from '../models/model-source.js';
import type { InputProblem } from './envelope.js';

/** The worker's own input key, removed before the request goes to A1111. */
export const MODEL_KEY = 'model';
const MODEL_KEYS = new Set(['checkpoint', 'url', 'sha256']);
/** Keys and URL parameters that carry credentials; the job input must never hold one. */
export const TOKEN_NAME =
  /^(.*_)?(token|api[-_]?key|apikey|access[-_]?token|auth|authorization|password|secret|access[-_]?key([-_]?id)?|secret[-_]?(access[-_]?)?key|credentials?)$/i;
export const TOKEN_RULE =
  'no credentials: Hugging Face and Civitai tokens come from HF_TOKEN and CIVITAI_TOKEN on the worker, bucket keys from BUCKET_*';

export function modelProblems(model: unknown): InputProblem[] {
  if (typeof model !== 'object' || model === null || Array.isArray(model)) {
    return [
      {
        field: 'model',
        value: model,
        rule: 'an object {"checkpoint": "name.safetensors", "url"?: "https://...", "sha256"?: "..."}',
      },
    ];
  }
  const block = model as Record<string, unknown>;
  const problems: InputProblem[] = [];
  for (const key of Object.keys(block)) {
    if (TOKEN_NAME.test(key)) problems.push({ field: `model.${key}`, value: '***', rule: TOKEN_RULE });
    else if (!MODEL_KEYS.has(key))
      problems.push({ field: `model.${key}`, value: block[key], rule: 'one of checkpoint, url, sha256' });
  }
  const checkpoint = block['checkpoint'];
  const nameProblem = typeof checkpoint === 'string' ? fileNameProblem(checkpoint) : 'it must be text';
  if (nameProblem) {
    problems.push({
      field: 'model.checkpoint',
      value: checkpoint,
      rule: `a plain file name ending in .safetensors or .ckpt (${nameProblem})`,
    });
  }
  const url = block['url'];
  if (url !== undefined) {
    let parsed: URL | null = null;
    try {
      parsed = typeof url === 'string' ? new URL(url) : null;
    } catch {
      parsed = null;
    }
    if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
      problems.push({ field: 'model.url', value: url, rule: 'an absolute http(s) URL' });
    } else if (parsed.username || parsed.password || [...parsed.searchParams.keys()].some((k) => TOKEN_NAME.test(k))) {
      problems.push({
        field: 'model.url',
        value: `${parsed.protocol}//${parsed.host}${parsed.pathname}`,
        rule: TOKEN_RULE,
      });
    }
  }
  const sha256 = block['sha256'];
  if (sha256 !== undefined && (typeof sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(sha256))) {
    problems.push({ field: 'model.sha256', value: sha256, rule: "the 64 hexadecimal digits of the file's SHA-256" });
  }
  return problems;
}
