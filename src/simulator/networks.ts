/**
 * The simulator's LoRA and VAE folders, as A1111 v1.9.3 lists them: the built-in Lora extension's
 * `networks.available_networks` (every .safetensors/.pt/.ckpt below models/Lora, named by the file's
 * stem, its alias the stem too when the file has no `ss_output_name`) and `sd_vae.vae_dict` (every
 * .safetensors/.pt/.ckpt below models/VAE, keyed by file name). Each is read at start and again on its
 * refresh route only, as A1111 does. A prompt's tag for a LoRA that is not listed renders as if it were
 * not there, as v1.9.3 renders it (it only logs "Couldn't find network").
 */
import { createHash } from 'node:crypto';
import { open, readdir } from 'node:fs/promises';
import path from 'node:path';

const FILES = /\.(safetensors|pt|ckpt)$/i;
const EMBEDDING_FILES = /\.(safetensors|pt|bin)$/i;
/** The sd-webui-controlnet extension's CN_MODEL_EXTS (compared with their case, as os.path.splitext gives it). */
const CONTROLNET_FILES = /\.(pt|pth|ckpt|safetensors|bin)$/;

/**
 * The ControlNet models the simulator offers when it is given no folder for them, as a RunPod A1111
 * volume with ControlNet has them (SD 1.5 canny and depth, InstantID's two), with short hashes.
 */
export const CONTROLNET_MODELS = [
  'control_instant_id_sdxl [c5c25a50]',
  'control_v11f1p_sd15_depth [cfd03158]',
  'control_v11p_sd15_canny [d14c016b]',
  'ip-adapter_instant_id_sdxl [eb2d3ec0]',
];

/** sd_models.model_hash: the first 8 hex digits of the SHA-256 of 64 KiB read 1 MiB into the file. */
async function legacyHash(file: string): Promise<string> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(0x10000);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0x100000);
    return createHash('sha256').update(buffer.subarray(0, bytesRead)).digest('hex').slice(0, 8);
  } finally {
    await handle.close();
  }
}

async function filesBelow(dir: string | undefined, files: RegExp = FILES): Promise<string[]> {
  if (!dir) return [];
  const out: string[] = [];
  const walk = async (at: string) => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(at, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(at, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (files.test(entry.name)) out.push(path.resolve(full));
    }
  };
  await walk(dir);
  return out;
}

export interface LoraItem {
  name: string;
  alias: string;
  path: string;
  metadata: Record<string, never>;
}

export interface VaeItem {
  model_name: string;
  filename: string;
}

export class NetworkFolders {
  private loraItems: LoraItem[] = [];
  private vaeItems: VaeItem[] = [];
  private embeddingNames: string[] = [];

  constructor(
    private readonly dirs: {
      lora?: string | undefined;
      vae?: string | undefined;
      embeddings?: string | undefined;
      controlnet?: string | undefined;
    },
  ) {}

  private controlNetList: string[] | null = null;

  /**
   * GET /controlnet/model_list: the model files below the folder as "stem [hash]", sorted by file
   * name, "None" left out, one per stem in any case (the extension lists its `cn_models_names`: of
   * two files of one stem, the later one's entry, at the earlier one's place); read again when
   * `update` (the route's default), else as last read.
   */
  async controlNetModels(update = true): Promise<string[]> {
    if (update || !this.controlNetList) this.controlNetList = await this.scanControlNet();
    return [...this.controlNetList];
  }

  private async scanControlNet(): Promise<string[]> {
    if (this.dirs.controlnet === undefined) return [...CONTROLNET_MODELS];
    const files = (await filesBelow(this.dirs.controlnet, CONTROLNET_FILES)).sort((a, b) => {
      const [x, y] = [path.basename(a), path.basename(b)];
      return x < y ? -1 : x > y ? 1 : 0;
    });
    const byStem = new Map<string, string>();
    for (const file of files) {
      const name = path.basename(file).replace(CONTROLNET_FILES, '');
      if (name !== 'None') byStem.set(name.toLowerCase(), `${name} [${await legacyHash(file)}]`);
    }
    return [...byStem.values()];
  }

  /** textual_inversion.py: every .pt/.bin/.safetensors below the embeddings folder, named by its stem. */
  async scanEmbeddings(): Promise<void> {
    this.embeddingNames = (await filesBelow(this.dirs.embeddings, EMBEDDING_FILES)).map((file) =>
      path.basename(file).replace(EMBEDDING_FILES, ''),
    );
  }

  /** GET /sdapi/v1/embeddings, every one loaded (the simulator has no model family to skip them for). */
  embeddings(): { loaded: Record<string, unknown>; skipped: Record<string, unknown> } {
    const loaded = Object.fromEntries(
      this.embeddingNames.map((name) => [
        name,
        { step: null, sd_checkpoint: null, sd_checkpoint_name: null, shape: 768, vectors: 1 },
      ]),
    );
    return { loaded, skipped: {} };
  }

  async scanLoras(): Promise<void> {
    this.loraItems = (await filesBelow(this.dirs.lora)).map((file) => {
      const stem = path.basename(file).replace(FILES, '');
      return { name: stem, alias: stem, path: file, metadata: {} };
    });
  }

  async scanVaes(): Promise<void> {
    this.vaeItems = (await filesBelow(this.dirs.vae)).map((file) => ({
      model_name: path.basename(file),
      filename: file,
    }));
  }

  loras(): LoraItem[] {
    return this.loraItems.map((item) => ({ ...item }));
  }

  vaes(): VaeItem[] {
    return this.vaeItems.map((item) => ({ ...item }));
  }
}
