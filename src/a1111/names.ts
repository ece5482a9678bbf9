/**
 * Resolving the names a job gives (sampler, scheduler, checkpoint) against A1111's live lists.
 *
 * A1111 v1.9.3 is unforgiving here: a sampler must match exactly (aliases such as `k_euler` and
 * 1.8-era names such as "DPM++ 2M Karras" get 404 "Sampler not found"), an unknown scheduler silently
 * falls back to the model's default, and an unknown checkpoint is silently replaced by the loaded one.
 * These functions do what A1111 1.10 does for old sampler names and refuse what 1.9.3 would ignore.
 */
import path from 'node:path';
import type { Sampler, Scheduler, SdModel } from './schemas.js';

export interface ResolvedSampler {
  /** The exact name A1111 lists. */
  name: string;
  /** The scheduler split off a combined name ("DPM++ 2M Karras" → "karras"). */
  scheduler?: string;
  how: 'exact' | 'renamed' | 'split';
}

function findSampler(requested: string, samplers: readonly Sampler[]): Sampler | undefined {
  const exact = samplers.find((s) => s.name === requested);
  if (exact) return exact;
  const lower = requested.toLowerCase();
  return samplers.find((s) => s.name.toLowerCase() === lower || s.aliases.some((a) => a.toLowerCase() === lower));
}

function schedulerNames(scheduler: Scheduler): string[] {
  return [scheduler.name, scheduler.label, ...(scheduler.aliases ?? [])];
}

/**
 * Resolves a sampler name. `null` when nothing matches.
 *
 * @example
 * resolveSampler('DPM++ 2M Karras', samplers, schedulers); // { name: 'DPM++ 2M', scheduler: 'karras', how: 'split' }
 */
export function resolveSampler(
  requested: string,
  samplers: readonly Sampler[],
  schedulers: readonly Scheduler[] | null,
): ResolvedSampler | null {
  const direct = findSampler(requested, samplers);
  if (direct) return { name: direct.name, how: direct.name === requested ? 'exact' : 'renamed' };
  if (!schedulers) return null;
  const lower = requested.toLowerCase();
  for (const scheduler of schedulers) {
    for (const schedulerName of schedulerNames(scheduler)) {
      if (schedulerName.toLowerCase() === 'automatic') continue;
      const suffix = ` ${schedulerName.toLowerCase()}`;
      if (!lower.endsWith(suffix)) continue;
      const sampler = findSampler(requested.slice(0, -suffix.length), samplers);
      if (sampler) return { name: sampler.name, scheduler: scheduler.name, how: 'split' };
    }
  }
  return null;
}

/** Resolves a scheduler by name, label or alias (any case) to its name; `null` when unknown. */
export function resolveScheduler(requested: string, schedulers: readonly Scheduler[]): string | null {
  const lower = requested.toLowerCase();
  const found = schedulers.find((s) => schedulerNames(s).some((n) => n.toLowerCase() === lower));
  return found ? found.name : null;
}

function stem(fileName: string): string {
  return fileName.replace(/\.(safetensors|ckpt)$/i, '');
}

/**
 * The names a checkpoint can be asked for by: title, model_name, file path, file name and stem, and
 * once A1111 has hashed it, its shorthash, sha256 and "name [shorthash]" / "stem [shorthash]".
 */
export function checkpointNames(model: SdModel): string[] {
  const base = path.basename(model.filename.replaceAll('\\', '/'));
  const titleWithoutHash = model.title.replace(/ \[[0-9a-f]{8,10}\]$/, '');
  const names = [
    model.title,
    titleWithoutHash,
    stem(titleWithoutHash),
    model.model_name,
    model.filename,
    base,
    stem(base),
  ];
  const short = typeof model.hash === 'string' && model.hash !== '' ? model.hash : null;
  const sha256 = typeof model.sha256 === 'string' && model.sha256 !== '' ? model.sha256 : null;
  if (short) names.push(short, `${titleWithoutHash} [${short}]`, `${stem(base)} [${short}]`);
  if (sha256) names.push(sha256);
  return names;
}

/**
 * Finds the checkpoint a job names, by title, model_name, file name or stem.
 *
 * @example
 * findCheckpoint('dreamshaper_8', models)?.title; // 'dreamshaper_8.safetensors'
 */
export function findCheckpoint(requested: string, models: readonly SdModel[]): SdModel | undefined {
  const exact = models.find((m) => checkpointNames(m).includes(requested));
  if (exact) return exact;
  const lower = requested.toLowerCase();
  return models.find((m) => checkpointNames(m).some((n) => n.toLowerCase() === lower));
}

/**
 * Finds a checkpoint the way A1111 finds a refiner or a hires-pass checkpoint
 * (`sd_models.get_closet_checkpoint_match`): any name {@link findCheckpoint} knows, else the shortest
 * title that contains the text.
 *
 * @example
 * findClosestCheckpoint('refiner', models)?.title; // 'sd_xl_refiner_1.0.safetensors'
 */
export function findClosestCheckpoint(requested: string, models: readonly SdModel[]): SdModel | undefined {
  const named = findCheckpoint(requested, models);
  if (named || requested === '') return named;
  return models.filter((m) => m.title.includes(requested)).sort((a, b) => a.title.length - b.title.length)[0];
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

/** Up to five names close to `name` (case aside, a few edits away, or containing it); every name when none is. */
export function closeNames(name: string, candidates: readonly string[]): string[] {
  const wanted = name.toLowerCase();
  const scored = candidates
    .map((candidate) => {
      const lower = candidate.toLowerCase();
      const score = lower.includes(wanted) || wanted.includes(lower) ? 0 : distance(wanted, lower);
      return { candidate, score };
    })
    .filter(({ score }) => score <= Math.max(2, Math.floor(wanted.length / 3)))
    .sort((a, b) => a.score - b.score)
    .map(({ candidate }) => candidate);
  return scored.length > 0 ? scored.slice(0, 5) : candidates.slice(0, 20);
}

/** Names as a message lists them: quoted, comma-separated; `(none)` for none. */
export function listNames(names: readonly string[]): string {
  return names.length > 0 ? names.map((n) => `"${n}"`).join(', ') : '(none)';
}
