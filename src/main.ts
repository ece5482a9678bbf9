#!/usr/bin/env node
/**
 * The worker's entry point. It picks a mode the way RunPod's Python runtime does (first match wins):
 *
 * 1. `--rp_serve_api`: the local API on `--rp_api_host` (localhost) : `--rp_api_port` (8000), which the
 *    official JS client `runpod-sdk` can drive.
 * 2. `--test_input '<json>'`, or RUNPOD_WEBHOOK_GET_JOB unset: one job from the flag or
 *    ./test_input.json; exit 0 on success, 1 on failure.
 * 3. Otherwise production: the RunPod job loop.
 *
 * `replay <journal.jsonl>...` replays job journals instead (see docs/replay.md) and exits 1 at the first
 * divergence.
 *
 * `--rp_log_level LEVEL` overrides LOG_LEVEL. `--simulator` first starts the embedded A1111 SIMULATOR
 * (test-pattern images, no GPU) and points A1111_BASE_URL at it; `--output-dir` sets where test-input
 * mode writes images (default ./output).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { InspectionEvent } from 'xstate';
import { type Config, ConfigError, loadConfig } from './config/index.js';
import { errorFields } from './errors.js';
import { startStatelyInspector } from './inspect.js';
import { parseJournal } from './journal/journal.js';
import { formatReplay, replayJournal } from './journal/replay.js';
import { createLoggerFromConfig, flushLogOutput, type Logger } from './log.js';
import { LocalApi } from './runpod/local-api.js';
import { runTestInput, UsageError } from './runpod/test-input.js';
import { WorkerLoop } from './runpod/worker-loop.js';
import { buildWorker, type Worker } from './worker.js';

const SIMULATOR_SCRIPT = fileURLToPath(new URL('./simulator/main.js', import.meta.url));

/** Starts the simulator as its own process and resolves with its URL (before it finishes booting). */
async function startSimulator(log: Logger): Promise<{ url: string; child: ChildProcess }> {
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

function parseFlags() {
  const { values, positionals } = parseArgs({
    strict: false,
    allowPositionals: true,
    options: {
      test_input: { type: 'string' },
      rp_serve_api: { type: 'boolean' },
      rp_api_host: { type: 'string' },
      rp_api_port: { type: 'string' },
      rp_log_level: { type: 'string' },
      // Accepted as RunPod's Python runtime accepts them; the local API is one process either way.
      rp_api_concurrency: { type: 'string' },
      rp_debugger: { type: 'boolean' },
      simulator: { type: 'boolean' },
      'output-dir': { type: 'string' },
    },
  });
  const text = (key: string) => (typeof values[key] === 'string' ? (values[key] as string) : undefined);
  return {
    testInput: text('test_input'),
    serveApi: values['rp_serve_api'] === true,
    apiHost: text('rp_api_host') ?? 'localhost',
    apiPort: text('rp_api_port') ?? '8000',
    logLevel: text('rp_log_level'),
    simulator: values['simulator'] === true,
    outputDir: text('output-dir') ?? 'output',
    command: positionals[0] === 'replay' ? 'replay' : undefined,
    files: positionals.slice(1),
    // Values of flags this worker does not know (RunPod's runtime leaves those to the handler's own parser).
    ignored: positionals[0] === 'replay' ? [] : positionals,
  };
}

/** `replay <files>`: replays each journal, prints its transitions; 1 when any diverges. */
async function replayCommand(
  files: string[],
  log: Logger,
  inspect?: (event: InspectionEvent) => void,
): Promise<number> {
  if (files.length === 0) throw new UsageError('replay needs one or more journal files: replay <journal.jsonl>...');
  let code = 0;
  for (const file of files) {
    const report = replayJournal(parseJournal(await readFile(file, 'utf8')), inspect ? { inspect } : {});
    flushLogOutput();
    process.stdout.write(`${file}\n${formatReplay(report)}\n`);
    if (report.divergence) {
      log.error('replay diverged from the recording', { file, line: report.divergence.line });
      code = 1;
    }
  }
  return code;
}

/** Processes to kill outright if the worker exits on a second signal. */
const killOnForcedExit: { kill(): void }[] = [];
/** The jobs running now, for the last log line of a worker that exits without finishing them. */
let runningJobs: () => string[] = () => [];

/** A defect that escaped every handler: say which jobs it takes down, then exit so RunPod replaces the worker. */
function exitOnCrash(log: Logger): void {
  const crash = (error: unknown) => {
    log.error('the worker crashed; its running jobs are lost', { ...errorFields(error), runningJobs: runningJobs() });
    for (const child of killOnForcedExit) child.kill();
    process.exit(1);
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);
}

/** Calls `onFirst` on the first SIGTERM/SIGINT and exits at once on the second. */
function onSignals(log: Logger, onFirst: (signal: string) => void): void {
  let received = 0;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      received++;
      if (received > 1) {
        log.warn(`${signal} received again; exiting now`, { abandonedJobs: runningJobs() });
        for (const child of killOnForcedExit) child.kill();
        process.exit(signal === 'SIGINT' ? 130 : 143);
      }
      log.info(`${signal} received; finishing the running jobs (send it again to exit at once)`);
      onFirst(signal);
    });
  }
}

async function main(): Promise<number> {
  const flags = parseFlags();
  let config: Config;
  try {
    config = loadConfig(flags.logLevel ? { ...process.env, LOG_LEVEL: flags.logLevel } : process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(
        `${error.message.replace('LOG_LEVEL=', flags.logLevel ? '--rp_log_level ' : 'LOG_LEVEL=')}\n`,
      );
      return 1;
    }
    throw error;
  }
  const log = createLoggerFromConfig(config);
  exitOnCrash(log);
  if (flags.logLevel) log.info(`Log level set to ${config.observability.logLevel}`);
  const inspector = await startStatelyInspector(config, log);
  if (flags.command === 'replay') {
    try {
      const code = await replayCommand(flags.files, log, inspector?.inspect);
      if (config.observability.inspect === 'serve') {
        // The bridge keeps the last messages for a browser that connects late; keep it up until asked.
        log.info(
          `the replay is in the inspector at http://localhost:${config.observability.inspectPort}; press Ctrl-C to end`,
        );
        await new Promise<void>((resolve) => onSignals(log, () => resolve()));
      }
      return code;
    } catch (error) {
      log.error(error instanceof Error ? error.message : String(error));
      return 1;
    } finally {
      inspector?.close();
    }
  }
  if (flags.ignored.length > 0) {
    log.warn(
      `ignoring arguments ${JSON.stringify(flags.ignored)}: the only command is "replay"; see the README for the flags`,
    );
  }
  let simulator: ChildProcess | undefined;
  let worker: Worker | undefined;
  try {
    if (flags.simulator) {
      const started = await startSimulator(log);
      simulator = started.child;
      const child = simulator;
      killOnForcedExit.push({ kill: () => child.kill('SIGKILL') });
      config = { ...config, a1111: { ...config.a1111, baseUrl: started.url } };
    }
    const built = await buildWorker(config, log, inspector ? { inspect: inspector.inspect } : {});
    worker = built;
    killOnForcedExit.push({ kill: () => built.killNow() });
    if (flags.serveApi) {
      const port = Number(flags.apiPort);
      if (!Number.isInteger(port) || port < 0 || port > 65_535) {
        throw new UsageError(`--rp_api_port ${JSON.stringify(flags.apiPort)} must be a port number from 0 to 65535`);
      }
      const api = new LocalApi({ handler: built.handler, concurrency: config.runpod.concurrency, log });
      const url = await api.listen(flags.apiHost, port);
      log.info(`Local API listening on ${url}; point runpod-sdk's baseUrl at ${url}/v2`, { url });
      await new Promise<void>((resolve) => onSignals(log, () => resolve()));
      await api.close();
      return 0;
    }
    if (flags.testInput !== undefined || !config.runpod.getJobUrl) {
      const controller = new AbortController();
      onSignals(log, (signal) => controller.abort(`${signal} received`));
      return await runTestInput(built.handler, log, {
        testInput: flags.testInput,
        outputDir: flags.outputDir,
        signal: controller.signal,
      });
    }
    const loop = new WorkerLoop({
      settings: config.runpod,
      log,
      handler: built.handler,
      backend: built.backend,
      backendUrl: config.a1111.baseUrl,
    });
    runningJobs = () => loop.runningJobIds;
    onSignals(log, (signal) => loop.shutdown(`${signal} received`));
    return await loop.run();
  } catch (error) {
    if (error instanceof UsageError) {
      log.error(error.message);
      return 1;
    }
    log.error('the worker failed', errorFields(error));
    return 1;
  } finally {
    simulator?.kill('SIGTERM');
    await worker?.close();
    inspector?.close();
  }
}

const code = await main();
process.exitCode = code;
// The inspector package reconnects to an unreachable bridge forever; with it on, end explicitly.
if (process.env['STATELY_INSPECT']) process.exit(code);
