/**
 * `verifyingModels`: checks what the job names against what this A1111 really has, and rewrites names
 * A1111 v1.9.3 would mishandle.
 *
 * - A checkpoint in override_settings.sd_model_checkpoint must be listed by /sd-models (by title,
 *   model_name, file name or stem); 1.9.3 would silently render with another model. It is sent as the
 *   listed title. Otherwise MODEL_NOT_FOUND, with the list.
 * - Every override_settings key must be an A1111 option (1.9.3 answers an unknown key with a 500).
 * - LoRA tags in the prompts and override_settings.sd_vae must name what A1111 lists, and the
 *   always-on scripts scripts it has (verify-networks.ts, verify-scripts.ts).
 * - Samplers (sampler_name / sampler_index / hr_sampler_name) must be on the live /samplers list; 1.8-era
 *   names such as "DPM++ 2M Karras" are split into sampler + scheduler as A1111 1.10 does, aliases
 *   (k_euler) and case slips are mapped to the exact name. Schedulers must be on /schedulers.
 *
 * The lists come from the worker's catalog (catalog.ts).
 */
import type { VerifiedJob, VerifyModelsInput } from '../../machines/job.types.js';
import type { A1111Client } from '../a1111/client.js';
import { findCheckpoint, findClosestCheckpoint, resolveSampler, resolveScheduler } from '../a1111/names.js';
import { operationOf } from '../a1111/operations.js';
import type { A1111Request } from '../a1111/request-fields.js';
import type { SdModel } from '../a1111/schemas.js';
import { WorkerError } from '../errors.js';
import type { DownloadProgress, ModelDownloader } from '../models/downloads.js';
import type { A1111Catalog } from './catalog.js';
import { verifyControlNet } from './verify-controlnet.js';
import { verifyEmbeddings, verifyExtraNetworks } from './verify-networks.js';
import { verifyOptionsChange, verifyUpscalers } from './verify-other.js';
import { verifyAlwaysOnScripts } from './verify-scripts.js';

const SAME_SAMPLER = 'Use same sampler';
const SAME_SCHEDULER = 'Use same scheduler';

function listNames(names: readonly string[]): string {
  return names.map((n) => `"${n}"`).join(', ');
}

async function resolveSamplerField(
  request: A1111Request,
  field: 'sampler_name' | 'sampler_index' | 'hr_sampler_name',
  schedulerField: 'scheduler' | 'hr_scheduler',
  catalog: A1111Catalog,
  notes: string[],
  signal?: AbortSignal,
): Promise<void> {
  const requested = request[field];
  if (typeof requested !== 'string' || requested === SAME_SAMPLER) return;
  let data = await catalog.get(signal);
  let resolved = resolveSampler(requested, data.samplers, data.schedulers);
  if (!resolved) {
    data = await catalog.refresh(signal);
    resolved = resolveSampler(requested, data.samplers, data.schedulers);
  }
  if (!resolved) {
    const available = data.samplers.map((s) => s.name);
    throw new WorkerError(
      'INVALID_INPUT',
      `invalid input: ${field} = "${requested}" is not a sampler this A1111 offers; available: ${listNames(available)}`,
      {
        details: {
          problems: [{ field, value: requested, rule: 'a sampler name from GET /sdapi/v1/samplers' }],
          available,
        },
      },
    );
  }
  request[field] = resolved.name;
  if (resolved.how === 'renamed') notes.push(`${field} "${requested}" sent as "${resolved.name}"`);
  if (resolved.how !== 'split' || !resolved.scheduler) return;
  const given = request[schedulerField];
  const givenName = typeof given === 'string' && data.schedulers ? resolveScheduler(given, data.schedulers) : null;
  if (
    typeof given === 'string' &&
    givenName !== 'automatic' &&
    given !== SAME_SCHEDULER &&
    givenName !== resolved.scheduler
  ) {
    throw new WorkerError(
      'INVALID_INPUT',
      `invalid input: ${field} = "${requested}" names the scheduler "${resolved.scheduler}" but ${schedulerField} = "${given}"; give one of them`,
      {
        details: {
          problems: [{ field: schedulerField, value: given, rule: `empty, "Automatic" or "${resolved.scheduler}"` }],
        },
      },
    );
  }
  request[schedulerField] = resolved.scheduler;
  notes.push(
    `${field} "${requested}" split into ${field} "${resolved.name}" and ${schedulerField} "${resolved.scheduler}" (the A1111 1.9 naming)`,
  );
}

async function resolveSchedulerField(
  request: A1111Request,
  field: 'scheduler' | 'hr_scheduler',
  catalog: A1111Catalog,
  signal?: AbortSignal,
): Promise<void> {
  const requested = request[field];
  if (typeof requested !== 'string' || requested === SAME_SCHEDULER) return;
  let data = await catalog.get(signal);
  if (!data.schedulers) return; // before 1.9.1 there is nothing to check against
  let name = resolveScheduler(requested, data.schedulers);
  if (!name) {
    data = await catalog.refresh(signal);
    name = data.schedulers ? resolveScheduler(requested, data.schedulers) : requested;
  }
  if (!name) {
    const available = (data.schedulers ?? []).map((s) => s.name);
    throw new WorkerError(
      'INVALID_INPUT',
      `invalid input: ${field} = "${requested}" is not a scheduler this A1111 offers (v1.9.3 would silently use the default); available: ${listNames(available)}`,
      {
        details: {
          problems: [{ field, value: requested, rule: 'a scheduler name from GET /sdapi/v1/schedulers' }],
          available,
        },
      },
    );
  }
  request[field] = name;
}

async function checkOverrideKeys(request: A1111Request, catalog: A1111Catalog, signal?: AbortSignal): Promise<void> {
  const overrides = request.override_settings;
  if (!overrides) return;
  const unknown = await catalog.unknownOptions(Object.keys(overrides), signal);
  if (unknown.length > 0) {
    throw new WorkerError(
      'INVALID_INPUT',
      `invalid input: override_settings has ${unknown.map((k) => `"${k}"`).join(', ')}, which GET /sdapi/v1/options does not list (A1111 would fail with a 500 KeyError)`,
      {
        details: {
          problems: unknown.map((key) => ({
            field: `override_settings.${key}`,
            value: overrides[key] ?? null,
            rule: 'an option name from GET /sdapi/v1/options',
          })),
        },
      },
    );
  }
}

/**
 * The other fields that name a checkpoint, and the values that name none: A1111 looks them up with a
 * fuzzy match and fails with a 500 "Could not find checkpoint with name …" (or, for a path, reads it
 * nowhere) only after the job has waited for the GPU.
 */
const OTHER_CHECKPOINT_FIELDS = [
  { field: 'refiner_checkpoint', none: ['', 'None', 'none'], hiresOnly: false },
  // A1111 reads it only for the hires pass.
  { field: 'hr_checkpoint_name', none: ['', 'Use same checkpoint'], hiresOnly: true },
] as const;

function checkOtherCheckpoints(request: A1111Request, models: readonly SdModel[], notes: string[]): void {
  for (const { field, none, hiresOnly } of OTHER_CHECKPOINT_FIELDS) {
    const requested = request[field];
    if (typeof requested !== 'string' || (none as readonly string[]).includes(requested)) continue;
    if (hiresOnly && request['enable_hr'] !== true) continue;
    const found = findClosestCheckpoint(requested, models);
    if (!found) {
      const available = models.map((m) => m.title);
      throw new WorkerError(
        'MODEL_NOT_FOUND',
        `${field} "${requested}" is not a checkpoint A1111 lists (v1.9.3 would fail with a 500 after the job waited for the GPU); available: ${
          available.length > 0 ? listNames(available) : '(none)'
        }`,
        { details: { field, requested, available } },
      );
    }
    request[field] = found.title;
    if (found.title !== requested) notes.push(`${field} "${requested}" sent as "${found.title}"`);
  }
}

export interface VerifyDeps {
  client: A1111Client;
  catalog: A1111Catalog;
  downloader: ModelDownloader;
  /** Where a job's download progress goes (its progress posts). */
  onDownloadProgress?: (progress: DownloadProgress) => void;
}

/**
 * Checks a prepared job against the live A1111 and returns the request exactly as it will be sent.
 *
 * @example
 * const { request, notes } = await verifyModels(deps, { job, models, downloadDone: false });
 */
export async function verifyModels(
  deps: VerifyDeps,
  input: VerifyModelsInput,
  signal?: AbortSignal,
): Promise<VerifiedJob> {
  const notes: string[] = [];
  const operation = operationOf(input.job.operation);
  if (operation.kind === 'image') {
    return { request: await verifyUpscalers(input.job.request, deps.client, notes, signal), notes, downloaded: false };
  }
  if (operation.key === 'POST /sdapi/v1/options') {
    const models = () => (input.models ? Promise.resolve(input.models) : deps.client.listModels(signal));
    const request = await verifyOptionsChange(input.job.request, models, deps.catalog, notes, signal);
    return { request, notes, downloaded: false };
  }
  const request: A1111Request = { ...input.job.request };

  if (input.job.checkpoint !== null) {
    const models = input.models ?? (await deps.client.listModels(signal));
    const found = findCheckpoint(input.job.checkpoint, models);
    const source = input.job.model;
    if (!found && source?.url && !input.downloadDone) {
      const result = await deps.downloader.fetch(
        { ...source, url: source.url },
        { ...(signal ? { signal } : {}), ...(deps.onDownloadProgress ? { onProgress: deps.onDownloadProgress } : {}) },
      );
      notes.push(
        result.reused
          ? `checkpoint "${source.checkpoint}" was on disk but not listed; A1111 was asked to look again`
          : `checkpoint "${source.checkpoint}" downloaded (${result.bytes} bytes)`,
      );
      return { request, notes, downloaded: true };
    }
    if (!found && input.downloadDone) {
      const available = models.map((m) => m.title);
      throw new WorkerError(
        'MODEL_NOT_FOUND',
        `checkpoint "${input.job.checkpoint}" is in MODELS_DIR but A1111 does not list it after refresh-checkpoints (is MODELS_DIR the folder A1111 scans?); available: ${listNames(available)}`,
        { details: { requested: input.job.checkpoint, available } },
      );
    }
    if (!found) {
      const available = models.map((m) => m.title);
      throw new WorkerError(
        'MODEL_NOT_FOUND',
        `checkpoint "${input.job.checkpoint}" is not one A1111 lists (v1.9.3 would silently render with another model); available: ${
          available.length > 0 ? listNames(available) : '(none)'
        }`,
        { details: { requested: input.job.checkpoint, available } },
      );
    }
    request.override_settings = { ...request.override_settings, sd_model_checkpoint: found.title };
    if (found.title !== input.job.checkpoint)
      notes.push(`checkpoint "${input.job.checkpoint}" sent as "${found.title}"`);
  }

  if (OTHER_CHECKPOINT_FIELDS.some(({ field }) => typeof request[field] === 'string')) {
    checkOtherCheckpoints(request, input.models ?? (await deps.client.listModels(signal)), notes);
  }
  await checkOverrideKeys(request, deps.catalog, signal);
  const tab = operation.name === 'img2img' ? 'img2img' : 'txt2img';
  await verifyAlwaysOnScripts(tab, request, deps.client, signal);
  await verifyExtraNetworks(request, deps, input.job.networks, notes, signal);
  await verifyEmbeddings(input.job.networks, deps, notes, signal);
  await verifyControlNet(tab, request, input.job.networks, deps, notes, signal);
  const primary = typeof request.sampler_name === 'string' ? 'sampler_name' : 'sampler_index';
  await resolveSamplerField(request, primary, 'scheduler', deps.catalog, notes, signal);
  await resolveSchedulerField(request, 'scheduler', deps.catalog, signal);
  await resolveSamplerField(request, 'hr_sampler_name', 'hr_scheduler', deps.catalog, notes, signal);
  await resolveSchedulerField(request, 'hr_scheduler', deps.catalog, signal);
  return { request, notes, downloaded: false };
}
