/**
 * The hidden temporary files downloads write before renaming them into place, and their clean-up.
 *
 * A temporary file is `.<file>.<host>~<uuid>.download` beside its final place (A1111's scanner ignores
 * it) and carries the name of the host that wrote it: at start-up a worker removes its own host's at
 * once (whatever wrote them died with the previous process), and, at start-up and before each
 * download, any other whose file nothing has written to for STALE_AFTER_MS (a live download that long
 * without data has already given up, so a download another worker is making on a shared volume is
 * never touched).
 */
import { randomUUID } from 'node:crypto';
import { readdir, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import type { Logger } from '../log/index.js';

const TEMP_SUFFIX = '.download';
/** A temporary file untouched this long belongs to no live download (those give up after a minute of silence). */
export const STALE_AFTER_MS = 10 * 60_000;
/** This host, as it appears in temporary file names: `.<file>.<host>~<uuid>.download`. */
export const HOST_TAG =
  hostname()
    .replace(/[^A-Za-z0-9-]/g, '-')
    .slice(0, 63) || 'host';
const TEMP_NAME = /\.([A-Za-z0-9-]+)~[0-9a-f-]{36}\.download$/;

/** A fresh temporary path for `file` in `dir`. */
export function temporaryPath(dir: string, file: string): string {
  // At most 1 + 140 + 1 + 63 + 1 + 36 + 9 bytes: within the 255-byte limit of a file name.
  return path.join(dir, `.${file.slice(0, 140)}.${HOST_TAG}~${randomUUID()}${TEMP_SUFFIX}`);
}

/**
 * Removes temporary files killed downloads left behind in `dir`: with `atStartUp`, every one this host
 * wrote (nothing of this process is downloading yet); always, those nothing has written to for
 * STALE_AFTER_MS. Returns their names.
 */
export async function removeStaleTemporaryFiles(
  dir: string,
  log: Logger,
  options: { atStartUp?: boolean; now?: number } = {},
): Promise<string[]> {
  const now = options.now ?? Date.now();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const candidates = names.filter((name) => name.startsWith('.') && name.endsWith(TEMP_SUFFIX));
  const removed: string[] = [];
  await Promise.all(
    candidates.map(async (name) => {
      const file = path.join(dir, name);
      const info = await stat(file).catch(() => null);
      if (!info?.isFile()) return;
      const ours = options.atStartUp === true && TEMP_NAME.exec(name)?.[1] === HOST_TAG;
      if (!ours && now - info.mtimeMs < STALE_AFTER_MS) return;
      await unlink(file).then(
        () => removed.push(name),
        () => undefined,
      );
    }),
  );
  if (removed.length > 0) log.info('removed stale partial downloads', { files: removed.sort() });
  return removed;
}
