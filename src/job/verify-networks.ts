/**
 * The extra networks a generation names, checked against what A1111 lists before anything is
 * generated (its extension scripts: verify-scripts.ts):
 *
 * - `<lora:NAME:WEIGHT>` and `<lyco:NAME:...>` tags in the prompt, the negative prompt and the hires
 *   prompts must name a LoRA of GET /sdapi/v1/loras, by its name (the file's stem) or its alias, as the
 *   built-in Lora extension looks them up. v1.9.3 logs "Couldn't find network with name …" and renders
 *   without it.
 * - `override_settings.sd_vae` must be "Automatic", "None" or a VAE of GET /sdapi/v1/sd-vae. v1.9.3
 *   falls back to the checkpoint's own VAE without a word.
 *
 * A name A1111 does not list is looked for once more after the matching refresh route (a file put in
 * the folder since A1111 started). A LoRA or VAE the job's `model` block brings with a URL is then
 * downloaded into LORA_DIR or VAE_DIR (through the checkpoints' guarded, hash-checked, shared download)
 * and A1111 is asked to rescan; what is still missing fails MODEL_NOT_FOUND with the closest names.
 */
import type { A1111Client } from '../a1111/client.js';
import { closeNames, listNames } from '../a1111/names.js';
import type { A1111Request } from '../a1111/request-fields.js';
import { WorkerError } from '../errors.js';
import type { DownloadProgress, ModelDownloader } from '../models/downloads.js';
import type { NetworkSource, NetworkSources } from '../models/model-source.js';

const PROMPT_FIELDS = ['prompt', 'negative_prompt', 'hr_prompt', 'hr_negative_prompt'] as const;
/** A1111's `<name:args>` syntax (modules/extra_networks.py), for the two names the Lora extension takes. */
const NETWORK_TAG = /<(lora|lyco):([^>]+)>/gi;
const VAE_WORDS = new Set(['Automatic', 'None']);

/** The LoRAs a request's prompts name, with the field each first appears in. */
export function loraTags(request: A1111Request): { name: string; field: string }[] {
  const found = new Map<string, string>();
  for (const field of PROMPT_FIELDS) {
    const text = request[field];
    if (typeof text !== 'string') continue;
    // The hires prompts are read only for the hires pass.
    if (field.startsWith('hr_') && request['enable_hr'] !== true) continue;
    for (const match of text.matchAll(NETWORK_TAG)) {
      // As A1111 splits a tag's arguments: no trimming (`<lora: x:1>` names " x").
      const name = match[2]!.split(':')[0]!;
      if (name && !found.has(name)) found.set(name, field);
    }
  }
  return [...found].map(([name, field]) => ({ name, field }));
}

async function missingAfterRefresh(
  kind: 'loras' | 'vae' | 'embeddings',
  wanted: readonly string[],
  list: () => Promise<string[]>,
  client: A1111Client,
  signal?: AbortSignal,
): Promise<{ missing: string[]; known: string[] }> {
  let known = await list();
  let missing = wanted.filter((name) => !known.includes(name));
  if (missing.length === 0) return { missing, known };
  await client.refreshNetworks(kind, signal);
  known = await list();
  missing = wanted.filter((name) => !known.includes(name));
  return { missing, known };
}

export interface NetworkDeps {
  client: A1111Client;
  downloader: ModelDownloader;
  onDownloadProgress?: (progress: DownloadProgress) => void;
}

/** A file's name without its ending: the name A1111 lists a LoRA, an embedding or a ControlNet model by. */
export const stem = (file: string) => file.replace(/\.(safetensors|pth|pt|ckpt|bin)$/i, '');

const WHAT = { lora: 'LoRA', vae: 'VAE', embedding: 'embedding', controlnet: 'ControlNet model' } as const;

/**
 * Downloads each source (one with a URL) into its kind's folder, one after the other, noting each file
 * downloaded or found on disk already.
 */
export async function downloadSources(
  kind: keyof typeof WHAT,
  sources: readonly NetworkSource[],
  deps: NetworkDeps,
  notes: string[],
  signal?: AbortSignal,
): Promise<void> {
  for (const source of sources) {
    if (!source.url) continue;
    const result = await deps.downloader.fetch(
      { checkpoint: source.file, url: source.url, ...(source.sha256 ? { sha256: source.sha256 } : {}) },
      {
        kind,
        ...(signal ? { signal } : {}),
        ...(deps.onDownloadProgress ? { onProgress: deps.onDownloadProgress } : {}),
      },
    );
    notes.push(
      result.reused
        ? `${WHAT[kind]} "${source.file}" was on disk but not listed; A1111 was asked to look again`
        : `${WHAT[kind]} "${source.file}" downloaded (${result.bytes} bytes)`,
    );
  }
}

/**
 * Downloads the sources of `missing` names the job brings (into LORA_DIR or VAE_DIR, shared with other
 * jobs), asks A1111 to rescan, and returns the names still missing and the list as it is now.
 */
async function downloadMissing(
  kind: 'lora' | 'vae' | 'embedding',
  missing: readonly string[],
  sources: readonly NetworkSource[],
  nameOf: (source: NetworkSource) => string,
  list: () => Promise<string[]>,
  deps: NetworkDeps,
  notes: string[],
  signal?: AbortSignal,
): Promise<{ missing: string[]; known: string[]; downloaded: string[] }> {
  const toFetch = sources.filter((source) => source.url && missing.includes(nameOf(source)));
  if (toFetch.length === 0) return { missing: [...missing], known: await list(), downloaded: [] };
  await downloadSources(kind, toFetch, deps, notes, signal);
  const route = ({ lora: 'loras', vae: 'vae', embedding: 'embeddings' } as const)[kind];
  await deps.client.refreshNetworks(route, signal);
  const known = await list();
  return {
    missing: missing.filter((name) => !known.includes(name)),
    known,
    downloaded: toFetch.map((source) => nameOf(source)),
  };
}

/**
 * Checks the LoRAs and the VAE a generation names, and downloads the ones its `model` block brings.
 *
 * @example
 * await verifyExtraNetworks(request, client, signal); // throws MODEL_NOT_FOUND for <lora:missing:1>
 */
export async function verifyExtraNetworks(
  request: A1111Request,
  deps: NetworkDeps,
  networks: NetworkSources | undefined,
  notes: string[],
  signal?: AbortSignal,
): Promise<void> {
  const { client } = deps;
  const brought = networks?.loras ?? [];
  const tags = [
    ...loraTags(request),
    ...brought.map((source) => ({ name: stem(source.file), field: 'model.loras' })),
  ].filter((tag, index, all) => all.findIndex((other) => other.name === tag.name) === index);
  if (tags.length > 0) {
    const names = async () => (await client.listLoras(signal)).flatMap((lora) => [lora.name, lora.alias ?? lora.name]);
    let { missing, known } = await missingAfterRefresh(
      'loras',
      tags.map((tag) => tag.name),
      names,
      client,
      signal,
    );
    let downloaded: string[] = [];
    if (missing.length > 0) {
      ({ missing, known, downloaded } = await downloadMissing(
        'lora',
        missing,
        brought,
        (source) => stem(source.file),
        names,
        deps,
        notes,
        signal,
      ));
    }
    if (missing.length > 0) {
      const unique = [...new Set(known)];
      const problems = missing.map((name) => {
        const field = tags.find((tag) => tag.name === name)!.field;
        return { field, requested: name, close: closeNames(name, unique) };
      });
      if (downloaded.some((name) => missing.includes(name))) {
        throw new WorkerError(
          'MODEL_NOT_FOUND',
          `LoRA ${listNames(missing)} is in LORA_DIR (${deps.downloader.folder('lora')}) but A1111 does not list it after refresh-loras: is LORA_DIR the folder A1111 scans?`,
          { details: { loras: problems, available: unique } },
        );
      }
      throw new WorkerError(
        'MODEL_NOT_FOUND',
        `${problems
          .map(
            ({ field, requested, close }) =>
              `LoRA "${requested}" (in ${field}) is not one A1111 lists; close: ${listNames(close)}`,
          )
          .join('; ')} (v1.9.3 would render without it, logging only "Couldn't find network")`,
        { details: { loras: problems, available: unique } },
      );
    }
  }

  // A VAE the job brings is the one it renders with, unless it names another.
  const broughtVae = networks?.vae ?? null;
  if (broughtVae && typeof request.override_settings?.['sd_vae'] !== 'string') {
    request.override_settings = { ...request.override_settings, sd_vae: broughtVae.file };
  }
  const vae = request.override_settings?.['sd_vae'];
  if (typeof vae === 'string' && !VAE_WORDS.has(vae)) {
    const names = async () => (await client.listVaes(signal)).map((item) => item.model_name);
    let { missing, known } = await missingAfterRefresh('vae', [vae], names, client, signal);
    if (missing.length > 0 && broughtVae?.file === vae) {
      ({ missing, known } = await downloadMissing(
        'vae',
        missing,
        [broughtVae],
        (s) => s.file,
        names,
        deps,
        notes,
        signal,
      ));
      if (missing.length > 0) {
        throw new WorkerError(
          'MODEL_NOT_FOUND',
          `VAE "${vae}" is in VAE_DIR (${deps.downloader.folder('vae')}) but A1111 does not list it after refresh-vae: is VAE_DIR the folder A1111 scans?`,
          { details: { field: 'model.vae', requested: vae, available: ['Automatic', 'None', ...known] } },
        );
      }
    }
    if (missing.length > 0) {
      throw new WorkerError(
        'MODEL_NOT_FOUND',
        `override_settings.sd_vae "${vae}" is not a VAE A1111 lists (v1.9.3 would silently use the checkpoint's own); available: "Automatic", "None"${known.length > 0 ? `, ${listNames(known)}` : ''}`,
        { details: { field: 'override_settings.sd_vae', requested: vae, available: ['Automatic', 'None', ...known] } },
      );
    }
  }
}

/**
 * The textual-inversion embeddings a job's `model` block brings must be ones A1111 loaded (GET
 * /sdapi/v1/embeddings, by the file's stem, the name a prompt uses): after a rescan, a missing one with a
 * URL is downloaded into EMBEDDINGS_DIR; one A1111 skipped was made for another model family.
 */
export async function verifyEmbeddings(
  networks: NetworkSources | undefined,
  deps: NetworkDeps,
  notes: string[],
  signal?: AbortSignal,
): Promise<void> {
  const brought = networks?.embeddings ?? [];
  if (brought.length === 0) return;
  const { client } = deps;
  let skipped: string[] = [];
  const names = async () => {
    const listed = await client.listEmbeddings(signal);
    skipped = Object.keys(listed.skipped);
    return Object.keys(listed.loaded);
  };
  const wanted = brought.map((source) => stem(source.file));
  let { missing, known } = await missingAfterRefresh('embeddings', wanted, names, client, signal);
  if (missing.length > 0) {
    ({ missing, known } = await downloadMissing(
      'embedding',
      missing,
      brought,
      (source) => stem(source.file),
      names,
      deps,
      notes,
      signal,
    ));
  }
  if (missing.length === 0) return;
  const reasons = missing.map((name) =>
    skipped.includes(name)
      ? `embedding "${name}" was skipped by A1111: it was made for another model family than the checkpoint's`
      : `embedding "${name}" is not one A1111 loaded (in EMBEDDINGS_DIR, ${deps.downloader.folder('embedding')}, with a URL to download it from?); loaded: ${listNames(known)}`,
  );
  throw new WorkerError('MODEL_NOT_FOUND', reasons.join('; '), {
    details: { embeddings: missing, available: known, skipped },
  });
}
