/**
 * What a job's `model` block names: a checkpoint file, and where to download it from when A1111 does
 * not have it. The same shape from the input check to the download.
 */

/** The `model` block of a job's input. */
export interface ModelSource {
  checkpoint: string;
  url?: string;
  sha256?: string;
}

/** A LoRA, a VAE, an embedding or a ControlNet model a job's `model` block brings: its file name in A1111's folder, and where it comes from. */
export interface NetworkSource {
  file: string;
  url?: string;
  sha256?: string;
}

/** The extra networks of a job's `model` block. */
export interface NetworkSources {
  loras: NetworkSource[];
  vae: NetworkSource | null;
  embeddings: NetworkSource[];
  controlnets: NetworkSource[];
}

/**
 * The file endings A1111 loads for each kind (LoRAs and VAEs: networks.py, sd_vae.py; embeddings:
 * textual_inversion.py; ControlNet models: the sd-webui-controlnet extension's CN_MODEL_EXTS).
 */
export const NETWORK_EXTENSIONS = {
  lora: ['safetensors', 'pt', 'ckpt'],
  vae: ['safetensors', 'pt', 'ckpt'],
  embedding: ['safetensors', 'pt', 'bin'],
  controlnet: ['safetensors', 'pth', 'pt', 'ckpt', 'bin'],
} as const;

/** The reason a LoRA, VAE, embedding or ControlNet model file name is refused, or null for a plain name A1111 loads. */
export function networkFileProblem(name: string, kind: keyof typeof NETWORK_EXTENSIONS = 'lora'): string | null {
  const endings: readonly string[] = NETWORK_EXTENSIONS[kind];
  if (name.includes('/') || name.includes('\\')) return 'it must not contain a path separator';
  if (name.includes('..')) return 'it must not contain ".."';
  const ending = /\.([a-z]+)$/.exec(name)?.[1];
  if (!ending || !endings.includes(ending)) return `it must end in ${endings.map((e) => `.${e}`).join(', ')}`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._ ()+-]*$/.test(name) || name.length > 200) {
    return 'it must be a plain file name (letters, digits, space, . _ - + ( ), at most 200 characters)';
  }
  return null;
}

const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._ ()+-]*\.(safetensors|ckpt)$/;

/** The reason a checkpoint file name is refused, or null when it is a plain .safetensors/.ckpt name. */
export function fileNameProblem(name: string): string | null {
  if (name.includes('/') || name.includes('\\')) return 'it must not contain a path separator';
  if (name.includes('..')) return 'it must not contain ".."';
  if (!/\.(safetensors|ckpt)$/.test(name)) return 'it must end in .safetensors or .ckpt';
  // A1111 leaves these out of its checkpoint list (sd_models.py ext_blacklist): the job could never use it.
  if (/\.vae\.(safetensors|ckpt)$/i.test(name))
    return 'it must not end in .vae.safetensors or .vae.ckpt, which A1111 takes for a VAE';
  if (!FILE_NAME.test(name) || name.length > 200) {
    return 'it must be a plain file name (letters, digits, space, . _ - + ( ), at most 200 characters)';
  }
  return null;
}
