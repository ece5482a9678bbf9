/**
 * Both readers of image headers, the worker's (src/images/sniff.ts) and the simulator's PIL stand-in
 * (src/simulator/images.ts), on real files of every format A1111 opens.
 */
import { describe, expect, it } from 'vitest';
import { sniffImage } from '../../src/images/sniff.js';
import { openImage } from '../../src/simulator/images.js';
import { bmpImage, bombPng, gifImage, jpegImage, pngImage, webpImage } from '../support/images.js';

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

  it('leaves the size of a JPEG open when its frame header is past the bytes given', () => {
    const jpeg = jpegImage(40, 30);
    expect(sniffImage(jpeg.subarray(0, 30))).toEqual({ format: 'jpeg', width: null, height: null });
  });
});
