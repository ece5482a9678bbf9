#!/usr/bin/env node
/**
 * The worker's command line.
 *
 *   node dist/src/main.js [--test_input '<json>'] [--simulator] [--output-dir output]
 *
 * Runs one job, RunPod's "test input" way: the job comes from `--test_input` or ./test_input.json
 * (`{"input": {...}}`), its images are written to `<output-dir>/<job id>/`, the result is printed, and
 * the exit code is 0 on success and 1 on failure. With `--simulator` the worker first starts the
 * embedded A1111 SIMULATOR (no GPU, test-pattern images) and points A1111_BASE_URL at it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ProgressUpdate } from '../machines/job.types.js';
import { createA1111Client } from './a1111/client.js';
import { type Config, ConfigError, loadConfig } from './config.js';
import { createJobRunner, type JobOutcome, type RunPodJob, toRunPodResult } from './handler.js';
import { createLoggerFromConfig, type Logger } from './log.js';

const SIMULATOR_SCRIPT = fileURLToPath(new URL('./simulator/main.js', import.meta.url));

class UsageError extends Error {}

/** Reads the job: `--test_input` (a JSON string) wins over ./test_input.json, as in RunPod's runtime. */
async function readTestJob(testInput: string | undefined): Promise<RunPodJob> {
  let text = testInput;
  let source = '--test_input';
  if (text === undefined) {
    source = path.resolve('test_input.json');
    try {
      text = await readFile(source, 'utf8');
    } catch {
      throw new UsageError(`no job to run: pass --test_input '<json>' or create ${source}`);
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${source} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || !('input' in parsed)) {
    throw new UsageError(`${source} must be an object with an "input" key, like {"input": {"prompt": "..."}}`);
  }
  const job = parsed as { id?: unknown; input: unknown };
  return { id: typeof job.id === 'string' && job.id !== '' ? job.id : 'local_test', input: job.input };
}

/** Starts the simulator as its own process and resolves with its URL (before it finishes booting). */
async function startSimulator(log: Logger): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    [SIMULATOR_SCRIPT, '--port', '0', '--boot-delay-ms', '1500', '--step-delay-ms', '25'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
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

function progressReporter(log: Logger): (update: ProgressUpdate) => void {
  if (process.stderr.isTTY) {
    return (update) => {
      const width = 30;
      const filled = Math.round(update.progress * width);
      process.stderr.write(
        `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.round(update.progress * 100)}%  step ${update.step}/${update.steps}  eta ${update.etaSeconds}s `,
      );
    };
  }
  return (update) => log.debug('progress', { ...update });
}

/** Writes the images of a successful job to disk and a result.json with file names in place of base64. */
async function writeOutputs(outcome: JobOutcome, outputDir: string): Promise<string[]> {
  const dir = path.resolve(outputDir, outcome.jobId);
  await mkdir(dir, { recursive: true });
  if (!outcome.ok) {
    await writeFile(path.join(dir, 'result.json'), `${JSON.stringify(toRunPodResult(outcome), null, 2)}\n`);
    return [];
  }
  const files: string[] = [];
  for (const [index, image] of outcome.output.images.entries()) {
    const file = path.join(dir, `image-${index}.png`);
    await writeFile(file, Buffer.from(image, 'base64'));
    files.push(file);
  }
  const summary = { ...outcome.output, images: files.map((file) => path.relative(process.cwd(), file)) };
  await writeFile(path.join(dir, 'result.json'), `${JSON.stringify({ output: summary }, null, 2)}\n`);
  return files;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    strict: false,
    options: {
      test_input: { type: 'string' },
      simulator: { type: 'boolean' },
      'output-dir': { type: 'string' },
    },
  });
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return 1;
    }
    throw error;
  }
  const log = createLoggerFromConfig(config);
  let simulator: ChildProcess | undefined;
  try {
    const job = await readTestJob(typeof values.test_input === 'string' ? values.test_input : undefined);
    if (values.simulator === true) {
      const started = await startSimulator(log);
      simulator = started.child;
      config = { ...config, a1111BaseUrl: started.url };
    }
    const client = createA1111Client(config, log);
    const runner = createJobRunner({ config, log, client });
    const outcome = await runner.run(job, { onProgress: progressReporter(log) });
    if (process.stderr.isTTY) process.stderr.write('\n');
    client.close();
    const files = await writeOutputs(
      outcome,
      typeof values['output-dir'] === 'string' ? values['output-dir'] : 'output',
    );
    if (outcome.ok) {
      log.info(`Job ${job.id} completed successfully`, { images: files.map((f) => path.relative(process.cwd(), f)) });
      return 0;
    }
    log.error(`Job ${job.id} failed`, { error: toRunPodResult(outcome) });
    return 1;
  } catch (error) {
    if (error instanceof UsageError) {
      log.error(error.message);
      return 1;
    }
    throw error;
  } finally {
    simulator?.kill('SIGTERM');
  }
}

process.exitCode = await main();
