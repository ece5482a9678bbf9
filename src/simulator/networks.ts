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

async function filesBelow(dir: string | undefined): Promise<string[]> {
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
      else if (FILES.test(entry.name)) out.push(path.resolve(full));
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

  constructor(private readonly dirs: { lora?: string | undefined; vae?: string | undefined }) {}

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
