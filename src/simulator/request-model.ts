/**
 * The A1111 v1.9.3 txt2img request model as pydantic v1 sees it: 55 fields in declaration order, their
 * defaults, and pydantic v1's lax coercion ("20" → 20, 20.7 → 20, 123 → "123", "yes" → true).
 *
 * Written from the API contract (A1111 `modules/api/models.py` at v1.9.3), independently of the
 * worker's own schemas: the simulator must not share the worker's assumptions.
 */

type Kind = 'str' | 'int' | 'float' | 'bool' | 'dict' | 'list' | 'list_str';

interface FieldSpec {
  name: string;
  kind: Kind;
  default: unknown;
  /** Generated fields are `Optional[...]`; some extra fields are not and refuse `null`. */
  nullable: boolean;
}

function f(name: string, kind: Kind, def: unknown, nullable = true): FieldSpec {
  return { name, kind, default: def, nullable };
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

export interface ValidationError {
  loc: (string | number)[];
  msg: string;
  type: string;
  ctx?: Record<string, unknown>;
}

const TRUE_WORDS = new Set(['1', 'on', 't', 'true', 'y', 'yes']);
const FALSE_WORDS = new Set(['0', 'off', 'f', 'false', 'n', 'no']);

type Coerced = { ok: true; value: unknown } | { ok: false; error: Omit<ValidationError, 'loc'>; subLoc?: number };

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
        if (!s.ok) return { ...s, subLoc: index };
        out.push(s.value as string);
      }
      return { ok: true, value: out };
    }
  }
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
 * Validates a parsed JSON body the way FastAPI + pydantic v1 would. Unknown keys are dropped silently.
 * Returns the model's values (all 55 fields, defaults filled in) or the 422 error list.
 */
export function parseTxt2ImgBody(
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
  for (const spec of TXT2IMG_MODEL) {
    if (!(spec.name in source)) {
      value[spec.name] = structuredClone(spec.default);
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
    if (result.ok) value[spec.name] = result.value;
    else {
      const loc: (string | number)[] = ['body', spec.name];
      if (result.subLoc !== undefined) loc.push(result.subLoc);
      errors.push({ loc, ...result.error });
    }
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value };
}
