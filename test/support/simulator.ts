/**
 * Starts A1111 simulators for a test file and closes them afterwards.
 */
import { afterEach } from 'vitest';
import { A1111Simulator, type SimulatorOptions } from '../../src/simulator/server.js';

const running: A1111Simulator[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((sim) => sim.close()));
});

/** A started simulator, closed after the current test. */
export async function simulator(options: SimulatorOptions = {}): Promise<A1111Simulator> {
  const sim = new A1111Simulator(options);
  running.push(sim);
  await sim.start();
  return sim;
}

/**
 * A simulator whose address is known at once but which boots in the background (`bootDelayMs` with the
 * port closed). `started` resolves when it listens.
 */
export async function bootingSimulator(
  options: SimulatorOptions,
): Promise<{ sim: A1111Simulator; started: Promise<string> }> {
  const sim = new A1111Simulator(options);
  running.push(sim);
  await sim.reservePort();
  return { sim, started: sim.start() };
}
