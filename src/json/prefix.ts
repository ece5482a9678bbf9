/**
 * Whether a body about to be posted begins with the bytes already written of it, and what is left.
 */

/**
 * The rest of `parts` after the bytes of `prefix`, or null when `parts` do not begin with them. Views
 * of the same memory match without being read (a large answer's bytes); other bytes are compared.
 *
 * @example
 * restAfterPrefix([Buffer.from('{"a":1}')], [Buffer.from('{"a"')]); // [Buffer.from(':1}')]
 */
export function restAfterPrefix(parts: readonly Buffer[], prefix: readonly Buffer[]): Buffer[] | null {
  let index = 0;
  let offset = 0;
  for (const chunk of prefix) {
    let at = 0;
    while (at < chunk.length) {
      const part = parts[index];
      if (!part) return null;
      const length = Math.min(part.length - offset, chunk.length - at);
      const ours = part.subarray(offset, offset + length);
      const theirs = chunk.subarray(at, at + length);
      const sameMemory = ours.buffer === theirs.buffer && ours.byteOffset === theirs.byteOffset;
      if (!sameMemory && !ours.equals(theirs)) return null;
      at += length;
      offset += length;
      if (offset === part.length) {
        index++;
        offset = 0;
      }
    }
  }
  const rest = parts.slice(index);
  if (offset > 0 && rest[0]) rest[0] = rest[0].subarray(offset);
  return rest;
}
