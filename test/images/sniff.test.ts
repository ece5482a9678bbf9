/**
 * Both readers of image headers, the worker's (src/images/sniff.ts) and the simulator's PIL stand-in
 * (src/simulator/images.ts), on real files of every format A1111 opens.
 */
import { describe, expect, it } from 'vitest';
import { imageProblem, sniffImage } from '../../src/images/sniff.js';
import { openImage } from '../../src/simulator/images.js';
import {
  bmpImage,
  bombPng,
  gifImage,
  jpegBomb,
  jpegFrameHeader,
  jpegImage,
  pngImage,
  webpImage,
} from '../support/images.js';

const FILES: [string, Buffer, string][] = [
  ['png', pngImage(40, 30), 'PNG'],
  ['jpeg', jpegImage(40, 30), 'JPEG'],
  ['webp', webpImage(40, 30), 'WEBP'],
  ['gif', gifImage(40, 30), 'GIF'],
  ['bmp', bmpImage(40, 30), 'BMP'],
];

describe('reading an image’s format and size from its first bytes', () => {
  for (const [format, bytes, pil] of FILES) {
    it(`reads a ${format} of 40 × 30`, () => {
      expect(sniffImage(bytes)).toEqual({ format, width: 40, height: 30 });
      expect(openImage(bytes)).toMatchObject({ format: pil, width: 40, height: 30 });
    });
  }

  it('reads the size a bomb claims without decoding it, and knows a text file is no image', () => {
    expect(sniffImage(bombPng(60_000, 50_000))).toEqual({ format: 'png', width: 60_000, height: 50_000 });
    expect(sniffImage(Buffer.from('<html></html>'))).toBeNull();
    expect(openImage(Buffer.from('<html></html>'))).toBeNull();
  });

  it('leaves the size of a JPEG open when its frame header is past the bytes given, and refuses one never stated', () => {
    const jpeg = jpegImage(40, 30);
    expect(sniffImage(jpeg.subarray(0, 30))).toEqual({ format: 'jpeg', width: null, height: null });
    expect(imageProblem(sniffImage(jpeg.subarray(0, 30)), 1_000_000)).toBe(
      'its pixel size cannot be read from its header',
    );
  });
});

describe('bombs that hide their size from a reader that looks less closely than PIL', () => {
  const cap = 67_108_864;

  it('finds a JPEG frame header behind junk bytes, which PIL skips', () => {
    const hidden = jpegBomb(65_000, 65_000);
    expect(sniffImage(hidden)).toEqual({ format: 'jpeg', width: 65_000, height: 65_000 });
    expect(imageProblem(sniffImage(hidden), cap)).toContain('65000×65000 pixels, more than IMAGE_MAX_PIXELS');
  });

  it('counts the largest of several JPEG frame headers, not the first', () => {
    const jpeg = jpegImage(40, 30);
    const second = Buffer.concat([
      jpeg.subarray(0, 2),
      jpegFrameHeader(16, 16),
      jpegFrameHeader(60_000, 60_000),
      jpeg.subarray(2),
    ]);
    expect(sniffImage(second)).toMatchObject({ width: 60_000, height: 60_000 });
  });

  it('walks a WebP’s chunks to the one that states its size', () => {
    const webp = webpImage(40, 30);
    const alpha = Buffer.concat([Buffer.from('ALPH'), Buffer.from([4, 0, 0, 0]), Buffer.alloc(4)]);
    const extended = Buffer.concat([webp.subarray(0, 12), alpha, webp.subarray(12)]);
    expect(sniffImage(extended)).toEqual({ format: 'webp', width: 40, height: 30 });
  });

  it('grows a GIF to its largest frame, as PIL does', () => {
    const gif = gifImage(4, 4);
    // A second frame placed at (30000, 30000): the picture PIL makes is 30004 × 30004.
    const frame = Buffer.from([0x2c, 0x30, 0x75, 0x30, 0x75, 4, 0, 4, 0, 0, 2, 2, 0x4c, 0x01, 0]);
    const grown = Buffer.concat([gif.subarray(0, -1), frame, Buffer.from([0x3b])]);
    expect(sniffImage(grown)).toEqual({ format: 'gif', width: 30_004, height: 30_004 });
    expect(imageProblem(sniffImage(grown), cap)).toContain('more than IMAGE_MAX_PIXELS');
  });
});
