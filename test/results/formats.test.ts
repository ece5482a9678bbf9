/**
 * WebP and JPEG results: re-encoded by the worker from A1111's PNGs, read back here by libraries of
 * their own (sharp for the container and EXIF block, jpeg-js for the JPEG pixels, exif-reader for the
 * tags), with the generation parameters where A1111 stores them for those formats.
 */
import exifReader from 'exif-reader';
import jpeg from 'jpeg-js';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { JobOutcome } from '../../src/job/outcome.js';
import { decodePng } from '../support/png.js';
import { simulator } from '../support/simulator.js';
import { testWorker } from '../support/worker.js';

function output(outcome: JobOutcome): { images: string[]; info: string; worker: { notes: string[] } } {
  if (!outcome.ok) throw new Error(`the job failed: ${outcome.failure.code} ${outcome.failure.message}`);
  return outcome.output as never;
}

/** The UserComment of an EXIF block as A1111 reads it (piexif's UserComment.load). */
function userComment(exif: Buffer): string {
  const tags = exifReader(exif);
  const raw = tags.Photo?.UserComment as unknown as Buffer;
  expect(raw.subarray(0, 8).toString('latin1')).toBe('UNICODE\0');
  const text = Buffer.from(raw.subarray(8));
  return text.swap16().toString('utf16le');
}

/** Mean absolute difference of two RGB pictures of one size, per channel, 0-255. */
function meanDifference(a: Uint8Array, b: Uint8Array, channelsA: number, channelsB: number, pixels: number): number {
  let sum = 0;
  for (let i = 0; i < pixels; i++) {
    for (let c = 0; c < 3; c++) sum += Math.abs(a[i * channelsA + c]! - b[i * channelsB + c]!);
  }
  return sum / (pixels * 3);
}

const PROMPT = 'a lighthouse at dawn, café 🌊';

describe('image formats a job asks for', () => {
  it('answers WebP with the parameters in EXIF, the same picture, smaller than the PNG', async () => {
    const sim = await simulator({ keepAnswers: true });
    const { runner } = testWorker(sim.url);
    const job = { prompt: PROMPT, steps: 3, seed: 11, width: 512, height: 512, batch_size: 2 };

    const png = output(await runner.run({ id: 'png', input: job }));
    const webp = output(await runner.run({ id: 'webp', input: { ...job, output: { format: 'webp', quality: 80 } } }));

    const infotexts = JSON.parse(webp.info).infotexts as string[];
    expect(infotexts[0]).toContain(PROMPT);
    for (const [index, image] of webp.images.entries()) {
      const bytes = Buffer.from(image, 'base64');
      expect(bytes.toString('latin1', 0, 4) + bytes.toString('latin1', 8, 12)).toBe('RIFFWEBP');
      const meta = await sharp(bytes).metadata();
      expect(meta).toMatchObject({ format: 'webp', width: 512, height: 512, hasAlpha: false });
      expect(userComment(meta.exif!)).toBe(infotexts[index]);
      const pngBytes = Buffer.from(png.images[index]!, 'base64');
      expect(bytes.length).toBeLessThan(pngBytes.length / 2);
      const original = decodePng(pngBytes);
      const decoded = await sharp(bytes).raw().toBuffer();
      expect(meanDifference(original.data, decoded, 4, 3, 512 * 512)).toBeLessThan(12);
    }
    // The container's own chunks: VP8X flagging EXIF, and an EXIF chunk that starts with the TIFF header.
    const first = Buffer.from(webp.images[0]!, 'base64');
    expect(first.toString('latin1', 12, 16)).toBe('VP8X');
    expect(first[20]! & 0x08).toBe(0x08);
    const at = first.indexOf('EXIF', 12, 'latin1');
    expect(first.toString('latin1', at + 8, at + 12)).toBe('MM\0*');
    expect(first.readUInt32LE(4)).toBe(first.length - 8);
    expect(webp.worker.notes.join(' ')).toMatch(
      /2 image\(s\) re-encoded as webp at quality 80: \d+ bytes, from \d+ bytes of PNG/,
    );
    // A1111 generated PNGs, as always: the format is the worker's doing.
    expect(sim.callsTo('POST', '/txt2img')[1]?.body).not.toHaveProperty('output');
  });

  it('answers JPEG at the quality asked for, with the parameters in EXIF', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);
    const job = { prompt: PROMPT, steps: 2, seed: 5, width: 256, height: 192 };

    const low = output(await runner.run({ id: 'low', input: { ...job, output: { format: 'jpeg', quality: 30 } } }));
    const high = output(await runner.run({ id: 'high', input: { ...job, output: { format: 'jpeg', quality: 95 } } }));

    const lowBytes = Buffer.from(low.images[0]!, 'base64');
    const highBytes = Buffer.from(high.images[0]!, 'base64');
    expect(lowBytes.length).toBeLessThan(highBytes.length);
    for (const bytes of [lowBytes, highBytes]) {
      const decoded = jpeg.decode(bytes, { useTArray: true });
      expect([decoded.width, decoded.height]).toEqual([256, 192]);
      const meta = await sharp(bytes).metadata();
      expect(meta.format).toBe('jpeg');
      expect(userComment(meta.exif!)).toBe(JSON.parse(low.info).infotexts[0]);
    }
  });

  it('refuses a format or quality it does not know, before A1111 is called', async () => {
    const sim = await simulator();
    const { runner } = testWorker(sim.url);

    const outcome = await runner.run({ id: 'bad', input: { prompt: 'p', output: { format: 'png', quality: 50 } } });

    expect(outcome.ok).toBe(false);
    if (outcome.ok) return;
    expect(outcome.failure.details['problems']).toEqual([
      { field: 'output.quality', value: 50, rule: 'only with "format": "webp" or "jpeg"' },
    ]);
    expect(sim.calls.filter((call) => call.path.endsWith('/txt2img'))).toEqual([]);
  });
});
