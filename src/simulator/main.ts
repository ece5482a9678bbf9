#!/usr/bin/env node
/**
 * Runs the A1111 v1.9.3 API SIMULATOR as its own process, the way the WebUI runs beside the worker.
 *
 *   node dist/src/simulator/main.js --port 3000 --boot-delay-ms 2000 --step-delay-ms 20
 *
 * It takes A1111's own flags where they mean something here (`--port`, `--ckpt`, `--ckpt-dir`,
 * `--lora-dir`, `--vae-dir`, `--embeddings-dir`, the ControlNet extension's `--controlnet-dir`,
 * `--api-auth`) and ignores the others (`--api --nowebui --xformers ...`), so a launch command written
 * for the real WebUI can point at it. Its first line on stdout is `A1111 SIMULATOR url=<url>`.
 */
import { parseArgs } from 'node:util';
import { A1111Simulator } from './server.js';

function numberFlag(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0) {
    process.stderr.write(`A1111 SIMULATOR: --${name} must be a number ≥ 0, got ${JSON.stringify(value)}\n`);
    process.exit(2);
  }
  return parsed;
}

const { values } = parseArgs({
  strict: false,
  options: {
    host: { type: 'string' },
    port: { type: 'string' },
    ckpt: { type: 'string' },
    'ckpt-dir': { type: 'string' },
    'lora-dir': { type: 'string' },
    'vae-dir': { type: 'string' },
    'embeddings-dir': { type: 'string' },
    'controlnet-dir': { type: 'string' },
    'api-auth': { type: 'string' },
    'boot-delay-ms': { type: 'string' },
    'step-delay-ms': { type: 'string' },
    'model-load-ms': { type: 'string' },
    'routes-missing-at-start-ms': { type: 'string' },
    'crash-at-step': { type: 'string' },
  },
});

const text = (key: string) => (typeof values[key] === 'string' ? (values[key] as string) : undefined);
const bootDelayMs = numberFlag(text('boot-delay-ms'), 'boot-delay-ms') ?? 0;
const crashAtStep = numberFlag(text('crash-at-step'), 'crash-at-step');
const simulator = new A1111Simulator({
  host: text('host') ?? '127.0.0.1',
  port: numberFlag(text('port'), 'port') ?? 7861,
  ckpt: text('ckpt') ?? '/model.safetensors',
  ...(text('ckpt-dir') ? { modelsDir: text('ckpt-dir')! } : {}),
  ...(text('lora-dir') ? { loraDir: text('lora-dir')! } : {}),
  ...(text('vae-dir') ? { vaeDir: text('vae-dir')! } : {}),
  ...(text('embeddings-dir') ? { embeddingsDir: text('embeddings-dir')! } : {}),
  ...(text('controlnet-dir') ? { controlnetDir: text('controlnet-dir')! } : {}),
  ...(text('api-auth') ? { apiAuth: text('api-auth')! } : {}),
  bootDelayMs,
  stepDelayMs: numberFlag(text('step-delay-ms'), 'step-delay-ms') ?? 0,
  modelLoadMs: numberFlag(text('model-load-ms'), 'model-load-ms') ?? 0,
  routesMissingAtStartMs: numberFlag(text('routes-missing-at-start-ms'), 'routes-missing-at-start-ms') ?? 0,
  crashMode: 'exit',
});
if (crashAtStep !== undefined) simulator.crashDuringNextGeneration({ atStep: crashAtStep });

const url = await simulator.reservePort();
process.stdout.write(
  `A1111 SIMULATOR url=${url} (a stand-in for the AUTOMATIC1111 WebUI v1.9.3 API; no GPU, no model)\n`,
);
await simulator.start();
process.stdout.write(`A1111 SIMULATOR ready after ${bootDelayMs} ms boot delay\n`);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void simulator.close().then(() => process.exit(0));
  });
}

// Started by the worker (`--simulator`) with an IPC channel: when the worker is gone, so is the simulator.
if (process.send) {
  process.channel?.unref();
  process.once('disconnect', () => void simulator.close().then(() => process.exit(0)));
}
