/** Checkpoint downloads: where they go, where they may come from, and their limits. */
import { directory, hostList, integer, networkList, optionalText, settingGroup } from './declare.js';

export const MODEL_SETTINGS = settingGroup('Model downloads', {
  dir: directory('MODELS_DIR', {
    default: '/stable-diffusion-webui/models/Stable-diffusion',
    description:
      "Where downloaded checkpoints go: A1111's checkpoint folder (the one it scans on POST /sdapi/v1/refresh-checkpoints).",
  }),
  loraDir: directory('LORA_DIR', {
    default: '/stable-diffusion-webui/models/Lora',
    description:
      "Where the LoRAs a job's `model.loras` brings go: A1111's LoRA folder (the one it scans on POST /sdapi/v1/refresh-loras).",
  }),
  vaeDir: directory('VAE_DIR', {
    default: '/stable-diffusion-webui/models/VAE',
    description:
      "Where the VAE a job's `model.vae` brings goes: A1111's VAE folder (the one it scans on POST /sdapi/v1/refresh-vae).",
  }),
  embeddingsDir: directory('EMBEDDINGS_DIR', {
    default: '/stable-diffusion-webui/embeddings',
    description:
      "Where the textual-inversion embeddings a job's `model.embeddings` brings go: A1111's embeddings folder (`--embeddings-dir`, scanned on POST /sdapi/v1/refresh-embeddings).",
  }),
  controlnetDir: directory('CONTROLNET_DIR', {
    default: '/stable-diffusion-webui/models/ControlNet',
    description:
      "Where the ControlNet models a job's `model.controlnets` brings go: the sd-webui-controlnet extension's folder (`models/ControlNet`, or its `--controlnet-dir`), rescanned on GET /controlnet/model_list.",
  }),
  volumeDir: optionalText('MODEL_VOLUME_DIR', {
    description:
      'A network volume with the models (the volume image sets `/runpod-volume`): each model folder not set on its own is found on it, below `stable-diffusion-webui/` on a volume holding a WebUI install (the layout of ashleykleynhans/runpod-worker-a1111), else at its root (`models/Stable-diffusion`, `models/Lora`, `models/VAE`, `models/ControlNet`, `embeddings`). The WebUI gets the folders as MODELS_DIR, LORA_DIR, VAE_DIR, EMBEDDINGS_DIR and CONTROLNET_DIR in its environment.',
    rule: 'a directory path',
  }),
  allowedHosts: hostList('MODEL_DOWNLOAD_HOSTS', {
    default: 'huggingface.co,*.huggingface.co,hf.co,*.hf.co,civitai.com,*.civitai.com',
    description:
      "Hosts a job's model URL may name. Redirects from them may lead elsewhere (their CDNs), but never to a private address.",
  }),
  privateAllow: networkList('MODEL_DOWNLOAD_PRIVATE_ALLOW', {
    description:
      'Private, loopback or link-local networks downloads may reach after all (a model server on your own network), e.g. `10.0.0.0/8,127.0.0.1`. Everything else private is refused.',
  }),
  timeoutMs: integer('MODEL_DOWNLOAD_TIMEOUT_MS', {
    default: 1_800_000,
    min: 1_000,
    max: 86_400_000,
    description: 'Deadline of one checkpoint download.',
  }),
  maxBytes: integer('MODEL_DOWNLOAD_MAX_BYTES', {
    default: 17_179_869_184,
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    description: 'Largest checkpoint a job may download (16 GiB by default).',
  }),
  minFreeBytes: integer('MODEL_DOWNLOAD_MIN_FREE_BYTES', {
    default: 536_870_912,
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    description: 'Free disk space to keep beyond the downloaded file; a download that would eat into it is refused.',
  }),
  registryWaitMs: integer('MODEL_REGISTRY_WAIT_MS', {
    default: 3_000,
    min: 0,
    max: 600_000,
    description: 'After a model download and POST /sdapi/v1/refresh-checkpoints, pause before checking the API again.',
  }),
  hfToken: optionalText('HF_TOKEN', {
    description:
      'Hugging Face access token for gated checkpoints; sent only to Hugging Face hosts. Never taken from a job.',
    rule: 'any text',
    secret: true,
  }),
  civitaiToken: optionalText('CIVITAI_TOKEN', {
    description: 'Civitai API token; sent only to civitai.com. Never taken from a job.',
    rule: 'any text',
    secret: true,
  }),
});
