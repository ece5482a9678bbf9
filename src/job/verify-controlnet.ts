/**
 * `verifyingModels` for ControlNet, which is not A1111's own but the sd-webui-controlnet extension's:
 * the models a generation's ControlNet units name (`alwayson_scripts.controlnet.args[i].model`) and
 * the ones its `model.controlnets` brings must be models the extension lists (GET
 * /controlnet/model_list, which rescans its folders first). The extension resolves a unit's name as
 * `find_closest_lora_model_name` does; a name it cannot resolve raises "model not found" inside the
 * unit, which A1111 logs as "Error running process" and renders the picture without that unit.
 */
import { createHash } from 'node:crypto';
import { open, readdir } from 'node:fs/promises';
import path from 'node:path';
import { closeNames, listNames } from '../a1111/names.js';
import type { A1111Request } from '../a1111/request-fields.js';
import { WorkerError } from '../errors.js';
import type { NetworkSource, NetworkSources } from '../models/model-source.js';
import { downloadSources, type NetworkDeps, stem } from './verify-networks.js';

/** A listed model's stem, as the extension keys its names: "Control_Canny [d14c016b]" → "control_canny". */
const listedStem = (listed: string) => listed.replace(/ \[[^\]]*\]$/, '').toLowerCase();

/**
 * The listed model a unit's name resolves to, as the extension resolves it: the listed "stem [hash]"
 * itself, the stem in any case, or else the shortest stem that contains the name. `exact` leaves out
 * the last (a file a job brings must be that file).
 *
 * @example
 * resolveControlNetModel('canny', ['control_v11p_sd15_canny [d14c016b]']); // 'control_v11p_sd15_canny [d14c016b]'
 */
export function resolveControlNetModel(name: string, listed: readonly string[], exact = false): string | null {
  if (listed.includes(name)) return name;
  const lower = name.toLowerCase();
  const stems = listed.map(listedStem);
  const same = stems.indexOf(lower);
  if (same >= 0) return listed[same]!;
  if (exact || lower === '') return null;
  const containing = listed
    .map((item, index) => ({ item, stem: stems[index]! }))
    .filter(({ stem: candidate }) => candidate.includes(lower))
    .sort((a, b) => a.stem.length - b.stem.length);
  return containing[0]?.item ?? null;
}

/** The extension's CN_MODEL_EXTS, compared as os.path.splitext gives them (with their case). */
const CONTROLNET_ENDINGS = ['.pt', '.pth', '.ckpt', '.safetensors', '.bin'];

/** A1111's short hash of a model file (sd_models.model_hash): sha256 of 64 KB from 1 MB in, 8 hex digits. */
async function shortModelHash(file: string): Promise<string> {
  const handle = await open(file, 'r');
  try {
    const slice = Buffer.alloc(0x10000);
    const { bytesRead } = await handle.read(slice, 0, slice.length, 0x100000);
    return createHash('sha256').update(slice.subarray(0, bytesRead)).digest('hex').slice(0, 8);
  } finally {
    await handle.close();
  }
}

/**
 * The file a "name [hash]" the extension's list leaves out stands for. The list has one entry per
 * name in any case (its `cn_models_names`), so of two files of one name in different folders only
 * one is listed; the extension still finds the other by its exact "name [hash]" (`cn_models`). Found
 * here when such a file is below CONTROLNET_DIR, the one folder of the extension's the worker knows.
 */
async function unlistedDuplicate(name: string, listed: readonly string[], folder: string): Promise<string | null> {
  const match = /^(.+) \[([0-9a-f]{8})\]$/.exec(name);
  if (!match || !listed.some((item) => listedStem(item) === match[1]!.toLowerCase())) return null;
  let entries: string[];
  try {
    entries = await readdir(folder, { recursive: true });
  } catch {
    return null;
  }
  for (const entry of entries) {
    const ending = path.extname(entry);
    if (!CONTROLNET_ENDINGS.includes(ending) || path.basename(entry, ending) !== match[1]) continue;
    const file = path.join(folder, entry);
    if ((await shortModelHash(file).catch(() => null)) === match[2]) return file;
  }
  return null;
}

interface WantedModel {
  name: string;
  field: string;
  source?: NetworkSource;
}

/** pydantic's reading of a bool, as the extension's ControlNetUnit reads `enabled` (false when missing). */
function isEnabled(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return value === 1;
  return typeof value === 'string' && ['1', 'on', 't', 'true', 'y', 'yes'].includes(value.toLowerCase());
}

/**
 * The models a request's enabled ControlNet units name, each with its field ("None" or none names
 * nothing), and a note for each unit that names a model but is not enabled: the extension's units are
 * off unless `"enabled": true`, and it leaves such a unit out without a word.
 */
export function controlNetUnitModels(request: A1111Request, notes: string[] = []): WantedModel[] {
  const scripts = request['alwayson_scripts'];
  if (typeof scripts !== 'object' || scripts === null || Array.isArray(scripts)) return [];
  const key = Object.keys(scripts).find((title) => title.toLowerCase() === 'controlnet');
  const args = key ? (scripts as Record<string, { args?: unknown }>)[key]?.args : undefined;
  if (!Array.isArray(args)) return [];
  return args.flatMap((unit: unknown, index) => {
    if (typeof unit !== 'object' || unit === null || Array.isArray(unit)) return [];
    const fields = unit as Record<string, unknown>;
    const model = fields['model'];
    if (typeof model !== 'string' || model === '' || model === 'None') return [];
    const field = `alwayson_scripts.${key}.args[${index}]`;
    if (!isEnabled(fields['enabled'])) {
      notes.push(`ControlNet unit ${field} is not enabled ("enabled": true), so the extension leaves it out`);
      return [];
    }
    return [{ name: model, field: `${field}.model` }];
  });
}

function unresolved(wanted: readonly WantedModel[], listed: readonly string[]): WantedModel[] {
  return wanted.filter((model) => !resolveControlNetModel(model.name, listed, model.source !== undefined));
}

/**
 * Checks the ControlNet models a generation needs, downloading the ones its `model` block brings into
 * CONTROLNET_DIR when the extension does not list them.
 *
 * @example
 * await verifyControlNet('txt2img', request, networks, deps, notes, signal); // MODEL_NOT_FOUND for an unknown unit model
 */
export async function verifyControlNet(
  tab: 'txt2img' | 'img2img',
  request: A1111Request,
  networks: NetworkSources | undefined,
  deps: NetworkDeps,
  notes: string[],
  signal?: AbortSignal,
): Promise<void> {
  const brought = networks?.controlnets ?? [];
  const wanted: WantedModel[] = [
    ...brought.map((source) => ({ name: stem(source.file), field: 'model.controlnets', source })),
    ...controlNetUnitModels(request, notes),
  ];
  if (wanted.length === 0) return;
  const { client } = deps;
  if (brought.length > 0 && !(await client.listScripts(signal))[tab].includes('controlnet')) {
    const rule = 'models for the sd-webui-controlnet extension, which this A1111 does not have';
    throw new WorkerError(
      'INVALID_INPUT',
      `invalid input: model.controlnets brings ${listNames(brought.map((source) => source.file))}, but this A1111 has no ControlNet extension (no "controlnet" script for ${tab}): use an image with sd-webui-controlnet installed`,
      { details: { problems: [{ field: 'model.controlnets', value: brought.map((source) => source.file), rule }] } },
    );
  }
  // The extension's list as it is; it rescans its folders (hashing each file) only when a name is
  // missing from it: a rescan empties the list a generation running meanwhile looks its model up in.
  let listed = await client.listControlNetModels(false, signal);
  let missing = unresolved(wanted, listed);
  if (missing.length > 0) {
    listed = await client.listControlNetModels(true, signal);
    missing = unresolved(wanted, listed);
  }
  const unlisted = new Map<WantedModel, string>();
  for (const model of missing) {
    const file = model.source
      ? null
      : await unlistedDuplicate(model.name, listed, deps.downloader.folder('controlnet'));
    if (file) unlisted.set(model, file);
  }
  missing = missing.filter((model) => !unlisted.has(model));
  const toFetch = missing.flatMap((model) => (model.source?.url ? [model.source] : []));
  if (toFetch.length > 0) {
    await downloadSources('controlnet', toFetch, deps, notes, signal);
    listed = await client.listControlNetModels(true, signal);
    missing = unresolved(wanted, listed).filter((model) => !unlisted.has(model));
  }
  const stillFetched = missing.filter((model) => model.source && toFetch.includes(model.source));
  if (stillFetched.length > 0) {
    throw new WorkerError(
      'MODEL_NOT_FOUND',
      `ControlNet model ${listNames(stillFetched.map((model) => model.name))} is in CONTROLNET_DIR (${deps.downloader.folder('controlnet')}) but the ControlNet extension does not list it: is CONTROLNET_DIR its models/ControlNet folder or its --controlnet-dir?`,
      {
        details: {
          controlnets: stillFetched.map(({ name, field }) => ({ field, requested: name })),
          available: listed,
        },
      },
    );
  }
  if (missing.length > 0) {
    const stems = listed.map(listedStem);
    const closeTo = (name: string) => closeNames(listedStem(name), stems).map((close) => listed[stems.indexOf(close)]!);
    const problems = missing.map(({ name, field }) => ({ field, requested: name, close: closeTo(name) }));
    throw new WorkerError(
      'MODEL_NOT_FOUND',
      `${problems
        .map(
          ({ field, requested, close }) =>
            `ControlNet model "${requested}" (in ${field}) is not one the ControlNet extension lists; close: ${listNames(close)}`,
        )
        .join('; ')} (the extension would fail that unit with "model not found" and A1111 would render without it)`,
      { details: { controlnets: problems, available: listed } },
    );
  }
  for (const [model, file] of unlisted) {
    const shown = resolveControlNetModel(model.name.replace(/ \[[0-9a-f]{8}\]$/, ''), listed, true);
    notes.push(
      `ControlNet model "${model.name}" (in ${model.field}) is ${file}: the extension lists "${shown}" for that name (two files of one name) and finds this one by its hash`,
    );
  }
  for (const model of wanted) {
    if (unlisted.has(model)) continue;
    const resolved = resolveControlNetModel(model.name, listed, model.source !== undefined);
    if (!model.source && resolved && resolved !== model.name && listedStem(resolved) !== model.name.toLowerCase()) {
      notes.push(`ControlNet model "${model.name}" (in ${model.field}) is "${resolved}", as the extension matches it`);
    }
  }
}
