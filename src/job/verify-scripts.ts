/**
 * `verifyingModels` for the extension scripts a generation names: every `alwayson_scripts` key must be a
 * script this A1111 has.
 */
import type { A1111Client } from '../a1111/client.js';
import { listNames } from '../a1111/names.js';
import type { A1111Request } from '../a1111/request-fields.js';
import { WorkerError } from '../errors.js';

/**
 * The always-on scripts a generation names (`alwayson_scripts` keys: ControlNet, ADetailer, ReActor…)
 * must be scripts this A1111 has for its tab (GET /sdapi/v1/scripts, names compared case-insensitively
 * as A1111 compares them). v1.9.3 answers a missing one with 422 "always on script … not found"; the
 * worker says which extension is not installed and lists what is, before the job waits for the GPU.
 *
 * @example
 * await verifyAlwaysOnScripts('txt2img', { alwayson_scripts: { animatediff: { args: [] } } }, client);
 * // throws INVALID_INPUT: alwayson_scripts.animatediff …
 */
export async function verifyAlwaysOnScripts(
  tab: 'txt2img' | 'img2img',
  request: A1111Request,
  client: A1111Client,
  signal?: AbortSignal,
): Promise<void> {
  const scripts = request['alwayson_scripts'];
  if (typeof scripts !== 'object' || scripts === null || Array.isArray(scripts)) return;
  const titles = Object.keys(scripts);
  if (titles.length === 0) return;
  const installed = (await client.listScripts(signal))[tab];
  const missing = titles.filter((title) => !installed.includes(title.toLowerCase()));
  if (missing.length === 0) return;
  const rule = `a script this A1111 has for ${tab} (GET /sdapi/v1/scripts): ${listNames(installed)}`;
  throw new WorkerError(
    'INVALID_INPUT',
    `invalid input: alwayson_scripts names ${listNames(missing)}, which this A1111 does not have for ${tab} (is its extension installed?); installed: ${listNames(installed)}`,
    {
      details: {
        problems: missing.map((title) => ({ field: `alwayson_scripts.${title}`, value: title, rule })),
        installed,
      },
    },
  );
}
