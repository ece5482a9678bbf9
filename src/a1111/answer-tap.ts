/**
 * A look at a successful answer's bytes while they still arrive, for passing a large answer on before
 * its end (the job's result streamed into RunPod's job-done post, src/job/early-result.ts). Only an
 * answer whose status says success and whose length is announced is followed; whether it is a valid
 * answer is known only once it is read in full, as before.
 */
export interface AnswerTap {
  /** A 2xx answer of `length` bytes begins: a follower for its bytes, or null to leave it alone. */
  begin(length: number): AnswerFollower | null;
}

export interface AnswerFollower {
  /** `bytes` up to `filled` is the answer so far; called after each read, `filled` growing. */
  progress(bytes: Buffer, filled: number): void;
  /** The answer could not be read to its end. */
  fail(reason: string): void;
}
