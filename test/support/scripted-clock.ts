/**
 * A clock for driving the job machine along graph paths: it records each timer XState schedules and
 * fires the one a path step names, identified by its delay (tests give every named delay a distinct
 * value). Time order is the path's business here; scenario tests use xstate's SimulatedClock instead.
 */
export class ScriptedClock {
  private nextId = 1;
  private readonly timers = new Map<number, { fn: () => void; ms: number }>();

  setTimeout(fn: (...args: unknown[]) => void, ms: number): number {
    const id = this.nextId++;
    this.timers.set(id, { fn, ms });
    return id;
  }

  clearTimeout(id: number): void {
    this.timers.delete(id);
  }

  /** Fires the pending timer scheduled with `ms`; throws when there is none. */
  fire(ms: number): void {
    for (const [id, timer] of this.timers) {
      if (timer.ms !== ms) continue;
      this.timers.delete(id);
      timer.fn();
      return;
    }
    throw new Error(`no pending timer of ${ms} ms (pending: ${[...this.timers.values()].map((t) => t.ms).join(', ')})`);
  }

  pending(): number[] {
    return [...this.timers.values()].map((t) => t.ms);
  }
}
