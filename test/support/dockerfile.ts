/** The Dockerfile, read as the container tests read it (no Docker engine here). */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
/** The Dockerfile with continuation lines joined. */
export const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line && !line.startsWith('#'));

export function args(): Record<string, string> {
  return Object.fromEntries(
    instructions
      .filter((l) => l.startsWith('ARG ') && l.includes('='))
      .map((l) => l.slice(4).split('=', 2) as [string, string]),
  );
}

/** The ENV values of one stage (and of the stages it builds on, by `FROM <stage>`), `\$` and `\"` read as `$` and `"`. */
export function stageEnv(stage: string): Record<string, string> {
  const env: Record<string, string> = {};
  const chain: string[] = [];
  let current: string | undefined = stage;
  while (current) {
    chain.unshift(current);
    const from = instructions.find((l) => new RegExp(`^FROM \\S+ AS ${current}$`).test(l));
    const base = from?.split(' ')[1];
    current = base && instructions.some((l) => l.endsWith(` AS ${base}`)) ? base : undefined;
  }
  for (const name of chain) {
    const start = instructions.findIndex((l) => l.endsWith(` AS ${name}`));
    const end = instructions.findIndex((l, i) => i > start && l.startsWith('FROM '));
    for (const line of instructions.slice(start, end < 0 ? undefined : end)) {
      if (!line.startsWith('ENV ')) continue;
      for (const match of line.slice(4).matchAll(/(\w+)=("((?:[^"\\]|\\.)*)"|\S+)/g))
        env[match[1]!] = (match[3] ?? match[2]!).replace(/\\(["$\\])/g, '$1');
    }
  }
  return env;
}
