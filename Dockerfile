# syntax=docker/dockerfile:1.7
#
# The RunPod endpoint image: AUTOMATIC1111 WebUI v1.9.3 with its requirements installed at build time,
# Node.js and the worker. The worker is the entry point and starts the WebUI itself
# (A1111_LAUNCH_COMMAND), so it sees its output and knows when it dies.
#
#   docker build -t you/a1111-worker:1.0.0 .                      # checkpoint baked in (the default target)
#   docker build --target volume -t you/a1111-worker:1.0.0-volume .   # models from a network volume
#   docker build --build-arg EXTENSIONS=controlnet,adetailer -t you/a1111-worker:1.0.0-cn .   # with extensions
#
# Every base image (by digest), Debian package (by a dated snapshot), Python package this file or A1111's
# requirements_versions.txt names, repository and the baked checkpoint (by its sha256) is pinned; the
# dependencies those pull in are resolved at build time. See docs/deploy.md.

# Base images by tag and digest: a tag is moved when its image is rebuilt, a digest is the one image.
# A maintained LTS (Node 24: active LTS, supported until April 2028); the worker also runs on 20.19+.
ARG NODE_IMAGE=node:24.21.0-bookworm-slim@sha256:0e0ff40c39bc087845bfb27465a0df4ea419520094bc35842ff83dd8cbe6f9b6
ARG PYTHON_IMAGE=python:3.10.14-slim-bookworm@sha256:2407c61b1a18067393fecd8a22cf6fceede893b6aaca817bf9fbfe65e33614a3
ARG ALPINE_IMAGE=alpine:3.20.3@sha256:1e42bbe2508154c9126d48c2b8a75420c3544343bf86fd041fb7527e017a4b4a
# Debian packages from snapshot.debian.org at this moment (main and security): the versions apt
# installs are the ones it had then, at every rebuild, with no version pin to break when Debian
# replaces a package. Move it forward for security updates.
ARG DEBIAN_SNAPSHOT=20261130T000000Z

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
FROM ${ALPINE_IMAGE} AS checkpoint
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
# Extensions to install, comma-separated: controlnet (Mikubill/sd-webui-controlnet), adetailer
# (Bing-su/adetailer). Each is pinned to a commit that works with v1.9.3: ControlNet's tests run against
# v1.9.3's commit at this one (v1.1.455 and its version-parsing fix), ADetailer's is v24.6.0, released
# when v1.9.4 was A1111's latest. Their installers run at build time with A1111's own.
ARG EXTENSIONS=
ARG CONTROLNET_COMMIT=56cec5b2958edf3b1807b7e7b2b1b5186dbd2f81
ARG ADETAILER_COMMIT=a7d961131e879ea8a930034a21a2dee21b173e8c
ARG DEBIAN_SNAPSHOT
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1
RUN printf 'Types: deb\nURIs: http://snapshot.debian.org/archive/%s/%s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n' \
      debian "${DEBIAN_SNAPSHOT}" 'bookworm bookworm-updates' \
      debian-security "${DEBIAN_SNAPSHOT}" bookworm-security \
      > /etc/apt/sources.list.d/debian.sources \
 && apt-get -o Acquire::Check-Valid-Until=false update \
 && apt-get install -y --no-install-recommends \
      ca-certificates \
      git \
      libgl1 \
      libglib2.0-0 \
      libgoogle-perftools4 \
      libtcmalloc-minimal4 \
 && rm -rf /var/lib/apt/lists/*
RUN git clone https://github.com/AUTOMATIC1111/stable-diffusion-webui.git /stable-diffusion-webui \
 && cd /stable-diffusion-webui \
 && git checkout --detach "${A1111_TAG}" \
 && test "$(git rev-parse HEAD)" = "${A1111_COMMIT}"
WORKDIR /stable-diffusion-webui
RUN for name in $(echo "${EXTENSIONS}" | tr ',' ' '); do \
      case "${name}" in \
        controlnet) repo=Mikubill/sd-webui-controlnet dir=sd-webui-controlnet commit="${CONTROLNET_COMMIT}" ;; \
        adetailer) repo=Bing-su/adetailer dir=adetailer commit="${ADETAILER_COMMIT}" ;; \
        *) echo "EXTENSIONS: unknown extension ${name} (controlnet, adetailer)" >&2; exit 1 ;; \
      esac; \
      git clone "https://github.com/${repo}.git" "extensions/${dir}" \
      && git -C "extensions/${dir}" checkout --detach "${commit}" \
      && test "$(git -C "extensions/${dir}" rev-parse HEAD)" = "${commit}" || exit 1; \
    done
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
# ADetailer downloads its detection models from Hugging Face when it loads; fetched here, as above.
RUN if [ -d extensions/adetailer ]; then \
      python -c "from huggingface_hub import hf_hub_download as get; [get('Bingsu/adetailer', f) for f in ('face_yolov8n.pt', 'face_yolov8s.pt', 'hand_yolov8n.pt', 'person_yolov8n-seg.pt', 'person_yolov8s-seg.pt')]; get('Bingsu/yolo-world-mirror', 'yolov8x-worldv2.pt')"; \
    fi
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
    A1111_READY_TIMEOUT_MS=900000
WORKDIR /worker
# A fixed heap growth keeps the worker's memory flat over thousands of jobs instead of letting V8 grow
# its heap to several times the live data; a young generation of 8 MB semi-spaces (16 by default) keeps
# the garbage of an upload's decoding from growing the heap by another 16 MB (see docs/performance.md).
# dist/bundle/main.js is the worker in one file (src/tools/bundle.ts): it starts in half the time of
# the ~480 modules of dist/src/main.js, the same program.
ENTRYPOINT ["node", "--heap-growing-percent=150", "--max-semi-space-size=8", "/worker/dist/bundle/main.js"]

# ---- variant: models read from a RunPod network volume ----------------------------------------------
# The worker finds the model folders on the volume (its own layout, or a WebUI install on it as
# ashleykleynhans/runpod-worker-a1111 lays volumes out) and gives them to the WebUI as MODELS_DIR,
# LORA_DIR, VAE_DIR, EMBEDDINGS_DIR and CONTROLNET_DIR; the ControlNet folder flag is passed only when
# the extension, which defines it, is installed.
FROM a1111 AS volume
ENV MODEL_VOLUME_DIR=/runpod-volume \
    A1111_LAUNCH_COMMAND="cd /stable-diffusion-webui && if [ -d extensions/sd-webui-controlnet ]; then set -- --controlnet-dir \"\${CONTROLNET_DIR}\"; fi && LD_PRELOAD=libtcmalloc_minimal.so.4 exec python webui.py --xformers --no-half-vae --skip-python-version-check --skip-torch-cuda-test --skip-install --ckpt-dir \"\${MODELS_DIR}\" --lora-dir \"\${LORA_DIR}\" --vae-dir \"\${VAE_DIR}\" --embeddings-dir \"\${EMBEDDINGS_DIR}\" --opt-sdp-attention --port 3000 --api --nowebui --skip-version-check --no-hashing --no-download-sd-model \"\$@\""

# ---- default: the checkpoint from MODEL_URL baked in --------------------------------------------------
FROM a1111 AS baked
COPY --from=checkpoint /model.safetensors /model.safetensors
ENV MODELS_DIR=/stable-diffusion-webui/models/Stable-diffusion \
    A1111_LAUNCH_COMMAND="cd /stable-diffusion-webui && LD_PRELOAD=libtcmalloc_minimal.so.4 exec python webui.py --xformers --no-half-vae --skip-python-version-check --skip-torch-cuda-test --skip-install --ckpt /model.safetensors --opt-sdp-attention --port 3000 --api --nowebui --skip-version-check --no-hashing --no-download-sd-model"
