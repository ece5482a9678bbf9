/**
 * A job's result posted while A1111's answer still arrives. Once A1111's status and headers say
 * success, an answer that will go out inline as A1111's own bytes (PNG kept, under the inline limit,
 * at least RESULT_STREAM_MIN_BYTES) is written into the job's final post as it is read, all but its
 * last bytes: its closing brace is where the worker's key will go. The answer is still read in
 * full and checked as before; the runtime ends the post with the rest of the result once the job has
 * succeeded, or drops the unfinished post when the job ends any other way (a body that stops short is
 * no result RunPod can parse) and posts that outcome instead.
 */
import type { OutputChoice } from '../../machines/job.types.js';
import type { AnswerFollower, AnswerTap } from '../a1111/answer-tap.js';

/** Where the streamed bytes go: the job's final post, opened by the runtime. */
export interface ResultWriter {
  /** Writes the next bytes of the output's JSON. */
  write(bytes: Buffer): void;
  /** Drops the unfinished post. */
  abort(reason: string): void;
}

export interface EarlyResultLimits {
  /** Answers smaller than this are read, then posted (0: none is streamed). */
  minBytes: number;
  /** Answers larger than this do not go out inline (the inline limit, less the room for the worker's key). */
  maxBytes: number;
}

/**
 * What is held back of an answer's announced length until it is read: its closing brace and any
 * whitespace after it (an answer with more still goes out right, only not streamed).
 */
const HELD_BACK_BYTES = 64;

/**
 * The tap for one job's A1111 call. `choice` reads how the job wants its images when the answer
 * begins; the first answer followed is the only one (a retried call is read, then posted).
 *
 * @example
 * client.send(TXT2IMG, request, signal, earlyResultTap(open, { minBytes: 2e6, maxBytes: 15e6 }, () => choice));
 */
export function earlyResultTap(
  open: () => ResultWriter,
  limits: EarlyResultLimits,
  choice: () => OutputChoice,
): AnswerTap & { readonly streamed: boolean } {
  let begun = false;
  return {
    get streamed() {
      return begun;
    },
    begin(length): AnswerFollower | null {
      const { delivery, format } = choice();
      if (begun || limits.minBytes <= 0 || length < limits.minBytes || length > limits.maxBytes) return null;
      if (format !== 'png' || delivery === 'upload') return null;
      begun = true;
      const writer = open();
      const until = length - HELD_BACK_BYTES;
      let written = 0;
      return {
        progress(bytes, filled) {
          const end = Math.min(filled, until);
          if (end > written) {
            // A view of the answer's buffer, not a copy: the post holds it until it is on the wire.
            writer.write(bytes.subarray(written, end));
            written = end;
          }
        },
        fail(reason) {
          writer.abort(reason);
        },
      };
    },
  };
}
