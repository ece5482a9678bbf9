/**
 * How the endpoint image runs the worker, read from the Dockerfile, so the benchmark runs it the same
 * way: the environment the allocator reads and the node flags of the entry point.
 */
import { readFileSync } from 'node:fs';

export interface ImageRuntime {
  /** Environment variables of the image that change how the worker uses memory (glibc's `MALLOC_*`). */
  env: Record<string, string>;
  /** The node flags before the worker's script in the image's ENTRYPOINT. */
  nodeFlags: string[];
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
  return {
    env: malloc,
    nodeFlags: script === -1 ? args : args.slice(0, script),
  };
}
