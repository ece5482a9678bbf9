/**
 * Journals recorded by earlier versions replay on today's machine once read in its terms.
 *
 * Version 3 → 4: `delivering` after A1111's answer (see toVersion4).
 * Versions 1
 * and 2 come from the worker that served txt2img only: its A1111 call was the actor `txt2img` with
 * the input `{jobId, request}`, a prepared job had no operation, no image URLs and was always
 * verified, and `checkRoute` and `watchProgress` did not take the operation. Read in today's terms
 * they mean exactly that: the txt2img operation, no URLs, verification on.
 */
import type { JournalHeader, JournalLine } from './journal.js';

const TXT2IMG_KEY = 'POST /sdapi/v1/txt2img';
const OLD_CALL = 'txt2img';
const CALL = 'callA1111';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A version-2 prepared job (`{request, checkpoint, model, notes}`) as version 3 writes it. */
function preparedJob(job: unknown): unknown {
  if (!isObject(job) || 'operation' in job) return job;
  const { request, ...rest } = job;
  return { operation: TXT2IMG_KEY, request, imageUrls: 0, verify: true, ...rest };
}

function renamedEventType(type: string): string {
  return type === `xstate.done.actor.${OLD_CALL}` || type === `xstate.error.actor.${OLD_CALL}`
    ? type.replace(OLD_CALL, CALL)
    : type;
}

function upgradeEvent(event: Record<string, unknown>): Record<string, unknown> {
  const type = typeof event['type'] === 'string' ? event['type'] : '';
  const upgraded: Record<string, unknown> = { ...event, type: renamedEventType(type) };
  if (event['actorId'] === OLD_CALL) upgraded['actorId'] = CALL;
  if (type === 'xstate.done.actor.validateInput') upgraded['output'] = preparedJob(event['output']);
  return upgraded;
}

function upgradeInvoke(src: string, input: unknown): { src: string; input: unknown } {
  const fields = isObject(input) ? input : {};
  switch (src) {
    case OLD_CALL:
      return { src: CALL, input: { jobId: fields['jobId'], operation: TXT2IMG_KEY, request: fields['request'] } };
    case 'checkRoute':
      return { src, input: { operation: TXT2IMG_KEY } };
    case 'watchProgress':
      return { src, input: { ...fields, operation: TXT2IMG_KEY } };
    case 'verifyModels':
      return { src, input: { ...fields, job: preparedJob(fields['job']) } };
    default:
      return { src, input };
  }
}

/** The lines of a version 1 or 2 journal as version 3 records them. */
function toVersion3(lines: readonly JournalLine[]): JournalLine[] {
  return lines.map((line) => {
    switch (line.type) {
      case 'event':
        return { ...line, event: upgradeEvent(line.event) };
      case 'step':
        return { ...line, event: renamedEventType(line.event) };
      case 'invoke':
        return { ...line, ...upgradeInvoke(line.src, line.input) };
      default:
        return line;
    }
  });
}

const CALL_DONE = `xstate.done.actor.${CALL}`;
const DELIVER = 'deliverResult';

/**
 * The lines of a version 3 journal as version 4 records them. Version 4 has `delivering` between A1111's
 * answer and `succeeded`; before it, an answer was the result as it came, which is what `delivering`
 * makes of it when the job gives no `output` block (none could): the answer unchanged, no upload, no note.
 * Each line keeps the number it has in the recording; the lines put in take the number of A1111's answer.
 */
function toVersion4(
  lines: readonly JournalLine[],
  numbers: readonly number[],
): { lines: JournalLine[]; numbers: number[] } {
  const header = lines[0] as JournalHeader;
  const out: JournalLine[] = [];
  const outNumbers: number[] = [];
  let operation: unknown = null;
  let answer: { response: unknown; number: number } | null = null;
  lines.forEach((line, index) => {
    const number = numbers[index]!;
    if (line.type === 'invoke' && line.src === CALL && isObject(line.input)) operation = line.input['operation'];
    if (line.type === 'event' && line.event['type'] === CALL_DONE) answer = { response: line.event['output'], number };
    if (line.type === 'step' && line.event === CALL_DONE && line.state === 'succeeded' && answer) {
      const { response, number: at } = answer;
      const input = { jobId: header.jobId, operation, response, output: null };
      const delivered = {
        type: `xstate.done.actor.${DELIVER}`,
        output: { response, uploads: [], notes: [] },
        actorId: DELIVER,
      };
      out.push(
        { type: 'invoke', at: line.at, src: DELIVER, input },
        { ...line, state: 'delivering' },
        { type: 'event', at: line.at, event: delivered },
        { ...line, event: delivered.type },
      );
      outNumbers.push(at, number, at, number);
      return;
    }
    out.push(line);
    outNumbers.push(number);
  });
  return { lines: out, numbers: outNumbers };
}

/**
 * A journal of any readable version in today's terms, with the recording's line number of each line.
 *
 * @example
 * const { lines, numbers } = upgradeJournal(parseJournal(text));
 */
export function upgradeJournal(recorded: readonly JournalLine[]): { lines: JournalLine[]; numbers: number[] } {
  const header = recorded[0];
  const numbers = recorded.map((_, index) => index + 1);
  if (header?.type !== 'journal' || header.version >= 4) return { lines: [...recorded], numbers };
  const version3 = header.version >= 3 ? [...recorded] : toVersion3(recorded);
  return toVersion4(version3, numbers);
}
