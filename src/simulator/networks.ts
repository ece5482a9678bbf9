/**
 * The simulator's LoRA and VAE folders, as A1111 v1.9.3 lists them: the built-in Lora extension's
 * `networks.available_networks` (every .safetensors/.pt/.ckpt below models/Lora, named by the file's
 * stem, its alias the stem too when the file has no `ss_output_name`) and `sd_vae.vae_dict` (every
 * .safetensors/.pt/.ckpt below models/VAE, keyed by file name). Each is read at start and again on its
 * refresh route only, as A1111 does. A prompt's tag for a LoRA that is not listed renders as if it were
 * not there, as v1.9.3 renders it (it only logs "Couldn't find network").
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';

const FILES = /\.(safetensors|pt|ckpt)$/i;
const EMBEDDING_FILES = /\.(safetensors|pt|bin)$/i;

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
    private readonly dirs: { lora?: string | undefined; vae?: string | undefined; embeddings?: string | undefined },
  ) {}

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
