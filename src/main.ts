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
 * `--help` prints the usage and `--version` the version, and neither starts anything; a flag no mode
 * takes is refused (exit 2) with its name.
 *
 * `--rp_log_level LEVEL` overrides LOG_LEVEL. `--simulator` first starts the embedded A1111 SIMULATOR
 * (test-pattern images, no GPU) and points A1111_BASE_URL at it; `--output-dir` sets where test-input
 * mode writes images (default ./output).
 */
import type { ChildProcess } from 'node:child_process';
import { startSimulator } from './cli/embedded-simulator.js';
import { parseFlags } from './cli/flags.js';
import { exitOnCrash, killOnForcedExit, onSignals, reportRunningJobs } from './cli/process-exit.js';
import { usage } from './cli/usage.js';
import { type Config, ConfigError, loadConfig } from './config/index.js';
import { errorFields, UsageError } from './errors.js';
import { startStatelyInspector } from './inspect.js';
import { replayCommand } from './journal/replay-command.js';
import { createLoggerFromConfig } from './log/index.js';
import { LocalApi } from './runpod/local-api.js';
import { runTestInput } from './runpod/test-input.js';
import { WorkerLoop } from './runpod/worker-loop.js';
import { WORKER_VERSION } from './version.js';
import { buildWorker, type Worker } from './worker.js';

async function main(): Promise<number> {
  const flags = parseFlags();
  // Before any configuration is read: asking for help never starts a job.
  if (flags.help) {
    process.stdout.write(usage());
    return 0;
  }
  if (flags.version) {
    process.stdout.write(`${WORKER_VERSION}\n`);
    return 0;
  }
  if (flags.unknown.length > 0) {
    process.stderr.write(
      `unknown flag${flags.unknown.length > 1 ? 's' : ''} ${flags.unknown.join(', ')}: see --help\n`,
    );
    return 2;
  }
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
    reportRunningJobs(() => loop.runningJobIds);
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
