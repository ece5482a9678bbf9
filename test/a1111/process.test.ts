/**
 * The supervised WebUI process, with real shell commands standing in for it.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { A1111Process, runningGroupMembers } from '../../src/a1111/process.js';
import { captureLog } from '../support/logs.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits for the `[A1111] <prefix><number>` line the command writes, and gives the number (a pid). */
async function loggedNumber(records: () => Record<string, unknown>[], prefix: string): Promise<number> {
  const tag = `[A1111] ${prefix}`;
  let line: Record<string, unknown> | undefined;
  await expect
    .poll(() => (line = records().find((r) => String(r['message']).startsWith(tag))), { timeout: 10_000 })
    .toBeDefined();
  return Number(String(line!['message']).slice(tag.length));
}

describe('a supervised WebUI process', () => {
  it('reports its exit with the last lines it wrote, even those written after the command itself ended', async () => {
    const { log, records } = captureLog({ format: 'json' });
    // The command exits at once; something it started writes the reason a moment later.
    const webui = new A1111Process(`echo booting; (sleep 0.3; echo 'CUDA out of memory' >&2) & exit 3`, log);

    webui.start();
    const exit = await webui.exited;

    expect(exit).toEqual({ code: 3, signal: null });
    expect(webui.alive).toBe(false);
    expect(webui.describeExit()).toBe(
      'the A1111 process exited with code 3; its last lines:\nbooting\nCUDA out of memory',
    );
    expect(records().map((r) => r['message'])).toEqual(
      expect.arrayContaining(['[A1111] booting', '[A1111] CUDA out of memory', 'A1111 exited']),
    );
  });

  it('keeps only the last state of a progress bar', async () => {
    const { log } = captureLog({ format: 'json' });
    const webui = new A1111Process(`printf '10%%\\r50%%\\r100%%\\n'; exit 1`, log);

    webui.start();
    await webui.exited;

    expect(webui.describeExit()).toContain('its last lines:\n100%');
    expect(webui.describeExit()).not.toContain('50%');
  });

  it('keeps a progress bar that redraws for hundreds of kilobytes as one line, its last state', async () => {
    const { log, records } = captureLog({ format: 'json' });
    const webui = new A1111Process(
      `i=0; while [ $i -lt 20000 ]; do printf '%05d/20000 it\r' $i; i=$((i+1)); done; printf '20000/20000 it\n'; exit 1`,
      log,
    );

    webui.start();
    await webui.exited;

    expect(records().filter((r) => String(r['message']).startsWith('[A1111]'))).toHaveLength(1);
    expect(webui.describeExit()).toMatch(/its last lines:\n20000\/20000 it$/);
  });

  it('stops the whole process group, including a child that ignores SIGTERM', async () => {
    const { log, records } = captureLog({ format: 'json' });
    const webui = new A1111Process(`sh -c 'trap "" TERM; echo child $$; while :; do sleep 0.05; done' & wait`, log);

    webui.start();
    const child = await loggedNumber(records, 'child ');
    await webui.stop(500);

    expect(webui.stoppedOnPurpose).toBe(true);
    expect(records().some((r) => r['message'] === 'A1111 stopped')).toBe(true);
    // SIGKILL is delivered by the time stop() returns, but the kernel may take a moment to reap.
    await expect.poll(() => alive(child), { timeout: 5_000 }).toBe(false);
  });

  it('gives the whole group its grace period, even when the wrapper shell dies at once', async () => {
    const { log, records } = captureLog({ format: 'json' });
    const dir = await mkdtemp(path.join(tmpdir(), 'webui-stop-'));
    const marker = path.join(dir, 'shut-down-cleanly');
    // No `exec`: the shell stays as the leader and dies on SIGTERM; node needs 1.5 s to shut down.
    const child = `process.on('SIGTERM', () => setTimeout(() => { require('fs').writeFileSync(${JSON.stringify(marker)}, 'ok'); process.exit(0); }, 1500)); console.log('up'); setInterval(() => {}, 1000);`;
    const webui = new A1111Process(`"${process.execPath}" -e ${JSON.stringify(child)}; true`, log);

    webui.start();
    // Its SIGTERM handler is in place once it has said so.
    await expect.poll(() => records().some((r) => r['message'] === '[A1111] up'), { timeout: 10_000 }).toBe(true);
    await webui.stop(5_000);

    expect(existsSync(marker)).toBe(true);
  });

  it('reaches what the command left behind after it exited', async () => {
    const { log, records } = captureLog({ format: 'json' });
    const webui = new A1111Process(`sleep 30 & echo left $!; exit 0`, log);

    webui.start();
    const left = await loggedNumber(records, 'left ');
    await expect.poll(() => webui.alive, { timeout: 5_000 }).toBe(false);
    expect(alive(left)).toBe(true);
    webui.kill();

    await expect.poll(() => alive(left), { timeout: 5_000 }).toBe(false);
    await webui.exited;
  });

  /** Runs `command` as the WebUI with `env` added to the worker's; its output lines and the log records. */
  async function runWithEnv(command: string, env: Record<string, string>) {
    const { log, records } = captureLog({ format: 'json' });
    const saved = { ...process.env };
    Object.assign(process.env, env);
    try {
      const webui = new A1111Process(command, log);
      webui.start();
      await webui.exited;
    } finally {
      for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    }
    const output = records()
      .map((r) => String(r['message']))
      .filter((m) => m.startsWith('[A1111] '))
      .join('\n');
    return { output, records };
  }

  it('keeps the worker’s secrets out of the WebUI’s environment, and passes everything else', async () => {
    const { output, records } = await runWithEnv('env; echo "auth=$A1111_API_AUTH"', {
      RUNPOD_AI_API_KEY: 'rp_secret',
      RUNPOD_WEBHOOK_GET_JOB: 'https://api.runpod.ai/v2/ep/job-take/$RUNPOD_POD_ID',
      HF_TOKEN: 'hf_secret',
      CIVITAI_TOKEN: 'civitai_secret',
      A1111_API_AUTH: 'user:secret',
      AWS_SECRET_ACCESS_KEY: 'aws_secret',
      CUDA_VISIBLE_DEVICES: '0',
      RUNPOD_POD_ID: 'pod-7',
    });

    expect(output).toContain('[A1111] CUDA_VISIBLE_DEVICES=0');
    expect(output).toContain('[A1111] RUNPOD_POD_ID=pod-7');
    expect(output).not.toMatch(
      /secret|RUNPOD_AI_API_KEY|RUNPOD_WEBHOOK_GET_JOB|HF_TOKEN|CIVITAI_TOKEN|A1111_API_AUTH=/,
    );
    expect(output).toContain('[A1111] auth=');
    // A command that expands a left-out variable is told so, by name and without the value.
    const warning = records().find((r) => r['level'] === 'warn');
    expect(String(warning?.['message'])).toMatch(
      /^A1111_LAUNCH_COMMAND uses A1111_API_AUTH, which the WebUI's environment leaves out/,
    );
    expect(JSON.stringify(records())).not.toContain('user:secret');
  });

  it('leaves the worker’s glibc allocator settings out of the WebUI’s environment', async () => {
    const { output } = await runWithEnv('env', {
      MALLOC_ARENA_MAX: '2',
      MALLOC_TOP_PAD_: '2097152',
      CUDA_VISIBLE_DEVICES: '0',
    });

    expect(output).toContain('[A1111] CUDA_VISIBLE_DEVICES=0');
    expect(output).not.toContain('MALLOC_');
  });

  it('counts a group’s zombies as gone, so a stop does not wait out its grace for them', async () => {
    // The exec'd `sleep 30` never waits for its child, which turns into a zombie of the group.
    const group = spawn('/bin/sh', ['-c', 'sleep 0.1 & exec sleep 30'], { detached: true, stdio: 'ignore' });
    const pgid = group.pid!;
    try {
      await expect.poll(() => runningGroupMembers(pgid), { timeout: 5_000 }).toBe(1);
      expect(alive(-pgid)).toBe(true); // kill(0) still answers for the zombie and its parent
    } finally {
      process.kill(-pgid, 'SIGKILL');
    }
  });

  it('kills the whole group at once when the worker must exit now', async () => {
    const { log } = captureLog({ format: 'json' });
    const webui = new A1111Process(`trap "" TERM; while :; do sleep 0.05; done`, log);

    webui.start();
    webui.kill();
    const exit = await webui.exited;

    expect(exit.signal).toBe('SIGKILL');
  });
});
