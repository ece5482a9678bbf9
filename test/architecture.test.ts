/**
 * The boundaries STYLE.md and docs/architecture.md draw, checked on the source: the simulator is an
 * independent peer of the worker (neither imports the other), the machine definitions do no I/O, the
 * RunPod runtime knows nothing of A1111, and no import points from a lower layer back up.
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
  it('keeps the simulator free of worker code: it imports only Node, libraries and itself', async () => {
    const files = await sourceFiles('src/simulator');
    expect(files.length).toBeGreaterThan(3);
    for (const file of files) {
      for (const { specifier } of await importsOf(file)) {
        const target = resolved(file, specifier);
        const library = !specifier.startsWith('.');
        const allowed = specifier.startsWith('node:') || library || target.startsWith('src/simulator/');
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

  it('keeps the RunPod runtime free of A1111: src/runpod imports no backend, job or machine code', async () => {
    const forbidden = ['src/a1111/', 'src/job/', 'src/models/', 'src/journal/', 'machines/', 'src/worker.js'];
    for (const file of await sourceFiles('src/runpod')) {
      for (const { specifier } of await importsOf(file)) {
        const target = resolved(file, specifier);
        expect(
          forbidden.some((prefix) => target.startsWith(prefix)),
          `${file} imports ${specifier}`,
        ).toBe(false);
      }
    }
  });

  it('has no import from a lower layer up: only the entry point and the composition root build the worker', async () => {
    // Lower numbers are lower layers; a module may import its own layer and the ones below.
    const layers: [string, number][] = [
      ['src/main.js', 6],
      ['src/cli/', 6],
      ['src/worker.js', 5],
      ['src/tools/', 5],
      ['src/job/', 4],
      ['src/journal/', 4],
      ['src/inspect.js', 4],
      ['machines/', 3],
      ['src/results/', 3],
      ['src/a1111/', 2],
      ['src/models/', 2],
      ['src/runpod/', 2],
      ['src/net/', 1],
      ['src/images/', 1],
      ['src/log/', 1],
      ['src/config/', 0],
      ['src/json/', 0],
      ['src/errors.js', 0],
      ['src/abort.js', 0],
      ['src/memory.js', 0],
      ['src/version.js', 0],
    ];
    const layerOf = (file: string) => layers.find(([prefix]) => file.replace(/\.ts$/, '.js').startsWith(prefix))?.[1];
    const files = [...(await sourceFiles('src')), ...(await sourceFiles('machines'))].filter(
      (f) => !f.startsWith('src/simulator/'),
    );
    for (const file of files) {
      const own = layerOf(file);
      expect(own, `${file} has no layer`).toBeDefined();
      for (const { specifier } of await importsOf(file)) {
        if (!specifier.startsWith('.')) continue;
        const target = layerOf(resolved(file, specifier));
        expect(target, `${file} imports ${specifier}, which has no layer`).toBeDefined();
        expect(target! <= own!, `${file} (layer ${own}) imports ${specifier} (layer ${target})`).toBe(true);
      }
    }
  });

  it('keeps backends apart: A1111 code and model downloads import neither each other nor the runtime', async () => {
    for (const [dir, forbidden] of [
      ['src/a1111', ['src/models/', 'src/runpod/']],
      ['src/models', ['src/a1111/', 'src/runpod/']],
    ] as const) {
      for (const file of await sourceFiles(dir)) {
        for (const { specifier } of await importsOf(file)) {
          const target = resolved(file, specifier);
          expect(
            forbidden.some((prefix) => target.startsWith(prefix)),
            `${file} imports ${specifier}`,
          ).toBe(false);
        }
      }
    }
  });
});
