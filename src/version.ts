/** The worker's version and the User-Agent it sends to RunPod. */
import { readFileSync } from 'node:fs';
import os from 'node:os';

function readVersion(): string {
  for (const candidate of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(candidate, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'runpod-a1111-worker' && pkg.version) return pkg.version;
    } catch {
      // not there: the file layout differs between src/, dist/src/ and dist/bundle/
    }
  }
  return '0.0.0';
}

export const WORKER_VERSION = readVersion();

export const USER_AGENT = `RunPod-A1111-Worker/${WORKER_VERSION} (${os.type()} ${os.release()}; ${os.arch()}) Language/Node ${process.versions.node}`;
