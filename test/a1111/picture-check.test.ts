import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { pictureProblemIn, pictureProblemOf } from '../../src/a1111/picture-check.js';

function png(): string {
  const image = new PNG({ width: 4, height: 4 });
  image.data.fill(90);
  return PNG.sync.write(image).toString('base64');
}

const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0xff, 0xd9]).toString(
  'base64',
);
const webpBytes = Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from('WEBPVP8 '), Buffer.alloc(8)]);
webpBytes.writeUInt32LE(webpBytes.length - 8, 4);
const webp = webpBytes.toString('base64');

describe('a picture A1111 sent, looked at by its ends', () => {
  it('passes whole PNG, JPEG and WebP files, as strings and as bytes', () => {
    for (const image of [png(), jpeg, webp]) {
      expect(pictureProblemOf(image)).toBeNull();
      const raw = Buffer.from(`"${image}"`, 'latin1');
      expect(pictureProblemIn(raw, 1, raw.length - 1)).toBeNull();
    }
  });

  it('names what is wrong with a cut, garbled or foreign string', () => {
    const whole = png();
    expect(pictureProblemOf('')).toBe('it is empty');
    expect(pictureProblemOf(whole.slice(0, -1))).toMatch(/not that of padded base64/);
    expect(pictureProblemOf(whole.slice(0, Math.floor(whole.length / 8) * 4))).toBe('a PNG cut short (no IEND chunk)');
    expect(pictureProblemOf(`${'!'.repeat(8)}${whole.slice(8)}`)).toBe('it is not base64');
    expect(pictureProblemOf(Buffer.from('GIF89a plain text is no picture').toString('base64').padEnd(44, 'A'))).toMatch(
      /not a PNG, JPEG or WebP|padded/,
    );
    expect(pictureProblemOf(jpeg.slice(0, -4))).toBe('a JPEG cut short (no end marker)');
  });
});
