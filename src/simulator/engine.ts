/**
 * The simulated WebUI behind the HTTP routes: options, checkpoints, the FIFO queue lock, the shared
 * progress state, and txt2img itself (defaults, sampler check, generation step by step, interrupt,
 * PNG output, `parameters` echo, `info` as a JSON string). Behaviour follows A1111 v1.9.3's API contract.
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ALWAYSON_SCRIPTS,
  defaultOptions,
  LATENT_UPSCALE_MODES,
  SAMPLERS,
  SCHEDULERS,
  SCRIPTS,
  UPSCALERS,
} from './catalog.js';
import { type CheckpointItem, type CheckpointRegistry, stemOf } from './checkpoints.js';
import { a1111Error, SimulatedCrash } from './errors.js';
import { decodeImageField, type OpenedImage } from './images.js';
import { encodePng, renderPixels } from './png.js';
import { type ExtrasResult, plaintextToHtml, runExtras } from './postprocess.js';
import { type ParsedRequest, pythonFloat } from './request-model.js';

export interface EngineHooks {
  /** Called before each sampling step; may throw SimulatedCrash. */
  beforeStep(step: number): void;
  stepDelayMs(): number;
  modelLoadMs(): number;
}

interface SharedState {
  skipped: boolean;
  interrupted: boolean;
  stopping_generation: boolean;
  job: string;
  job_count: number;
  job_timestamp: string;
  job_no: number;
  sampling_step: number;
  sampling_steps: number;
}

/** A first-in, first-out lock (`modules/fifo_lock.py`): generations run one at a time in arrival order. */
class FifoLock {
  private tail: Promise<void> = Promise.resolve();
  waiting = 0;

  async run<T>(work: () => Promise<T>): Promise<T> {
    const previous = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.waiting++;
    await previous;
    this.waiting--;
    try {
      return await work();
    } finally {
      release();
    }
  }
}

const RENDER_CACHE_SIZE = 32;

function timestamp(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}${pad(date.getMonth() + 1)}${pad(date.getDate())}${pad(date.getHours())}${pad(date.getMinutes())}${pad(date.getSeconds())}`;
}

function randomSeed(): number {
  return Math.floor(Math.random() * 4294967294);
}

export class WebUiEngine {
  readonly options: Record<string, unknown> = defaultOptions();
  readonly lock = new FifoLock();
  private state: SharedState = {
    skipped: false,
    interrupted: false,
    stopping_generation: false,
    job: '',
    job_count: 0,
    job_timestamp: '0',
    job_no: 0,
    sampling_step: 0,
    sampling_steps: 0,
  };
  private timeStart = 0;
  private loaded: CheckpointItem | null = null;
  private loading: Promise<void> = Promise.resolve();
  private readonly renders = new Map<string, string>();
  /** Samplers txt2img refuses although /samplers lists them (a fault knob). */
  readonly rejectedSamplers = new Set<string>();
  /** Generations that finished, were interrupted or crashed: [start, end] in ms since epoch. */
  /** Finished generations: when the request arrived (then waited in the queue), ran and ended. */
  readonly generations: { requestedAt: number; startedAt: number; endedAt: number; interrupted: boolean }[] = [];
  private generationWaiters: { count: number; resolve: () => void }[] = [];
  /** Set when the simulated process dies: nothing queued in it ever runs. */
  private dead = false;

  constructor(
    readonly checkpoints: CheckpointRegistry,
    private readonly hooks: EngineHooks,
  ) {}

  /** Start-up: scan the models and load the first checkpoint in the background, as `initialize()` does. */
  async boot(): Promise<void> {
    await this.checkpoints.scan();
    const first = this.checkpoints.list()[0] ?? null;
    this.options['sd_model_checkpoint'] = first?.title ?? null;
    this.loading = first ? this.load(first) : Promise.resolve();
  }

  private async load(item: CheckpointItem): Promise<void> {
    const ms = this.hooks.modelLoadMs();
    if (ms > 0) await sleep(ms);
    this.loaded = item;
  }

  /** The simulated process died: queued and running generations end with it. */
  kill(): void {
    this.dead = true;
  }

  /** Resolves once `count` generations have ended. */
  generationsEnded(count: number): Promise<void> {
    if (this.generations.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.generationWaiters.push({ count, resolve }));
  }

  get busy(): boolean {
    return this.state.job_count > 0;
  }

  progress(): Record<string, unknown> {
    const state = { ...this.state };
    if (this.state.job_count === 0) {
      return { progress: 0, eta_relative: 0, state, current_image: null, textinfo: null };
    }
    let progress = 0.01 + this.state.job_no / this.state.job_count;
    if (this.state.sampling_steps > 0) {
      progress += this.state.sampling_step / this.state.sampling_steps / this.state.job_count;
    }
    const elapsed = (Date.now() - this.timeStart) / 1000;
    return {
      progress: Math.min(progress, 1),
      eta_relative: elapsed / progress - elapsed,
      state,
      current_image: null,
      textinfo: null,
    };
  }

  /** POST /interrupt: stops the running generation at its next step; no effect when idle. */
  interrupt(): void {
    if (this.state.job_count > 0) this.state.interrupted = true;
  }

  skip(): void {
    if (this.state.job_count > 0) this.state.skipped = true;
  }

  async refreshCheckpoints(): Promise<void> {
    await this.lock.run(async () => {
      await this.checkpoints.scan();
      // A rescan keeps the selected checkpoint; one is picked only when none was.
      const first = this.checkpoints.list()[0];
      if (first && !this.options['sd_model_checkpoint']) this.options['sd_model_checkpoint'] = first.title;
    });
  }

  /** POST /options (`set_config`). */
  async setOptions(update: Record<string, unknown>): Promise<void> {
    const wanted = update['sd_model_checkpoint'];
    if (wanted !== undefined && (typeof wanted !== 'string' || !this.checkpoints.find(wanted))) {
      throw a1111Error(500, 'RuntimeError', '', `model '${String(wanted)}' not found`);
    }
    for (const [key, value] of Object.entries(update)) {
      if (!Object.hasOwn(this.options, key)) throw a1111Error(500, 'KeyError', '', `'${key}'`);
      this.options[key] = value;
      if (key === 'sd_model_checkpoint') {
        const item = this.checkpoints.find(value as string)!;
        this.options[key] = item.title;
        await this.lock.run(() => this.load(item));
      }
    }
  }

  /**
   * Checks that happen before the queue (api.py `text2imgapi` and `img2imgapi`), in their order: the
   * selectable script, the sampler, the always-on scripts (names compared case-insensitively).
   */
  precheck(request: ParsedRequest, tab: 'txt2img' | 'img2img'): void {
    const scripts: { selectable: readonly string[] } = SCRIPTS[tab];
    const scriptName = request['script_name'] as string | null;
    if (scriptName && !scripts.selectable.includes(scriptName.toLowerCase())) {
      throw a1111Error(422, 'HTTPException', `Script '${scriptName}' not found`);
    }
    const samplerName = (request['sampler_name'] as string | null) || (request['sampler_index'] as string);
    if (!SAMPLERS.some((s) => s.name === samplerName) || this.rejectedSamplers.has(samplerName)) {
      throw a1111Error(404, 'HTTPException', 'Sampler not found');
    }
    for (const title of Object.keys(request['alwayson_scripts'] as Record<string, unknown>)) {
      const name = title.toLowerCase();
      if (scripts.selectable.includes(name)) {
        throw a1111Error(422, 'HTTPException', 'Cannot have a selectable script in the always on scripts params');
      }
      if (
        !(ALWAYSON_SCRIPTS as readonly string[]).includes(name) &&
        !(tab === 'img2img' && name === 'soft inpainting')
      ) {
        throw a1111Error(422, 'HTTPException', `Script '${title}' not found`);
      }
    }
  }

  async txt2img(request: ParsedRequest): Promise<Record<string, unknown>> {
    this.precheck(request, 'txt2img');
    const requestedAt = Date.now();
    return this.lock.run(() => this.generate(request, requestedAt, null));
  }

  /** `img2imgapi`: the init images are decoded in the queue, the mask before it. */
  async img2img(request: ParsedRequest): Promise<Record<string, unknown>> {
    if (request['init_images'] === null) throw a1111Error(404, 'HTTPException', 'Init image not found');
    const maskField = request['mask'];
    const mask = maskField ? await decodeImageField(maskField, this.options) : null;
    this.precheck(request, 'img2img');
    const requestedAt = Date.now();
    return this.lock.run(async () => {
      await this.loading;
      if (this.dead) throw new SimulatedCrash('the process is gone');
      const images: OpenedImage[] = [];
      for (const item of request['init_images'] as unknown[]) images.push(await decodeImageField(item, this.options));
      // processing.py: an empty mask string becomes `image_mask` and is read as a picture.
      if (maskField === '') throw a1111Error(500, 'AttributeError', '', "'str' object has no attribute 'mode'");
      if (mask && request['latent_mask'] !== null) {
        throw a1111Error(500, 'AttributeError', '', "'str' object has no attribute 'convert'");
      }
      const batchSize = request['batch_size'] as number;
      if (images.length === 0) throw a1111Error(500, 'RuntimeError', '', 'stack expects a non-empty TensorList');
      if (images.length > batchSize) {
        throw a1111Error(
          500,
          'RuntimeError',
          '',
          `bad number of images passed: ${images.length}; expecting ${batchSize} or less`,
        );
      }
      // Two or more init images make the batch that many; one is repeated batch_size times.
      const run = images.length > 1 ? { ...request, batch_size: images.length } : request;
      return this.generate(run, requestedAt, { images, mask });
    });
  }

  /** `extras_single_image_api`: decoded before the queue, processed in it. */
  async extraSingle(values: ParsedRequest, given: ReadonlySet<string>): Promise<Record<string, unknown>> {
    const image = await decodeImageField(values['image'], this.options);
    const [result] = await this.lock.run(() => this.postprocess([image], values, given));
    // result[0][0] of an interrupted run that produced nothing.
    if (!result) throw a1111Error(500, 'IndexError', '', 'list index out of range');
    return { html_info: plaintextToHtml(result.infotext), image: result.image };
  }

  /** `extras_batch_images_api`: every `imageList[].data` decoded before the queue. */
  async extraBatch(values: ParsedRequest, given: ReadonlySet<string>): Promise<Record<string, unknown>> {
    const images: OpenedImage[] = [];
    for (const item of values['imageList'] as { data: string }[]) {
      images.push(await decodeImageField(item.data, this.options));
    }
    const results = await this.lock.run(() => this.postprocess(images, values, given));
    return { html_info: plaintextToHtml(results.at(-1)?.infotext ?? ''), images: results.map((r) => r.image) };
  }

  private async postprocess(
    images: OpenedImage[],
    values: ParsedRequest,
    given: ReadonlySet<string>,
  ): Promise<ExtrasResult[]> {
    if (this.dead) throw new SimulatedCrash('the process is gone');
    this.state = {
      ...this.state,
      job: 'extras',
      job_count: images.length,
      job_no: 0,
      sampling_step: 0,
      sampling_steps: 0,
    };
    this.timeStart = Date.now();
    const results: ExtrasResult[] = [];
    for (const [index, image] of images.entries()) {
      // state.nextjob() before each image: job_no counts from 1.
      this.state.job_no = index + 1;
      if (this.state.interrupted) break;
      await sleep(this.hooks.stepDelayMs());
      results.push(runExtras({ values, given }, image));
    }
    // run_postprocessing calls state.end() only when it gets there: after an exception /progress goes on
    // showing the extras until the next job begins.
    this.state = { ...this.state, job: '', job_count: 0, interrupted: false, skipped: false };
    return results;
  }

  /** `interrogateapi`: the image decoded before the queue, the model name checked in it. */
  async interrogate(values: ParsedRequest): Promise<Record<string, unknown>> {
    const image = await decodeImageField(values['image'], this.options);
    return this.lock.run(async () => {
      if (this.dead) throw new SimulatedCrash('the process is gone');
      await sleep(this.hooks.stepDelayMs() * 4);
      if (values['model'] === 'clip') return { caption: captionOf(image.bytes) };
      if (values['model'] === 'deepdanbooru') return { caption: tagsOf(image.bytes) };
      throw a1111Error(404, 'HTTPException', 'Model not found');
    });
  }

  private async generate(
    request: ParsedRequest,
    requestedAt: number,
    img2img: { images: OpenedImage[]; mask: OpenedImage | null } | null,
  ): Promise<Record<string, unknown>> {
    if (!img2img) await this.loading;
    if (this.dead) throw new SimulatedCrash('the process is gone');
    for (const field of ['steps', 'batch_size', 'n_iter', 'width', 'height', 'cfg_scale']) {
      // The generated model fields are Optional: pydantic takes null, processing then fails.
      if (request[field] === null) {
        throw a1111Error(
          500,
          'TypeError',
          '',
          `unsupported operand type(s) for *: 'NoneType' and 'int' (${field} is None)`,
        );
      }
    }
    const overrides = (request['override_settings'] as Record<string, unknown> | null) ?? {};
    for (const key of Object.keys(overrides)) {
      if (!Object.hasOwn(this.options, key)) throw a1111Error(500, 'KeyError', '', `'${key}'`);
    }
    this.checkOtherCheckpoints(request);
    const model = await this.pickModel(overrides['sd_model_checkpoint']);
    const samplerName = (request['sampler_name'] as string | null) || (request['sampler_index'] as string);
    const enableHr = request['enable_hr'] === true;
    if (enableHr) this.checkHires(request);

    const batchSize = request['batch_size'] as number;
    const nIter = request['n_iter'] as number;
    const steps = request['steps'] as number;
    // img2img denoises part of the schedule: int(min(denoising_strength, 0.999) * steps) steps, plus one.
    const denoising = request['denoising_strength'] as number;
    const samplingSteps = img2img ? Math.trunc(Math.min(denoising, 0.999) * steps) + 1 : steps;
    // processing.py `get_fixed_seed`: None, '' and -1 all mean a random seed.
    const fixed = (value: unknown) =>
      value === null || value === '' || value === -1 ? randomSeed() : (value as number);
    const seed = fixed(request['seed']);
    const subseed = fixed(request['subseed']);
    const subseedStrength = request['subseed_strength'] as number;
    const count = batchSize * nIter;
    const allSeeds = Array.from({ length: count }, (_, i) => seed + (subseedStrength === 0 ? i : 0));
    const allSubseeds = Array.from({ length: count }, (_, i) => subseed + i);
    const [width, height] = this.outputSize(request);

    const startedAt = Date.now();
    this.timeStart = startedAt;
    this.state = {
      ...this.state,
      skipped: false,
      interrupted: false,
      job: img2img ? 'scripts_img2img' : 'scripts_txt2img',
      job_count: enableHr ? nIter * 2 : nIter,
      job_timestamp: timestamp(new Date(startedAt)),
      job_no: 0,
      sampling_step: 0,
      sampling_steps: samplingSteps,
    };
    const context = { request, model, samplerName, seed, allSeeds, width, height, img2img };
    let produced = 0;
    let interrupted = false;
    try {
      for (let iteration = 0; iteration < nIter && !interrupted; iteration++) {
        this.state.job_no = enableHr ? iteration * 2 : iteration;
        for (let step = 0; step < samplingSteps; step++) {
          if (this.dead) throw new SimulatedCrash('the process is gone');
          this.hooks.beforeStep(step);
          if (this.state.interrupted) {
            interrupted = true;
            break;
          }
          const delay = this.hooks.stepDelayMs();
          await (delay > 0 ? sleep(delay) : new Promise<void>((resolve) => setImmediate(resolve)));
          this.state.sampling_step = step + 1;
        }
        // The interrupted batch is still decoded from its partial latent and returned.
        produced += batchSize;
      }
    } finally {
      const endedAt = Date.now();
      this.generations.push({ requestedAt, startedAt, endedAt, interrupted });
      const ready = this.generationWaiters.filter((w) => this.generations.length >= w.count);
      this.generationWaiters = this.generationWaiters.filter((w) => !ready.includes(w));
      for (const waiter of ready) waiter.resolve();
      this.state = { ...this.state, job: '', job_count: 0, interrupted: false, skipped: false };
    }

    const infotexts = allSeeds.slice(0, produced).map((s) => this.infotext(context, s));
    const images =
      request['send_images'] === false
        ? []
        : infotexts.map((text, i) => this.image(this.pictureSeed(allSeeds[i]!, img2img, i), width, height, text));
    // save_images:true lets A1111 make a grid of two or more images, returned first (processing.py
    // `process_images_inner`, return_grid and grid_only_if_multiple on by default).
    const grid = request['save_images'] === true && produced > 1 && this.options['return_grid'] !== false;
    if (grid) {
      let rows = Math.floor(Math.sqrt(produced));
      while (produced % rows !== 0) rows--;
      const cols = Math.ceil(produced / rows);
      const text = this.infotext(context, seed);
      infotexts.unshift(text);
      if (request['send_images'] !== false) images.unshift(this.image(seed, cols * width, rows * height, text));
    }
    const info = {
      prompt: request['prompt'],
      all_prompts: Array(count).fill(request['prompt']),
      negative_prompt: request['negative_prompt'],
      all_negative_prompts: Array(count).fill(request['negative_prompt']),
      seed,
      all_seeds: allSeeds,
      subseed,
      all_subseeds: allSubseeds,
      subseed_strength: subseedStrength,
      width,
      height,
      sampler_name: samplerName,
      cfg_scale: request['cfg_scale'],
      steps,
      batch_size: batchSize,
      restore_faces: request['restore_faces'] === true,
      face_restoration_model: request['restore_faces'] === true ? 'CodeFormer' : null,
      sd_model_name: stemOf(model),
      sd_model_hash: null,
      sd_vae_name: null,
      sd_vae_hash: null,
      seed_resize_from_w: request['seed_resize_from_w'],
      seed_resize_from_h: request['seed_resize_from_h'],
      denoising_strength: request['denoising_strength'],
      extra_generation_params: this.extraParams(context),
      index_of_first_image: grid ? 1 : 0,
      infotexts,
      styles: request['styles'] ?? [],
      job_timestamp: this.state.job_timestamp,
      clip_skip: Number(this.options['CLIP_stop_at_last_layers'] ?? 1),
      is_using_inpainting_conditioning: false,
      version: 'v1.9.3',
    };
    return { images, parameters: img2img ? img2imgEcho(request) : request, info: JSON.stringify(info) };
  }

  /** The seed a picture is drawn from: an img2img picture also depends on its init image. */
  private pictureSeed(seed: number, img2img: { images: OpenedImage[] } | null, index: number): number {
    if (!img2img) return seed;
    const init = img2img.images[index % img2img.images.length]!;
    return (seed ^ createHash('sha256').update(init.bytes).digest().readUInt32BE(0)) >>> 0;
  }

  /**
   * The checkpoint a request runs with: its override when that names a known checkpoint, otherwise the
   * options checkpoint, which is (re)loaded if an earlier override left other weights loaded; an unknown
   * override is silently dropped (processing.py `process_images`).
   */
  private async pickModel(requested: unknown): Promise<CheckpointItem> {
    const wanted = typeof requested === 'string' ? this.checkpoints.find(requested) : undefined;
    const configured = this.checkpoints.find(String(this.options['sd_model_checkpoint'] ?? ''));
    const model = wanted ?? configured ?? this.loaded;
    if (!model) {
      throw a1111Error(
        500,
        'FileNotFoundError',
        '',
        "No checkpoints found. When searching for checkpoints, looked at:\n - directory models/Stable-diffusion\nCan't run without a checkpoint. Find and place a .ckpt or .safetensors file into any of those locations.",
      );
    }
    if (model !== this.loaded) await this.load(model);
    return model;
  }

  /** processing.py: the refiner and the hires-pass checkpoint are looked up by `get_closet_checkpoint_match`. */
  private checkOtherCheckpoints(request: ParsedRequest): void {
    const refiner = request['refiner_checkpoint'];
    if (typeof refiner === 'string' && !['', 'None', 'none'].includes(refiner) && !this.checkpoints.closest(refiner)) {
      throw a1111Error(500, 'Exception', '', `Could not find checkpoint with name ${refiner}`);
    }
    const hires = request['hr_checkpoint_name'];
    if (request['enable_hr'] === true && typeof hires === 'string' && hires !== '' && hires !== 'Use same checkpoint') {
      if (!this.checkpoints.closest(hires))
        throw a1111Error(500, 'Exception', '', `Could not find checkpoint with name ${hires}`);
    }
  }

  private checkHires(request: ParsedRequest): void {
    const upscaler = request['hr_upscaler'] as string | null;
    const known = [...UPSCALERS, ...LATENT_UPSCALE_MODES] as string[];
    if (upscaler && !known.includes(upscaler)) {
      throw a1111Error(500, 'Exception', '', `could not find upscaler named ${upscaler}`);
    }
    const hrSampler = request['hr_sampler_name'] as string | null;
    if (hrSampler && hrSampler !== 'Use same sampler' && !SAMPLERS.some((s) => s.name === hrSampler)) {
      throw a1111Error(500, 'AssertionError', '', `bad sampler name: ${hrSampler}`);
    }
    if (request['denoising_strength'] === null) {
      throw a1111Error(500, 'TypeError', '', "'<' not supported between instances of 'float' and 'NoneType'");
    }
  }

  private outputSize(request: ParsedRequest): [number, number] {
    const width = request['width'] as number;
    const height = request['height'] as number;
    if (request['enable_hr'] !== true) return [width, height];
    const rx = request['hr_resize_x'] as number;
    const ry = request['hr_resize_y'] as number;
    if (rx > 0 || ry > 0) return [rx || Math.round((ry * width) / height), ry || Math.round((rx * height) / width)];
    const scale = request['hr_scale'] as number;
    return [Math.floor(width * scale), Math.floor(height * scale)];
  }

  private extraParams(context: {
    request: ParsedRequest;
    samplerName: string;
    img2img: { mask: OpenedImage | null } | null;
  }): Record<string, unknown> {
    const extra: Record<string, unknown> = {};
    const schedule = this.scheduleLabel(context.request, context.samplerName);
    if (schedule) extra['Schedule type'] = schedule;
    if (context.img2img) Object.assign(extra, img2imgParams(context.request, context.img2img.mask !== null));
    return extra;
  }

  private scheduleLabel(request: ParsedRequest, samplerName: string): string | null {
    const requested = request['scheduler'] as string | null;
    if (requested && requested.toLowerCase() !== 'automatic') {
      const known = SCHEDULERS.find((s) => s.name === requested || s.label === requested);
      return known ? known.label : requested;
    }
    const builtIn = SAMPLERS.find((s) => s.name === samplerName)?.options['scheduler'];
    return builtIn ? (SCHEDULERS.find((s) => s.name === builtIn)?.label ?? null) : null;
  }

  private infotext(
    context: {
      request: ParsedRequest;
      model: CheckpointItem;
      samplerName: string;
      width: number;
      height: number;
      img2img: { mask: OpenedImage | null } | null;
    },
    seed: number,
  ): string {
    const { request } = context;
    const img2img = context.img2img ? img2imgParams(request, context.img2img.mask !== null) : {};
    const parts: [string, string | number | null][] = [
      ['Steps', request['steps'] as number],
      ['Sampler', context.samplerName],
      ['Schedule type', this.scheduleLabel(request, context.samplerName)],
      ['CFG scale', pythonFloat(request['cfg_scale'] as number)],
      ['Seed', seed],
      ['Size', `${context.width}x${context.height}`],
      ['Model', stemOf(context.model)],
      ['Denoising strength', request['enable_hr'] === true ? (request['denoising_strength'] as number) : null],
      ...(Object.entries(img2img) as [string, string | number][]),
      ['Version', 'v1.9.3'],
    ];
    const negative = request['negative_prompt'] as string;
    const params = parts
      .filter(([, value]) => value !== null)
      .map(([key, value]) => `${key}: ${value}`)
      .join(', ');
    return `${request['prompt'] as string}${negative ? `\nNegative prompt: ${negative}` : ''}\n${params}`;
  }

  private image(seed: number, width: number, height: number, infotext: string): string {
    const key = `${seed}:${width}:${height}:${infotext}`;
    const cached = this.renders.get(key);
    if (cached) return cached;
    const png = encodePng(width, height, renderPixels(seed, width, height), { parameters: infotext });
    const encoded = png.toString('base64');
    if (this.renders.size >= RENDER_CACHE_SIZE) this.renders.delete(this.renders.keys().next().value!);
    this.renders.set(key, encoded);
    return encoded;
  }
}

/** img2img's own infotext entries (processing.py `StableDiffusionProcessingImg2Img.init`). */
function img2imgParams(request: ParsedRequest, masked: boolean): Record<string, string | number> {
  const params: Record<string, string | number> = { 'Denoising strength': request['denoising_strength'] as number };
  if (!masked) return params;
  const blurX = (request['mask_blur'] as number | null) ?? (request['mask_blur_x'] as number);
  const blurY = (request['mask_blur'] as number | null) ?? (request['mask_blur_y'] as number);
  if (blurX === blurY) {
    if (blurX > 0) params['Mask blur'] = blurX;
  } else {
    params['Mask blur x'] = blurX;
    params['Mask blur y'] = blurY;
  }
  if (request['inpainting_mask_invert'] === 1) params['Mask mode'] = 'Inpaint not masked';
  params['Masked content'] =
    ['fill', 'original', 'latent noise', 'latent nothing'][request['inpainting_fill'] as number] ?? 'fill';
  if (request['inpaint_full_res'] === true) {
    params['Inpaint area'] = 'Only masked';
    params['Masked area padding'] = request['inpaint_full_res_padding'] as number;
  }
  return params;
}

/** img2img's `parameters`: the request, its images left out unless `include_init_images`. */
function img2imgEcho(request: ParsedRequest): ParsedRequest {
  if (request['include_init_images'] === true) return request;
  return { ...request, init_images: null, mask: null };
}

const SUBJECTS = ['lighthouse', 'fox', 'harbour', 'mountain lake', 'city street', 'forest path', 'teapot', 'robot'];
const STYLES = ['by claude monet', 'by hokusai', 'by edward hopper', 'by ansel adams', 'by moebius', 'by turner'];
const MEDIA = ['oil on canvas', 'watercolor', 'digital art', 'a photograph', 'ink drawing', 'pastel'];
const TAGS = ['scenery', 'outdoors', 'sky', 'cloud', 'no humans', 'water', 'tree', 'building', 'night', 'sunset'];

/** A CLIP-style caption that depends only on the picture's bytes. */
function captionOf(bytes: Buffer): string {
  const digest = createHash('sha256').update(bytes).digest();
  const pick = <T>(list: readonly T[], at: number) => list[digest[at]! % list.length]!;
  return `a picture of a ${pick(SUBJECTS, 0)}, ${pick(STYLES, 1)}, ${pick(MEDIA, 2)}`;
}

/** DeepDanbooru-style tags that depend only on the picture's bytes. */
function tagsOf(bytes: Buffer): string {
  const digest = createHash('sha256').update(bytes).digest();
  return TAGS.filter((_, index) => digest[index]! % 2 === 0).join(', ') || TAGS[0]!;
}
