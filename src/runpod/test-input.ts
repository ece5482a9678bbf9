/**
 * Test-input mode, as in RunPod's runtime: one job from `--test_input '<json>'` or ./test_input.json,
 * its result printed, exit code 0 on success and 1 on failure. The images are also written to
 * `<output-dir>/<job id>/image-<n>.png` with a `result.json` beside them, and in a terminal a
 * progress bar follows the generation.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ProgressUpdate } from '../../machines/job.types.js';
import { type JobOutcome, type JobRunner, type RunPodJob, toRunPodResult } from '../handler.js';
import type { Logger } from '../log.js';

/** A mistake in how the command was called; reported without a stack. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

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

function progressReporter(log: Logger): (update: ProgressUpdate) => void {
  if (process.stderr.isTTY) {
    return (update) => {
      const width = 30;
      const filled = Math.round(update.progress * width);
      // Drawn from the line's start with the cursor left there, so a log line written meanwhile replaces
      // the bar instead of being glued to its end.
      process.stderr.write(
        `\r\x1b[K[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.round(update.progress * 100)}%  step ${update.step}/${update.steps}  eta ${update.etaSeconds}s\r`,
      );
    };
  }
  return (update) => log.debug('progress', { ...update });
}

/**
 * Writes the images of a successful job to disk and a result.json with file names in place of base64;
 * resolves with that result.
 */
async function writeOutputs(outcome: JobOutcome, outputDir: string): Promise<Record<string, unknown>> {
  const dir = path.resolve(outputDir, outcome.jobId);
  await mkdir(dir, { recursive: true });
  if (!outcome.ok) {
    const result = toRunPodResult(outcome);
    await writeFile(path.join(dir, 'result.json'), `${JSON.stringify(result, null, 2)}\n`);
    return result;
  }
  const files: string[] = [];
  for (const [index, image] of outcome.output.images.entries()) {
    const file = path.join(dir, `image-${index}.png`);
    await writeFile(file, Buffer.from(image, 'base64'));
    files.push(file);
  }
  const result = { output: { ...outcome.output, images: files.map((file) => path.relative(process.cwd(), file)) } };
  await writeFile(path.join(dir, 'result.json'), `${JSON.stringify(result, null, 2)}\n`);
  return result;
}

/** Runs one job; resolves with the exit code. */
export async function runTestInput(
  runner: JobRunner,
  log: Logger,
  options: { testInput: string | undefined; outputDir: string; signal?: AbortSignal },
): Promise<number> {
  const job = await readTestJob(options.testInput);
  log.info(
    options.testInput === undefined
      ? 'Using test_input.json as job input.'
      : 'test_input set, using test_input as job input.',
  );
  const outcome = await runner.run(job, {
    onProgress: progressReporter(log),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  if (process.stderr.isTTY) process.stderr.write('\n');
  const result = await writeOutputs(outcome, options.outputDir);
  if (outcome.ok) {
    log.info(`Job ${job.id} completed successfully`, { images: (result['output'] as { images: string[] }).images });
    // The whole result, as RunPod would receive it, with the images' files in place of their base64.
    log.info(`Job result: ${JSON.stringify(result)}`);
    return 0;
  }
  log.error(`Job ${job.id} failed`, { error: result });
  return 1;
}
