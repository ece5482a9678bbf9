/** `replay <journal.jsonl>...`: replays each journal and prints its transitions (see docs/replay.md). */
import { readFile } from 'node:fs/promises';
import type { InspectionEvent } from 'xstate';
import { UsageError } from '../errors.js';
import { flushLogOutput, type Logger } from '../log/index.js';
import { parseJournal } from './journal.js';
import { formatReplay, replayJournal } from './replay.js';

/** `replay <files>`: replays each journal, prints its transitions; 1 when any diverges. */
export async function replayCommand(
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
