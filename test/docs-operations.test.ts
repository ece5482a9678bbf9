/**
 * docs/operations.md stays true: every example input is one the worker takes, and the read routes it
 * lists are the allow-list's.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { OPERATIONS } from '../src/a1111/operations.js';
import { prepareJob } from '../src/job/prepare.js';
import { pngImage } from './support/images.js';
import { captureLog } from './support/logs.js';

const DOC = readFileSync(new URL('../docs/operations.md', import.meta.url), 'utf8');
const picture = pngImage(16, 16).toString('base64');

/** The doc's placeholders for an image, made a real one. */
function withPictures(value: unknown): unknown {
  if (typeof value === 'string') {
    if (/^<base64.*>$/.test(value)) return picture;
    if (value.endsWith('iVBORw0KGgo...')) return `${value.slice(0, -'iVBORw0KGgo...'.length)}${picture}`;
    return value;
  }
  if (Array.isArray(value)) return value.map(withPictures);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, withPictures(inner)]));
  }
  return value;
}

// Examples of whole inputs; the generic envelope's `"...": ...` payload is no example of a field.
const examples = [...DOC.matchAll(/```json\n([\s\S]*?)```/g)]
  .map((match) => match[1]!)
  .filter((text) => !text.includes('"..."'))
  .map((text) => JSON.parse(text) as Record<string, unknown>)
  .filter((example) => 'input' in example);

describe('docs/operations.md', () => {
  it('shows inputs the worker takes as they are', () => {
    expect(examples.length).toBe(8);
    for (const example of examples) {
      const prepared = prepareJob(
        withPictures(example['input']),
        { maxPixels: 16_777_216, bucket: false },
        captureLog().log,
      );
      expect(prepared.operation).toMatch(/^(GET|POST) \//);
    }
  });

  it('lists every read route of the allow-list', () => {
    const section = DOC.slice(DOC.indexOf('## Read routes'), DOC.indexOf('## Changing options'));
    const short = (path: string) => path.replace(/^\/sdapi\/v1/, '');
    const listed = [...section.matchAll(/`(\/[a-z0-9_/-]+)`/g)].map((match) => short(match[1]!));
    const reads = OPERATIONS.filter((operation) => operation.kind === 'read').map((operation) => short(operation.path));
    expect(new Set(listed)).toEqual(new Set(reads));
  });
});
