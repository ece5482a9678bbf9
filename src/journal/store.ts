/**
 * Where job journals go (JOURNAL_DIR) and which are kept (JOURNAL_KEEP): a recorder per job, and the
 * file written when the job ends, if it is kept. A journal that cannot be written is a warning, never a
 * failure of the job.
 */
import type { JobOutput, JobSettings } from '../../machines/job.types.js';
import { errorFields } from '../errors.js';
import type { Logger } from '../log/index.js';
import { WORKER_VERSION } from '../version.js';
import { JournalRecorder, writeJournal } from './journal.js';

export class JournalStore {
  constructor(
    private readonly dir: string,
    private readonly keep: 'failed' | 'all',
  ) {}

  /** A recorder for one job; `elapsed` is the time since the job started. */
  recorder(job: { id: string; input: unknown }, settings: JobSettings, elapsed: () => number): JournalRecorder {
    return new JournalRecorder({ jobId: job.id, workerVersion: WORKER_VERSION, settings, input: job.input }, elapsed);
  }

  /** Writes the journal of a finished job when it is kept. */
  async save(jobId: string, recorder: JournalRecorder, output: JobOutput, log: Logger): Promise<void> {
    if (this.keep !== 'all' && output.status !== 'failed') return;
    await writeJournal(this.dir, jobId, recorder.finish(output)).then(
      (file) => log.info('journal written', { file }),
      (error: unknown) => log.warn('could not write the job journal', errorFields(error)),
    );
  }
}
