/**
 * The benchmark runs end to end (`--quick`: a handful of jobs per scenario) and writes its results.
 * Its figures are not checked here: speed targets live in `npm run bench` and docs/performance.md.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const BENCH = fileURLToPath(new URL('../dist/bench/run.js', import.meta.url));

describe('npm run bench', () => {
  it('measures every scenario and writes bench/results.json', { timeout: 180_000 }, async () => {
    const out = path.join(await mkdtemp(path.join(tmpdir(), 'bench-')), 'results.json');
    await new Promise<void>((resolve, reject) =>
      execFile(process.execPath, [BENCH, '--quick', '--out', out], { timeout: 170_000 }, (error) =>
        error ? reject(error) : resolve(),
      ),
    );

    const results = JSON.parse(await readFile(out, 'utf8')) as {
      quick: boolean;
      machine: { cpus: number; node: string };
      scenarios: Record<string, unknown>;
      targets: Record<string, { value: number; target: number; ok: boolean }>;
    };
    expect(results.quick).toBe(true);
    expect(results.machine.node).toBe(process.version);
    expect(Object.keys(results.scenarios).sort()).toEqual([
      'formats',
      'idleGap',
      'imageUrls',
      'large',
      'link',
      'readiness',
      'small0',
      'small05',
      'soak',
      'upload',
    ]);
    expect(Object.keys(results.targets).length).toBe(15);
    // The uploads went to moto and the formats were measured: a result of URLs, WebP smaller than PNG.
    const upload = results.scenarios['upload'] as { imagesPerJob: number; postedBytes: number };
    expect(upload.imagesPerJob).toBe(8);
    expect(upload.postedBytes).toBeLessThan(100_000);
    // The pipe ran beside the worker, and the worker that reads answers first beside both.
    const link = results.scenarios['link'] as { deliveryMs: Record<string, { n: number }> };
    expect(Object.keys(link.deliveryMs).sort()).toEqual(['direct', 'pipe', 'readFirst', 'worker']);
    expect(link.deliveryMs['pipe']!.n).toBeGreaterThan(0);
    const formats = results.scenarios['formats'] as { rows: { format: string; ratioToPng: number }[] };
    expect(formats.rows.filter((row) => row.format === 'webp').every((row) => row.ratioToPng > 1)).toBe(true);
    for (const [name, figure] of Object.entries(results.targets)) {
      expect(Number.isFinite(figure.value), name).toBe(true);
      expect(typeof figure.ok, name).toBe('boolean');
    }
  });
});
