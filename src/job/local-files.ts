/**
 * The files a job's output holds, for local runs (test-input mode): A1111's base64 images (`images`,
 * or the extras' single `image`) as `image-<n>.png` (or the type their bytes say), and the output with
 * the files' paths in their place. An output whose images were uploaded (URLs) is left as it is.
 */
import path from 'node:path';

const SIGNATURES: [string, (bytes: Buffer) => boolean][] = [
  ['png', (b) => b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))],
  ['jpg', (b) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff],
  ['webp', (b) => b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP'],
];

function extensionOf(bytes: Buffer): string {
  return SIGNATURES.find(([, matches]) => matches(bytes))?.[0] ?? 'png';
}

/**
 * @example
 * const { files, output } = localFiles(result.output, 'output/local_test');
 * // files[0].path === 'output/local_test/image-0.png'; output.images[0] === 'output/local_test/image-0.png'
 */
export function localFiles(output: unknown, dir: string): { files: { path: string; data: Buffer }[]; output: unknown } {
  if (typeof output !== 'object' || output === null || Array.isArray(output)) return { files: [], output };
  const holder = output as { images?: unknown; image?: unknown };
  const single = typeof holder.image === 'string';
  const images = single ? [holder.image] : holder.images;
  if (!Array.isArray(images)) return { files: [], output };
  // Uploaded images are URLs already: they stay as they are.
  if (images.some((image) => typeof image === 'string' && /^https?:\/\//.test(image))) return { files: [], output };
  const files = images
    .filter((image): image is string => typeof image === 'string')
    .map((image, index) => {
      const data = Buffer.from(image, 'base64');
      return { path: path.join(dir, `image-${index}.${extensionOf(data)}`), data };
    });
  const paths = files.map((file) => path.relative(process.cwd(), file.path));
  return { files, output: single ? { ...output, image: paths[0] } : { ...output, images: paths } };
}
