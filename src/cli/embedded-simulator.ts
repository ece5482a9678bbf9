/**
 * `--simulator`: the embedded A1111 SIMULATOR as a process of its own beside the worker, the way the
 * WebUI runs beside it. The worker never imports the simulator: it starts the compiled script.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../log/index.js';

/** Beside this file in dist/src/cli/, or from the bundle in dist/bundle/. */
const SIMULATOR_SCRIPT =
  ['../simulator/main.js', '../src/simulator/main.js']
    .map((candidate) => fileURLToPath(new URL(candidate, import.meta.url)))
    .find((file) => existsSync(file)) ?? fileURLToPath(new URL('../simulator/main.js', import.meta.url));

/** Starts the simulator as its own process and resolves with its URL (before it finishes booting). */
export async function startSimulator(log: Logger): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    [SIMULATOR_SCRIPT, '--port', '0', '--boot-delay-ms', '1500', '--step-delay-ms', '25'],
    // The IPC channel is only a lifeline: the simulator exits when it closes, however the worker ended.
    { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] },
  );
  child.channel?.unref();
  const lines = createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the A1111 simulator exited with code ${code} before it started`)));
    lines.on('line', (line) => {
      const match = /url=(\S+)/.exec(line);
      if (match) resolve(match[1]!);
      else log.debug('simulator', { line });
    });
  });
  log.warn(
    `Using the embedded A1111 SIMULATOR at ${url}: it answers like the AUTOMATIC1111 v1.9.3 API but renders test patterns, not Stable Diffusion images. Leave out --simulator and set A1111_BASE_URL to use a real WebUI.`,
  );
  return { url, child };
}
