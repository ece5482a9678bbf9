/**
 * `npm run build`'s last step: the worker as the image runs it, one file per thread in dist/bundle/
 * (main.js, heartbeat-thread.js), read from the compiled dist/src/.
 *
 * Node's ESM loader resolves, reads and links each of the ~480 modules the worker imports before its
 * first job-take (zod alone is 95 files, axios brings mime-db and form-data), which was more than half of
 * a cold start; one file starts in about half the time (docs/performance.md). What only some jobs need
 * stays in node_modules and is loaded when first used: sharp (a native addon), the AWS SDK, the Stately
 * inspector. The embedded simulator stays dist/src/simulator/main.js, started as its own process.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const OUT_DIR = path.join(ROOT, 'dist', 'bundle');

/** Loaded on first use from node_modules, never bundled. */
const EXTERNAL = ['sharp', '@aws-sdk/*', '@statelyai/inspect', '@statelyai/inspect/*'];

export async function bundleWorker(): Promise<void> {
  await build({
    entryPoints: {
      main: path.join(ROOT, 'dist', 'src', 'main.js'),
      'heartbeat-thread': path.join(ROOT, 'dist', 'src', 'runpod', 'heartbeat-thread.js'),
    },
    outdir: OUT_DIR,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: EXTERNAL,
    sourcemap: true,
    // The CommonJS packages (winston, axios's dependencies) require node's own modules.
    banner: {
      js: "import { createRequire as __workerRequire } from 'node:module';\nconst require = __workerRequire(import.meta.url);",
    },
    logLevel: 'warning',
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await bundleWorker();
