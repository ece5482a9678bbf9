/**
 * The simulator's checkpoint registry, as A1111 v1.9.3 runs with `--no-hashing`: the `--ckpt` file
 * first, then every .safetensors/.ckpt below the models directory (recursively, `*.vae.*` skipped).
 * Titles carry no hash; a checkpoint answers to its title, name, model_name and file stem.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';

export interface CheckpointItem {
  title: string;
  model_name: string;
  hash: null;
  sha256: null;
  filename: string;
  config: null;
}

const EXTENSIONS = /\.(safetensors|ckpt)$/i;

function toItem(name: string, filename: string): CheckpointItem {
  return {
    title: name,
    model_name: name.replace(EXTENSIONS, '').replaceAll('/', '_').replaceAll('\\', '_'),
    hash: null,
    sha256: null,
    filename,
    config: null,
  };
}

async function walk(dir: string, root: string, out: string[]): Promise<void> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) await walk(full, root, out);
    else if (EXTENSIONS.test(entry.name) && !/\.vae\./i.test(entry.name)) out.push(full);
  }
}

export class CheckpointRegistry {
  private items: CheckpointItem[] = [];

  constructor(
    private readonly ckpt: string | null,
    private readonly modelsDir: string | null,
  ) {}

  /** Re-reads the models directory (`list_models`). */
  async scan(): Promise<void> {
    const found: string[] = [];
    if (this.modelsDir) await walk(this.modelsDir, this.modelsDir, found);
    const items: CheckpointItem[] = [];
    if (this.ckpt) items.push(toItem(path.basename(this.ckpt), this.ckpt));
    for (const file of found) {
      if (this.ckpt && path.resolve(file) === path.resolve(this.ckpt)) continue;
      const name = path.relative(this.modelsDir!, file).split(path.sep).join('/');
      items.push(toItem(name, path.resolve(file)));
    }
    this.items = items;
  }

  list(): CheckpointItem[] {
    return this.items.map((item) => ({ ...item }));
  }

  /** `get_closet_checkpoint_match`: an alias, else the shortest title containing the text. */
  closest(text: string): CheckpointItem | undefined {
    return (
      this.find(text) ??
      this.items.filter((item) => item.title.includes(text)).sort((a, b) => a.title.length - b.title.length)[0]
    );
  }

  /** `checkpoint_aliases` lookup: title, name, model_name and stem. */
  find(alias: string): CheckpointItem | undefined {
    return this.items.find(
      (item) =>
        item.title === alias ||
        item.model_name === alias ||
        stemOf(item) === alias ||
        item.title.replace(EXTENSIONS, '') === alias,
    );
  }
}

/** `name_for_extra`: the file name without directory and extension; what `info.sd_model_name` shows. */
export function stemOf(item: CheckpointItem): string {
  return path.basename(item.filename).replace(EXTENSIONS, '');
}
