/**
 * Journals recorded before version 3 replay on today's machine once read in its terms. Versions 1
 * and 2 come from the worker that served txt2img only: its A1111 call was the actor `txt2img` with
 * the input `{jobId, request}`, a prepared job had no operation, no image URLs and was always
 * verified, and `checkRoute` and `watchProgress` did not take the operation. Read in today's terms
 * they mean exactly that: the txt2img operation, no URLs, verification on.
 */
import type { JournalLine } from './journal.js';

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

/** The lines of a version 1 or 2 journal as version 3 records them; a version 3 journal as it is. */
export function upgradeJournal(lines: readonly JournalLine[]): JournalLine[] {
  const header = lines[0];
  if (header?.type !== 'journal' || header.version >= 3) return [...lines];
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
