/**
 * Test-input mode, as in RunPod's runtime: one job from `--test_input '<json>'` or ./test_input.json,
 * its result printed, exit code 0 on success and 1 on failure. The files the output holds (images) are
 * also written to `<output-dir>/<job id>/` with a `result.json` beside them, and in a terminal a
 * progress bar (cli-progress) follows the job.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SingleBar } from 'cli-progress';
import { UsageError } from '../errors.js';
import type { Logger } from '../log/index.js';
import type { HandlerOutcome, JobHandler, ProgressOutput, RunPodJob } from './handler.js';
import { resultBody } from './protocol.js';

/** Reads the job: `--test_input` (a JSON string) wins over ./test_input.json. */
export async function readTestJob(testInput: string | undefined): Promise<RunPodJob> {
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

/** What the bar says beside its percentage: the step, or the bytes of a download. */
function progressDetail(progress: ProgressOutput): string {
  const eta = typeof progress['eta_seconds'] === 'number' ? `  eta ${progress['eta_seconds']}s` : '';
  if (typeof progress['bytes'] === 'number') {
    const mb = (bytes: unknown) => (typeof bytes === 'number' ? `${(bytes / 1e6).toFixed(1)} MB` : '?');
    return `downloading ${mb(progress['bytes'])} of ${mb(progress['total_bytes'])}${eta}`;
  }
  return `step ${String(progress['step'] ?? '?')}/${String(progress['steps'] ?? '?')}${eta}`;
}

/** A progress bar on standard error in a terminal; debug lines otherwise. */
function progressReporter(log: Logger): { update(progress: ProgressOutput): void; stop(): void } {
  if (!process.stderr.isTTY) {
    return { update: (progress) => log.debug('progress', { ...progress }), stop: () => undefined };
  }
  const bar = new SingleBar({
    stream: process.stderr,
    format: '[{bar}] {percentage}%  {detail}',
    barsize: 30,
    barCompleteChar: '#',
    barIncompleteChar: '.',
    hideCursor: false,
    clearOnComplete: false,
  });
  // The cursor goes back to the line's start after each redraw, so a log line written meanwhile
  // replaces the bar instead of being glued to its end.
  bar.on('redraw-post', () => process.stderr.write('\r'));
  let started = false;
  return {
    update(progress) {
      const value = Math.round(Math.min(1, Math.max(0, progress.progress)) * 1000);
      if (!started) {
        started = true;
        bar.start(1000, value, { detail: progressDetail(progress) });
      } else bar.update(value, { detail: progressDetail(progress) });
    },
    stop() {
      if (!started) return;
      bar.stop();
      process.stderr.write('\n');
    },
  };
}

/**
 * Writes a finished job's files and a result.json (the files' paths in place of their data); resolves
 * with that result.
 */
async function writeOutputs(
  handler: JobHandler,
  outcome: HandlerOutcome,
  outputDir: string,
): Promise<{ result: object; files: string[] }> {
  const dir = path.resolve(outputDir, outcome.jobId);
  await mkdir(dir, { recursive: true });
  const body = resultBody(outcome, { stopPod: false });
  let result: object = body;
  const written: string[] = [];
  if ('output' in body) {
    const { files, output } = handler.localFiles(body.output, dir);
    for (const file of files) {
      await writeFile(file.path, file.data);
      written.push(path.relative(process.cwd(), file.path));
    }
    result = { output };
  }
  await writeFile(path.join(dir, 'result.json'), `${JSON.stringify(result, null, 2)}\n`);
  return { result, files: written };
}

/** Runs one job; resolves with the exit code. */
export async function runTestInput(
  handler: JobHandler,
  log: Logger,
  options: { testInput: string | undefined; outputDir: string; signal?: AbortSignal },
): Promise<number> {
  const job = await readTestJob(options.testInput);
  log.info(
    options.testInput === undefined
      ? 'Using test_input.json as job input.'
      : 'test_input set, using test_input as job input.',
  );
  const progress = progressReporter(log);
  const outcome = await handler.run(job, {
    onProgress: (update) => progress.update(update),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  progress.stop();
  const { result, files } = await writeOutputs(handler, outcome, options.outputDir);
  if (outcome.ok) {
    log.info(`Job ${job.id} completed successfully`, { files });
    // The whole result, as RunPod would receive it, with the files' paths in place of their data.
    log.info(`Job result: ${JSON.stringify(result)}`);
    return 0;
  }
  log.error(`Job ${job.id} failed`, { error: result });
  return 1;
}
