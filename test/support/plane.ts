/** Fake RunPod control planes for a test file, closed after each test. */
import { afterEach } from 'vitest';
import { FakeRunPod } from './fake-runpod.js';

const planes: FakeRunPod[] = [];

afterEach(async () => {
  await Promise.all(planes.splice(0).map((plane) => plane.close()));
});

/** A started fake control plane, closed after the current test. */
export async function plane(): Promise<FakeRunPod> {
  const fake = new FakeRunPod();
  planes.push(fake);
  await fake.start();
  return fake;
}
