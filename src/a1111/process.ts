/**
 * The WebUI as a child of the worker (A1111_LAUNCH_COMMAND), instead of a background `&` in a shell
 * script that nobody watches.
 *
 * Contract:
 * - the command runs under `/bin/sh -c` in a process group of its own, and signals go to the whole
 *   group, so a command line like `cd /webui && exec python webui.py …` is stopped as a whole;
 * - it gets the worker's environment without the worker's secrets and allocator settings (webuiEnvironment);
 * - its stdout and stderr reach the worker's log line by line, tagged `[A1111]` (a tqdm progress bar
 *   keeps only its last state), in whatever shape the worker's log has (RunPod's JSON lines on RunPod);
 * - its exit is known at once: `alive` turns false and `describeExit()` tells how it ended with the
 *   last lines it wrote, so a dead WebUI ends readiness waits and requests immediately; `exited`
 *   resolves (and the exit is logged) once its output has been read to the end, or OUTPUT_DRAIN_MS
 *   after it exited if something it started still holds the pipes open;
 * - `stop()` sends SIGTERM to the group and gives the whole group the grace period (a wrapper shell
 *   that dies at once does not cut it short), then SIGKILLs whatever is left; `kill()` SIGKILLs the
 *   group at once, for a worker that must exit now. Both reach what the command left behind even
 *   after the command itself has exited.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log/index.js';

/** What the A1111 client needs to know of a supervised WebUI. */
export interface BackendLiveness {
  /** The WebUI process runs now. */
  readonly alive: boolean;
  /** It will not run again: the crash policy gave up on it (supervisor.ts). */
  readonly isGone: boolean;
  /** How the current process ended, with its last lines; null while it runs. */
  describeExit(): string | null;
}

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * The worker's environment without its secrets, for the WebUI: a WebUI runs checkpoints and extensions
 * that need not be trusted with the RunPod API key, the control-plane URLs or the download tokens. Nor
 * does it get the glibc allocator settings the image makes for the worker (`MALLOC_*`): they are tuned
 * for a single-threaded process passing answers on, not for PyTorch's threads. A variable the WebUI
 * does need can be set in A1111_LAUNCH_COMMAND itself (`FOO=bar exec python …`).
 */
export function webuiEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(env).filter(([name]) => !isWorkerSecret(name) && !/^MALLOC_[A-Z_]+$/.test(name)),
  );
}

/** Variables the WebUI does not get: RunPod's key and URLs, tokens, keys, secrets, passwords. */
export function isWorkerSecret(name: string): boolean {
  return (
    /^RUNPOD_(AI_API_KEY|WEBHOOK_\w+)$/.test(name) ||
    /(_TOKEN|_API_KEY|_SECRET|_SECRET_KEY|_SECRET_ACCESS_KEY|_PASSWORD)$/.test(name) ||
    name === 'A1111_API_AUTH'
  );
}

/** How many processes of the group still run (not zombies), from /proc; null where there is no /proc. */
export function runningGroupMembers(pgid: number): number | null {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return null;
  }
  let running = 0;
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so read after the last ')'.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z' && state !== 'X') running++;
  }
  return running;
}

const TAIL_LINES = 20;
const OUTPUT_DRAIN_MS = 1_000;
const MAX_PENDING_CHARS = 64 * 1024;
const GROUP_POLL_MS = 50;

export class A1111Process {
  private child: ChildProcess | null = null;
  private exit: ProcessExit | null = null;
  private readonly tail: string[] = [];
  /** Resolves when the process has exited. */
  readonly exited: Promise<ProcessExit>;
  private resolveExit!: (exit: ProcessExit) => void;
  private stopping = false;
  /** Whether `exited` has resolved and the exit was logged. */
  private reported = false;

  constructor(
    private readonly command: string,
    private readonly log: Logger,
    /** Variables the WebUI gets beside the worker's environment (the model folders). */
    private readonly env: Record<string, string> = {},
  ) {
    this.exited = new Promise((resolve) => {
      this.resolveExit = resolve;
    });
  }

  /** True once the worker itself asked it to stop. */
  get stoppedOnPurpose(): boolean {
    return this.stopping;
  }

  get alive(): boolean {
    return this.child !== null && this.exit === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** How it ended, with its last lines, for error messages; null while it runs. */
  describeExit(): string | null {
    if (!this.exit) return null;
    const how = this.exit.signal ? `was killed by ${this.exit.signal}` : `exited with code ${this.exit.code}`;
    const last = this.tail.length > 0 ? `; its last lines:\n${this.tail.join('\n')}` : '';
    return `the A1111 process ${how}${last}`;
  }

  start(): void {
    if (this.child) return;
    this.log.info('starting A1111', { command: this.command });
    // `$NAME` in the command is expanded by the WebUI's shell, which does not have the worker's secrets.
    const hidden = [...this.command.matchAll(/\$\{?([A-Za-z_]\w*)/g)]
      .map((match) => match[1]!)
      .filter((name) => isWorkerSecret(name) && process.env[name] !== undefined);
    if (hidden.length > 0) {
      this.log.warn(
        `A1111_LAUNCH_COMMAND uses ${[...new Set(hidden)].join(', ')}, which the WebUI's environment leaves out (the worker's secrets stay with the worker); write the value into the command, or give it another name`,
      );
    }
    const child = spawn('/bin/sh', ['-c', this.command], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: { ...webuiEnvironment(process.env), ...this.env },
    });
    this.child = child;
    this.log.info('A1111 started', { pid: child.pid });
    for (const stream of [child.stdout!, child.stderr!]) this.readLines(stream);
    child.once('error', (error) => {
      this.log.error('A1111 could not be started', { error: error.message });
      this.exit ??= { code: null, signal: null };
      this.report(this.exit, this.stopping);
    });
    child.once('exit', (code, signal) => {
      this.exit = { code, signal };
      const exit = this.exit;
      const onPurpose = this.stopping;
      // Its last lines (the traceback that says why) may still be in the pipes: read them first.
      const drained = setTimeout(() => this.report(exit, onPurpose), OUTPUT_DRAIN_MS);
      child.once('close', () => {
        clearTimeout(drained);
        this.report(exit, onPurpose);
      });
    });
  }

  /**
   * Splits a stream on \n only: readline would also split on a lone \r and turn every redraw of a
   * progress bar into a line of its own.
   */
  private readLines(stream: Readable): void {
    const decoder = new StringDecoder('utf8');
    let pending = '';
    stream.on('data', (chunk: Buffer) => {
      pending += decoder.write(chunk);
      let newline = pending.indexOf('\n');
      while (newline >= 0) {
        this.forward(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
        newline = pending.indexOf('\n');
      }
      // A progress bar redraws itself with \r for as long as it runs: keep only its latest state.
      if (pending.length > MAX_PENDING_CHARS) {
        const redraw = pending.lastIndexOf('\r');
        pending = redraw > 0 ? pending.slice(redraw) : pending.slice(-MAX_PENDING_CHARS);
      }
    });
    stream.on('end', () => {
      pending += decoder.end();
      if (pending) this.forward(pending);
      pending = '';
    });
  }

  private forward(raw: string): void {
    // A progress bar rewrites its line with \r; only its last state is worth a log line.
    const line = raw
      .split('\r')
      .filter((part) => part.trim() !== '')
      .at(-1)
      ?.trimEnd();
    if (!line) return;
    this.tail.push(line);
    if (this.tail.length > TAIL_LINES) this.tail.shift();
    this.log.info(`[A1111] ${line}`);
  }

  private report(exit: ProcessExit, onPurpose: boolean): void {
    if (this.reported) return;
    this.reported = true;
    const fields = { code: exit.code, signal: exit.signal, pid: this.child?.pid };
    if (onPurpose) this.log.info('A1111 stopped', fields);
    else this.log.error('A1111 exited', fields);
    this.resolveExit(exit);
  }

  /**
   * SIGTERM to the group, up to `graceMs` for every process in it to end, then SIGKILL to whatever is
   * left (a WebUI's own children do not always follow it out).
   */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.child?.pid === undefined) return;
    this.stopping = true;
    if (this.groupAlive()) {
      this.signalGroup('SIGTERM');
      const deadline = Date.now() + graceMs;
      while (this.groupAlive() && Date.now() < deadline) await sleep(GROUP_POLL_MS);
      if (this.groupAlive()) this.signalGroup('SIGKILL');
    }
    await this.exited;
  }

  /** SIGKILL to the whole group, at once: for a worker exiting without waiting. */
  kill(): void {
    if (this.child?.pid === undefined) return;
    this.stopping = true;
    this.signalGroup('SIGKILL');
  }

  /** True while any process of the command's group is still there. */
  private groupAlive(): boolean {
    const pid = this.child?.pid;
    if (pid === undefined) return false;
    try {
      process.kill(-pid, 0);
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM';
    }
    // A group of zombies answers kill(0) too. As PID 1 of a container the worker inherits the WebUI's
    // orphans and nothing reaps them, so on Linux only a member that still runs counts.
    const running = runningGroupMembers(pid);
    return running === null || running > 0;
  }

  private signalGroup(signal: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // the group is already gone
    }
  }
}
