# syntax=docker/dockerfile:1.7
#
# The RunPod endpoint image: AUTOMATIC1111 WebUI v1.9.3 with its requirements installed at build time,
# Node.js and the worker. The worker is the entry point and starts the WebUI itself
# (A1111_LAUNCH_COMMAND), so it sees its output and knows when it dies.
#
#   docker build -t you/a1111-worker:1.0.0 .                      # checkpoint baked in (the default target)
#   docker build --target volume -t you/a1111-worker:1.0.0-volume .   # checkpoints from a network volume
#
# Every base image, package, repository and the baked checkpoint (by its sha256) is pinned. See
# docs/deploy.md.

# A maintained LTS (Node 24: active LTS, supported until April 2028); the worker also runs on 20.19+.
ARG NODE_IMAGE=node:24.21.0-bookworm-slim
ARG PYTHON_IMAGE=python:3.10.14-slim-bookworm

# ---- the worker: compiled, production dependencies only ---------------------------------------------
FROM ${NODE_IMAGE} AS worker-build
WORKDIR /worker
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY machines ./machines
COPY src ./src
RUN npm run build && npm prune --omit=dev

# ---- the checkpoint baked into the default image ----------------------------------------------------
FROM alpine:3.20.3 AS checkpoint
# Stable Diffusion 1.5, pinned by its sha256: the build fails on any other file. Pass both to bake
# another checkpoint (an empty MODEL_SHA256 accepts whatever MODEL_URL serves).
ARG MODEL_URL=https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/resolve/main/v1-5-pruned-emaonly.safetensors
ARG MODEL_SHA256=6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa
RUN wget -q -O /model.safetensors "${MODEL_URL}" \
 && if [ -n "${MODEL_SHA256}" ]; then echo "${MODEL_SHA256}  /model.safetensors" | sha256sum -c -; fi

# ---- A1111 v1.9.3, its Python requirements installed at build time ----------------------------------
FROM ${PYTHON_IMAGE} AS a1111
ARG A1111_TAG=v1.9.3
ARG A1111_COMMIT=1c0a0c4c26f78c32095ebc7f8af82f5c04fca8c0
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates=20230311+deb12u1 \
      git=1:2.39.5-0+deb12u3 \
      libgl1=1.6.0-1 \
      libglib2.0-0=2.74.6-2+deb12u9 \
      libgoogle-perftools4=2.10-1 \
      libtcmalloc-minimal4=2.10-1 \
 && rm -rf /var/lib/apt/lists/*
RUN git clone https://github.com/AUTOMATIC1111/stable-diffusion-webui.git /stable-diffusion-webui \
 && cd /stable-diffusion-webui \
 && git checkout --detach "${A1111_TAG}" \
 && test "$(git rev-parse HEAD)" = "${A1111_COMMIT}"
WORKDIR /stable-diffusion-webui
# v1.9.3's installer clones Stability-AI/stablediffusion, which is gone from GitHub; the WebUI
# maintainers' mirror holds the same commit, which the installer still checks out by hash. CLIP's
# setup.py needs pkg_resources, which setuptools 81 removed, so CLIP and open_clip (at the commits v1.9.3
# names) are built here against a pinned setuptools, without build isolation; the installer then finds
# them installed.
ENV STABLE_DIFFUSION_REPO=https://github.com/w-e-w/stablediffusion.git \
    HF_HOME=/stable-diffusion-webui/.cache/huggingface
RUN pip install torch==2.1.2 torchvision==0.16.2 --extra-index-url https://download.pytorch.org/whl/cu121 \
 && pip install xformers==0.0.23.post1 setuptools==69.5.1 wheel==0.43.0 \
 && pip install --no-build-isolation \
      https://github.com/openai/CLIP/archive/d50d76daa670286dd6cacf3bcd80b5e4823fc8e1.zip \
      https://github.com/mlfoundations/open_clip/archive/bb6e834e9c70d9c27d0dc3ecedeebeaeb1ffad6b.zip \
 && pip install -r requirements_versions.txt \
 && python -c "from launch import prepare_environment; prepare_environment()" --skip-torch-cuda-test
# Loading an SD 1.x or SDXL checkpoint reads the CLIP tokenizer and text-encoder configuration from
# Hugging Face; fetched here, a fresh worker does not depend on Hugging Face being reachable to start.
RUN python -c "from huggingface_hub import snapshot_download; snapshot_download('openai/clip-vit-large-patch14', allow_patterns=['*.json', '*.txt'])"
COPY --from=worker-build /usr/local/bin/node /usr/local/bin/node
COPY --from=worker-build /worker/package.json /worker/package.json
COPY --from=worker-build /worker/node_modules /worker/node_modules
COPY --from=worker-build /worker/dist /worker/dist
COPY test_input.json /worker/test_input.json
# glibc's dynamic mmap threshold would keep the worker's freed multi-megabyte result buffers in its
# heap; a fixed threshold returns them to the system. Trimming keeps 2 MB at the top of the heap, so
# one answer's socket reads reuse pages the last answer's reads freed instead of faulting fresh ones
# in, and two arenas keep that from being multiplied by every thread (see docs/performance.md).
# These are the worker's: the WebUI's environment leaves them out, and it runs on tcmalloc.
ENV NODE_ENV=production \
    MALLOC_MMAP_THRESHOLD_=131072 \
    MALLOC_TOP_PAD_=2097152 \
    MALLOC_ARENA_MAX=2 \
    A1111_BASE_URL=http://127.0.0.1:3000 \
    A1111_READY_TIMEOUT_MS=900000 \
    MODELS_DIR=/stable-diffusion-webui/models/Stable-diffusion
WORKDIR /worker
# A fixed heap growth keeps the worker's memory flat over thousands of jobs instead of letting V8 grow
# its heap to several times the live data (see docs/performance.md).
ENTRYPOINT ["node", "--heap-growing-percent=150", "/worker/dist/src/main.js"]

# ---- variant: checkpoints read from a RunPod network volume -----------------------------------------
FROM a1111 AS volume
ENV MODELS_DIR=/runpod-volume/models/Stable-diffusion \
    LORA_DIR=/runpod-volume/models/Lora \
    VAE_DIR=/runpod-volume/models/VAE \
    EMBEDDINGS_DIR=/runpod-volume/embeddings \
    A1111_LAUNCH_COMMAND="cd /stable-diffusion-webui && LD_PRELOAD=libtcmalloc_minimal.so.4 exec python webui.py --xformers --no-half-vae --skip-python-version-check --skip-torch-cuda-test --skip-install --ckpt-dir /runpod-volume/models/Stable-diffusion --lora-dir /runpod-volume/models/Lora --vae-dir /runpod-volume/models/VAE --embeddings-dir /runpod-volume/embeddings --opt-sdp-attention --port 3000 --api --nowebui --skip-version-check --no-hashing --no-download-sd-model"

# ---- default: the checkpoint from MODEL_URL baked in --------------------------------------------------
FROM a1111 AS baked
COPY --from=checkpoint /model.safetensors /model.safetensors
ENV A1111_LAUNCH_COMMAND="cd /stable-diffusion-webui && LD_PRELOAD=libtcmalloc_minimal.so.4 exec python webui.py --xformers --no-half-vae --skip-python-version-check --skip-torch-cuda-test --skip-install --ckpt /model.safetensors --opt-sdp-attention --port 3000 --api --nowebui --skip-version-check --no-hashing --no-download-sd-model"
