/**
 * Model folders on a RunPod network volume (MODEL_VOLUME_DIR). Two layouts are in use, and both are read
 * unchanged: a volume laid out for this worker keeps A1111's model folders at its root
 * (`models/Stable-diffusion`, `models/Lora`, …, `embeddings`); a volume prepared for
 * ashleykleynhans/runpod-worker-a1111 holds a whole WebUI install, its folders below
 * `stable-diffusion-webui/`. A folder set on its own (MODELS_DIR, LORA_DIR, …) is kept as set.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import type { ModelSettings } from '../config/index.js';

type FolderKey = 'dir' | 'loraDir' | 'vaeDir' | 'embeddingsDir' | 'controlnetDir';

/** Each folder: the variable that sets it, and where it is below a layout's root. */
const FOLDERS: [FolderKey, string, string][] = [
  ['dir', 'MODELS_DIR', 'models/Stable-diffusion'],
  ['loraDir', 'LORA_DIR', 'models/Lora'],
  ['vaeDir', 'VAE_DIR', 'models/VAE'],
  ['embeddingsDir', 'EMBEDDINGS_DIR', 'embeddings'],
  ['controlnetDir', 'CONTROLNET_DIR', 'models/ControlNet'],
];

export interface VolumeLayout {
  /** `worker`: the folders at the volume's root; `webui-install`: below `stable-diffusion-webui/` on it. */
  layout: 'worker' | 'webui-install';
  root: string;
  /** The folders taken from the volume (the others were set on their own). */
  found: string[];
}

const isDirectory = (dir: string) => statSync(dir, { throwIfNoEntry: false })?.isDirectory() ?? false;

/**
 * The model settings with each folder not set on its own put on the volume, and the layout found; the
 * settings unchanged without MODEL_VOLUME_DIR.
 *
 * @example
 * const { settings, volume } = placeOnVolume(config.models, process.env);
 * // MODEL_VOLUME_DIR=/runpod-volume with /runpod-volume/stable-diffusion-webui/models present:
 * // settings.loraDir === '/runpod-volume/stable-diffusion-webui/models/Lora'
 */
export function placeOnVolume(
  settings: ModelSettings,
  env: NodeJS.ProcessEnv,
  exists: (dir: string) => boolean = isDirectory,
): { settings: ModelSettings; volume: VolumeLayout | null } {
  const volumeDir = settings.volumeDir;
  if (!volumeDir) return { settings, volume: null };
  const install = path.join(volumeDir, 'stable-diffusion-webui');
  const layout = exists(path.join(install, 'models')) ? 'webui-install' : 'worker';
  const root = layout === 'webui-install' ? install : volumeDir;
  const placed: ModelSettings = { ...settings };
  const found: string[] = [];
  for (const [key, variable, below] of FOLDERS) {
    if (env[variable]?.trim()) continue;
    placed[key] = path.join(root, below);
    found.push(variable);
  }
  return { settings: placed, volume: { layout, root, found } };
}

/** The folders as variables for the WebUI's environment, so its launch command can name them (`"$LORA_DIR"`). */
export function folderVariables(settings: ModelSettings): Record<string, string> {
  return Object.fromEntries(FOLDERS.map(([key, variable]) => [variable, settings[key]]));
}
