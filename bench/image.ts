/**
 * How the endpoint image runs the worker, read from the Dockerfile, so the benchmark and the tests run
 * it the same way: the environment the allocator reads, the node flags of the entry point and its script.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

/** Where the image puts the project (its WORKDIR for the worker). */
const IMAGE_ROOT = '/worker/';

export interface ImageRuntime {
  /** Environment variables of the image that change how the worker uses memory (glibc's `MALLOC_*`). */
  env: Record<string, string>;
  /** The node flags before the worker's script in the image's ENTRYPOINT. */
  nodeFlags: string[];
  /** The ENTRYPOINT's script, relative to the project's root (`dist/bundle/main.js`); '' when there is none. */
  script: string;
}

export function imageRuntime(dockerfilePath: string): ImageRuntime {
  const dockerfile = readFileSync(dockerfilePath, 'utf8');
  const malloc = Object.fromEntries(
    [...dockerfile.matchAll(/^\s*(?:ENV\s+)?(MALLOC_[A-Z_]+_?)=(\d+)/gm)].map((match) => [match[1]!, match[2]!]),
  );
  const entrypoints = [...dockerfile.matchAll(/^ENTRYPOINT (\[.*\])$/gm)].map(
    (match) => JSON.parse(match[1]!) as string[],
  );
  const entrypoint = entrypoints.at(-1) ?? [];
  // node's own flags (written `--flag=value`) come before the script; what follows is the worker's arguments.
  const args = entrypoint[0] === 'node' ? entrypoint.slice(1) : [];
  const script = args.findIndex((arg) => !arg.startsWith('-'));
  const file = script === -1 ? '' : args[script]!;
  return {
    env: malloc,
    nodeFlags: script === -1 ? args : args.slice(0, script),
    script: file.startsWith(IMAGE_ROOT) ? file.slice(IMAGE_ROOT.length) : file,
  };
}

/** The image's worker script in a checkout of the project at `root`. */
export function imageScript(root: string): string {
  const { script } = imageRuntime(path.join(root, 'Dockerfile'));
  if (!script) throw new Error(`the Dockerfile in ${root} has no ENTRYPOINT with a script`);
  return path.join(root, script);
}
