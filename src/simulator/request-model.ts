/**
 * The A1111 v1.9.3 request models as pydantic v1 sees them: txt2img (55 fields) and img2img (57) in
 * declaration order with their defaults, the extras, png-info and interrogate models with their
 * constraints, and pydantic v1's lax coercion ("20" → 20, 20.7 → 20, 123 → "123", "yes" → true).
 *
 * Written from the API contract (A1111 `modules/api/models.py` at v1.9.3), independently of the
 * worker's own schemas: the simulator must not share the worker's assumptions.
 */

type Kind = 'str' | 'int' | 'float' | 'bool' | 'dict' | 'list' | 'list_str' | 'literal_0_1' | 'file_data_list';

/** A pydantic `Field` bound: `ge`, `le` or `gt`. */
interface Bound {
  ge?: number;
  le?: number;
  gt?: number;
}

interface FieldSpec {
  name: string;
  kind: Kind;
  default: unknown;
  /** Generated fields are `Optional[...]`; some extra fields are not and refuse `null`. */
  nullable: boolean;
  /** No default: a missing field is `field required`. */
  required?: boolean;
  bound?: Bound;
}

function f(name: string, kind: Kind, def: unknown, nullable = true): FieldSpec {
  return { name, kind, default: def, nullable };
}

/** A field of the extras, png-info and interrogate models: never Optional, sometimes bounded. */
function strict(name: string, kind: Kind, def: unknown, bound?: Bound): FieldSpec {
  return bound ? { name, kind, default: def, nullable: false, bound } : { name, kind, default: def, nullable: false };
}

function required(name: string, kind: Kind): FieldSpec {
  return { name, kind, default: undefined, nullable: false, required: true };
}

export const TXT2IMG_MODEL: readonly FieldSpec[] = [
  f('prompt', 'str', ''),
  f('negative_prompt', 'str', ''),
  f('styles', 'list_str', null),
  f('seed', 'int', -1),
  f('subseed', 'int', -1),
  f('subseed_strength', 'float', 0),
  f('seed_resize_from_h', 'int', -1),
  f('seed_resize_from_w', 'int', -1),
  f('sampler_name', 'str', null),
  f('scheduler', 'str', null),
  f('batch_size', 'int', 1),
  f('n_iter', 'int', 1),
  f('steps', 'int', 50),
  f('cfg_scale', 'float', 7.0),
  f('width', 'int', 512),
  f('height', 'int', 512),
  f('restore_faces', 'bool', null),
  f('tiling', 'bool', null),
  f('do_not_save_samples', 'bool', false),
  f('do_not_save_grid', 'bool', false),
  f('eta', 'float', null),
  f('denoising_strength', 'float', null),
  f('s_min_uncond', 'float', null),
  f('s_churn', 'float', null),
  f('s_tmax', 'float', null),
  f('s_tmin', 'float', null),
  f('s_noise', 'float', null),
  f('override_settings', 'dict', null),
  f('override_settings_restore_afterwards', 'bool', true),
  f('refiner_checkpoint', 'str', null),
  f('refiner_switch_at', 'float', null),
  f('disable_extra_networks', 'bool', false),
  f('firstpass_image', 'str', null),
  f('comments', 'dict', null),
  f('enable_hr', 'bool', false),
  f('firstphase_width', 'int', 0),
  f('firstphase_height', 'int', 0),
  f('hr_scale', 'float', 2.0),
  f('hr_upscaler', 'str', null),
  f('hr_second_pass_steps', 'int', 0),
  f('hr_resize_x', 'int', 0),
  f('hr_resize_y', 'int', 0),
  f('hr_checkpoint_name', 'str', null),
  f('hr_sampler_name', 'str', null),
  f('hr_scheduler', 'str', null),
  f('hr_prompt', 'str', ''),
  f('hr_negative_prompt', 'str', ''),
  f('force_task_id', 'str', null),
  f('sampler_index', 'str', 'Euler', false),
  f('script_name', 'str', null),
  f('script_args', 'list', [], false),
  f('send_images', 'bool', true, false),
  f('save_images', 'bool', false, false),
  f('alwayson_scripts', 'dict', {}, false),
  f('infotext', 'str', null),
];

/**
 * img2img: the 34 fields of `StableDiffusionProcessing` (with `denoising_strength` taken over by the
 * extra field: a float, 0.75, not Optional), the img2img class's own, then the API's extras.
 */
export const IMG2IMG_MODEL: readonly FieldSpec[] = [
  ...TXT2IMG_MODEL.slice(0, 34).map((spec) =>
    spec.name === 'denoising_strength' ? f('denoising_strength', 'float', 0.75, false) : spec,
  ),
  f('init_images', 'list', null),
  f('resize_mode', 'int', 0),
  f('image_cfg_scale', 'float', null),
  f('mask', 'str', null),
  f('mask_blur_x', 'int', 4),
  f('mask_blur_y', 'int', 4),
  f('mask_blur', 'int', null),
  f('mask_round', 'bool', true),
  f('inpainting_fill', 'int', 0),
  f('inpaint_full_res', 'bool', true),
  f('inpaint_full_res_padding', 'int', 0),
  f('inpainting_mask_invert', 'int', 0),
  f('initial_noise_multiplier', 'float', null),
  f('latent_mask', 'str', null),
  f('force_task_id', 'str', null),
  f('sampler_index', 'str', 'Euler', false),
  f('include_init_images', 'bool', false, false),
  f('script_name', 'str', null),
  f('script_args', 'list', [], false),
  f('send_images', 'bool', true, false),
  f('save_images', 'bool', false, false),
  f('alwayson_scripts', 'dict', {}, false),
  f('infotext', 'str', null),
];

const UNIT = { ge: 0, le: 1 };

/** `ExtrasBaseRequest`. */
const EXTRAS_BASE: readonly FieldSpec[] = [
  strict('resize_mode', 'literal_0_1', 0),
  strict('show_extras_results', 'bool', true),
  strict('gfpgan_visibility', 'float', 0, UNIT),
  strict('codeformer_visibility', 'float', 0, UNIT),
  strict('codeformer_weight', 'float', 0, UNIT),
  strict('upscaling_resize', 'float', 2, { gt: 0 }),
  strict('upscaling_resize_w', 'int', 512, { ge: 1 }),
  strict('upscaling_resize_h', 'int', 512, { ge: 1 }),
  strict('upscaling_crop', 'bool', true),
  strict('upscaler_1', 'str', 'None'),
  strict('upscaler_2', 'str', 'None'),
  strict('extras_upscaler_2_visibility', 'float', 0, UNIT),
  strict('upscale_first', 'bool', false),
];

export const EXTRA_SINGLE_MODEL: readonly FieldSpec[] = [...EXTRAS_BASE, strict('image', 'str', '')];
export const EXTRA_BATCH_MODEL: readonly FieldSpec[] = [...EXTRAS_BASE, required('imageList', 'file_data_list')];
export const PNG_INFO_MODEL: readonly FieldSpec[] = [required('image', 'str')];
export const INTERROGATE_MODEL: readonly FieldSpec[] = [strict('image', 'str', ''), strict('model', 'str', 'clip')];

export interface ValidationError {
  loc: (string | number)[];
  msg: string;
  type: string;
  ctx?: Record<string, unknown>;
}

const TRUE_WORDS = new Set(['1', 'on', 't', 'true', 'y', 'yes']);
const FALSE_WORDS = new Set(['0', 'off', 'f', 'false', 'n', 'no']);

type Coerced =
  | { ok: true; value: unknown }
  | { ok: false; error: Omit<ValidationError, 'loc'>; subLoc?: (string | number)[] };

function coerceStr(v: unknown): Coerced {
  if (typeof v === 'string') return { ok: true, value: v };
  if (typeof v === 'number') return { ok: true, value: pythonNumberText(v) };
  if (typeof v === 'boolean') return { ok: true, value: v ? 'True' : 'False' };
  return { ok: false, error: { msg: 'str type expected', type: 'type_error.str' } };
}

function coerceInt(v: unknown): Coerced {
  const bad: Coerced = { ok: false, error: { msg: 'value is not a valid integer', type: 'type_error.integer' } };
  if (typeof v === 'boolean') return { ok: true, value: v ? 1 : 0 };
  if (typeof v === 'number') return Number.isFinite(v) ? { ok: true, value: Math.trunc(v) } : bad;
  if (typeof v === 'string' && /^\s*[-+]?\d+\s*$/.test(v)) return { ok: true, value: Number.parseInt(v, 10) };
  return bad;
}

function coerceFloat(v: unknown): Coerced {
  const bad: Coerced = { ok: false, error: { msg: 'value is not a valid float', type: 'type_error.float' } };
  if (typeof v === 'boolean') return { ok: true, value: v ? 1 : 0 };
  if (typeof v === 'number') return { ok: true, value: v };
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return { ok: true, value: Number(v) };
  return bad;
}

function coerceBool(v: unknown): Coerced {
  if (typeof v === 'boolean') return { ok: true, value: v };
  if (v === 0 || v === 1) return { ok: true, value: v === 1 };
  if (typeof v === 'string') {
    const word = v.toLowerCase();
    if (TRUE_WORDS.has(word)) return { ok: true, value: true };
    if (FALSE_WORDS.has(word)) return { ok: true, value: false };
  }
  return { ok: false, error: { msg: 'value could not be parsed to a boolean', type: 'type_error.bool' } };
}

function coerce(kind: Kind, v: unknown): Coerced {
  switch (kind) {
    case 'str':
      return coerceStr(v);
    case 'int':
      return coerceInt(v);
    case 'float':
      return coerceFloat(v);
    case 'bool':
      return coerceBool(v);
    case 'dict':
      return typeof v === 'object' && v !== null && !Array.isArray(v)
        ? { ok: true, value: v }
        : { ok: false, error: { msg: 'value is not a valid dict', type: 'type_error.dict' } };
    case 'list':
      return Array.isArray(v)
        ? { ok: true, value: v }
        : { ok: false, error: { msg: 'value is not a valid list', type: 'type_error.list' } };
    case 'list_str': {
      if (!Array.isArray(v)) return { ok: false, error: { msg: 'value is not a valid list', type: 'type_error.list' } };
      const out: string[] = [];
      for (const [index, item] of v.entries()) {
        const s = coerceStr(item);
        if (!s.ok) return { ...s, subLoc: [index] };
        out.push(s.value as string);
      }
      return { ok: true, value: out };
    }
    case 'literal_0_1':
      // pydantic v1 looks the value up in {0: 0, 1: 1}: 1.0 and true are found, "1" is not.
      if (v === 0 || v === 1 || typeof v === 'boolean') return { ok: true, value: Number(v) };
      return {
        ok: false,
        error: {
          msg: 'unexpected value; permitted: 0, 1',
          type: 'value_error.const',
          ctx: { given: v, permitted: [0, 1] },
        },
      };
    case 'file_data_list':
      return coerceFileDataList(v);
  }
}

/** `list[FileData]`: each item `{data: str, name: str}`, both required. */
function coerceFileDataList(v: unknown): Coerced {
  if (!Array.isArray(v)) return { ok: false, error: { msg: 'value is not a valid list', type: 'type_error.list' } };
  const out: { data: string; name: string }[] = [];
  for (const [index, item] of v.entries()) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      return { ok: false, error: { msg: 'value is not a valid dict', type: 'type_error.dict' }, subLoc: [index] };
    }
    const record = item as Record<string, unknown>;
    const fields: Record<string, string> = {};
    for (const key of ['data', 'name']) {
      if (!(key in record)) {
        return { ok: false, error: { msg: 'field required', type: 'value_error.missing' }, subLoc: [index, key] };
      }
      if (record[key] === null) {
        return {
          ok: false,
          error: { msg: 'none is not an allowed value', type: 'type_error.none.not_allowed' },
          subLoc: [index, key],
        };
      }
      const s = coerceStr(record[key]);
      if (!s.ok) return { ...s, subLoc: [index, key] };
      fields[key] = s.value as string;
    }
    out.push({ data: fields['data']!, name: fields['name']! });
  }
  return { ok: true, value: out };
}

/** A bounded number's first broken bound, as pydantic v1 words it. */
function boundError(value: number, bound: Bound): Omit<ValidationError, 'loc'> | null {
  if (bound.gt !== undefined && !(value > bound.gt)) {
    return {
      msg: `ensure this value is greater than ${bound.gt}`,
      type: 'value_error.number.not_gt',
      ctx: { limit_value: bound.gt },
    };
  }
  if (bound.ge !== undefined && !(value >= bound.ge)) {
    return {
      msg: `ensure this value is greater than or equal to ${bound.ge}`,
      type: 'value_error.number.not_ge',
      ctx: { limit_value: bound.ge },
    };
  }
  if (bound.le !== undefined && !(value <= bound.le)) {
    return {
      msg: `ensure this value is less than or equal to ${bound.le}`,
      type: 'value_error.number.not_le',
      ctx: { limit_value: bound.le },
    };
  }
  return null;
}

/** Python's `str()` of a number: 7.0 stays "7.0" for floats the request gave as such. */
export function pythonNumberText(v: number): string {
  if (Number.isInteger(v)) return String(v);
  return String(v);
}

/** Python's repr of a float: 7 → "7.0". */
export function pythonFloat(v: number): string {
  return Number.isInteger(v) ? `${v}.0` : String(v);
}

export type ParsedRequest = Record<string, unknown>;

/**
 * Validates a parsed JSON body against a model the way FastAPI + pydantic v1 would. Unknown keys are
 * dropped silently. Returns the model's values (every field, defaults filled in) or the 422 error list.
 */
export function parseModelBody(
  model: readonly FieldSpec[],
  body: unknown,
): { ok: true; value: ParsedRequest } | { ok: false; errors: ValidationError[] } {
  if (body === null || body === undefined) {
    return { ok: false, errors: [{ loc: ['body'], msg: 'field required', type: 'value_error.missing' }] };
  }
  // dict([]) is {} in Python, so an empty array passes as the default request.
  const source: Record<string, unknown> | null = Array.isArray(body)
    ? body.length === 0
      ? {}
      : null
    : typeof body === 'object'
      ? (body as Record<string, unknown>)
      : null;
  if (source === null) {
    return { ok: false, errors: [{ loc: ['body'], msg: 'value is not a valid dict', type: 'type_error.dict' }] };
  }
  const value: ParsedRequest = {};
  const errors: ValidationError[] = [];
  for (const spec of model) {
    if (!(spec.name in source)) {
      if (spec.required) errors.push({ loc: ['body', spec.name], msg: 'field required', type: 'value_error.missing' });
      // Defaults are not validated: `upscaling_resize` stays the int 2.
      else value[spec.name] = structuredClone(spec.default);
      continue;
    }
    const raw = source[spec.name];
    if (raw === null) {
      if (spec.nullable) value[spec.name] = null;
      else
        errors.push({
          loc: ['body', spec.name],
          msg: 'none is not an allowed value',
          type: 'type_error.none.not_allowed',
        });
      continue;
    }
    const result = coerce(spec.kind, raw);
    const bounded =
      result.ok && spec.bound && typeof result.value === 'number' ? boundError(result.value, spec.bound) : null;
    if (result.ok && !bounded) value[spec.name] = result.value;
    else if (bounded) errors.push({ loc: ['body', spec.name], ...bounded });
    else if (!result.ok) {
      errors.push({ loc: ['body', spec.name, ...(result.subLoc ?? [])], ...result.error });
    }
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value };
}
