/**
 * The boundaries STYLE.md draws, checked on the source: the simulator is an independent peer of the
 * worker (neither imports the other), and the machine definitions do no I/O.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(path.join(ROOT, dir), { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.relative(ROOT, path.join(e.parentPath, e.name)));
}

/** Every module specifier a file imports, statically or dynamically, with whether it is type-only. */
async function importsOf(file: string): Promise<{ specifier: string; typeOnly: boolean }[]> {
  const text = await readFile(path.join(ROOT, file), 'utf8');
  const found: { specifier: string; typeOnly: boolean }[] = [];
  for (const match of text.matchAll(/^\s*(import|export)\s+(type\s+)?[^'"]*?from\s+['"]([^'"]+)['"]/gm)) {
    found.push({ specifier: match[3]!, typeOnly: Boolean(match[2]) });
  }
  for (const match of text.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g))
    found.push({ specifier: match[1]!, typeOnly: false });
  return found;
}

function resolved(file: string, specifier: string): string {
  return specifier.startsWith('.') ? path.normalize(path.join(path.dirname(file), specifier)) : specifier;
}

describe('module boundaries', () => {
  it('keeps the simulator free of worker code: it imports only Node and itself', async () => {
    const files = await sourceFiles('src/simulator');
    expect(files.length).toBeGreaterThan(3);
    for (const file of files) {
      for (const { specifier } of await importsOf(file)) {
        const target = resolved(file, specifier);
        const allowed = specifier.startsWith('node:') || target.startsWith('src/simulator/');
        expect(allowed, `${file} imports ${specifier}`).toBe(true);
      }
    }
  });

  it('keeps the worker free of the simulator: nothing outside it imports it', async () => {
    const files = [...(await sourceFiles('src')), ...(await sourceFiles('machines'))].filter(
      (f) => !f.startsWith('src/simulator/'),
    );
    for (const file of files) {
      for (const { specifier } of await importsOf(file)) {
        expect(resolved(file, specifier).startsWith('src/simulator/'), `${file} imports ${specifier}`).toBe(false);
      }
    }
  });

  it('keeps the machine definitions pure: xstate, types, and the error table only', async () => {
    for (const file of await sourceFiles('machines')) {
      for (const { specifier, typeOnly } of await importsOf(file)) {
        const target = resolved(file, specifier);
        const allowed =
          specifier === 'xstate' || typeOnly || target.startsWith('machines/') || target === 'src/errors.js';
        expect(allowed, `${file} imports ${specifier}`).toBe(true);
      }
    }
  });
});
