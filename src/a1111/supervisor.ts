/**
 * The crash policy for a WebUI the worker runs itself (A1111_LAUNCH_COMMAND): when the process dies,
 * it is started again in place, at most `restartLimit` times within `restartWindowMs`; past that bound
 * the supervisor gives up and the WebUI is gone for good (the worker then asks RunPod for a fresh one).
 *
 * Contract:
 * - `state` is `running`, `restarting` (between an exit and the new process), `gone` (gave up) or
 *   `stopped` (the worker stopped it on purpose); every decision is logged with its reason;
 * - `alive` and `describeExit()` speak of the current process, so a request during a restart fails at
 *   once and says why; `gone` resolves with the last exit when the supervisor gives up;
 * - each process is an A1111Process: its output reaches the log, tagged `[A1111]`, whichever run it is.
 */
import type { Logger } from '../log/index.js';
import { A1111Process, type BackendLiveness } from './process.js';

export interface RestartPolicy {
  /** Restarts allowed within the window; 0 never restarts. */
  restartLimit: number;
  restartWindowMs: number;
  /** Pause between an exit and the restart. */
  restartDelayMs: number;
}

export type SupervisorState = 'running' | 'restarting' | 'gone' | 'stopped';

export class WebUiSupervisor implements BackendLiveness {
  private current: A1111Process | null = null;
  private restarts: number[] = [];
  private status: SupervisorState = 'running';
  private resolveGone!: (what: string) => void;
  private restartTimer: NodeJS.Timeout | undefined;
  /** Resolves, with how the last process ended, when the supervisor gives up. */
  readonly gone: Promise<string>;

  constructor(
    private readonly command: string,
    private readonly log: Logger,
    private readonly policy: RestartPolicy,
    private readonly now: () => number = Date.now,
    /** Variables each WebUI process gets beside the worker's environment (the model folders). */
    private readonly env: Record<string, string> = {},
  ) {
    this.gone = new Promise((resolve) => {
      this.resolveGone = resolve;
    });
  }

  get state(): SupervisorState {
    return this.status;
  }

  get alive(): boolean {
    return this.current?.alive ?? false;
  }

  get isGone(): boolean {
    return this.status === 'gone';
  }

  get pid(): number | undefined {
    return this.current?.pid;
  }

  /** How the current process ended, with its last lines; null while it runs. */
  describeExit(): string | null {
    return this.current?.describeExit() ?? null;
  }

  start(): void {
    if (this.current) return;
    this.launch();
  }

  /**
   * Resolves once the crash policy has decided about a process that died (restart, or give up), at
   * most `timeoutMs` later: a request that failed because the WebUI died (its socket may close before
   * the process's exit is known) is answered after this, so its answer knows whether the WebUI comes
   * back. Resolves at once when a decision was already made.
   */
  async decided(timeoutMs: number): Promise<void> {
    if (this.status !== 'running') return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.decisionMade, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  private decisionMade: Promise<void> = Promise.resolve();
  private decide!: () => void;

  private launch(): void {
    const process = new A1111Process(this.command, this.log, this.env);
    this.current = process;
    this.status = 'running';
    this.decisionMade = new Promise((resolve) => {
      this.decide = resolve;
    });
    process.start();
    void process.exited.then(() => {
      if (process.stoppedOnPurpose || this.current !== process) return;
      this.afterExit(process);
      this.decide();
    });
  }

  /** After an exit nobody asked for: restart within the bound, or give up. */
  private afterExit(process: A1111Process): void {
    const at = this.now();
    this.restarts = this.restarts.filter((t) => at - t < this.policy.restartWindowMs);
    const how = process.describeExit()?.split('\n')[0] ?? 'the A1111 process exited';
    const windowSeconds = Math.round(this.policy.restartWindowMs / 1000);
    if (this.restarts.length >= this.policy.restartLimit) {
      this.status = 'gone';
      this.log.error(
        this.policy.restartLimit === 0
          ? `${how}; the crash policy restarts it never (A1111_RESTART_LIMIT=0): this worker cannot serve any more`
          : `${how}, after ${this.restarts.length} restart(s) in ${windowSeconds} s; the crash policy allows ${this.policy.restartLimit}: this worker cannot serve any more`,
        { restarts: this.restarts.length, restartLimit: this.policy.restartLimit, windowSeconds },
      );
      this.resolveGone(process.describeExit() ?? how);
      return;
    }
    this.restarts.push(at);
    this.status = 'restarting';
    this.log.warn(
      `${how}; restarting it in place (restart ${this.restarts.length} of at most ${this.policy.restartLimit} in ${windowSeconds} s)`,
      { restart: this.restarts.length, restartLimit: this.policy.restartLimit, delayMs: this.policy.restartDelayMs },
    );
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.status === 'restarting') this.launch();
    }, this.policy.restartDelayMs);
  }

  /** Stops the WebUI (the whole process group, with a grace period) and restarts nothing. */
  async stop(graceMs?: number): Promise<void> {
    this.status = 'stopped';
    clearTimeout(this.restartTimer);
    await this.current?.stop(graceMs);
  }

  /** SIGKILL to the WebUI's group, at once: for a worker exiting without waiting. */
  kill(): void {
    this.status = 'stopped';
    clearTimeout(this.restartTimer);
    this.current?.kill();
  }
}
