// Writes Intel HEX, for tests that need images of their own (a pen image changed on purpose, a few bytes somewhere).

/** Records of up to 16 bytes for each (byte address, bytes) chunk, then the end-of-file record. */
export function intelHex(chunks: readonly (readonly [number, ArrayLike<number>])[]): string {
  const lines: string[] = [];
  for (const [address, chunk] of chunks) {
    const bytes = Array.from(chunk);
    for (let offset = 0; offset < bytes.length; offset += 16) {
      const data = bytes.slice(offset, offset + 16);
      const at = address + offset;
      const record = [data.length, (at >> 8) & 0xff, at & 0xff, 0, ...data];
      const checksum = (0x100 - (record.reduce((sum, byte) => sum + byte, 0) & 0xff)) & 0xff;
      lines.push(':' + [...record, checksum].map((byte) => byte.toString(16).padStart(2, '0').toUpperCase()).join(''));
    }
  }
  return [...lines, ':00000001FF', ''].join('\n');
}

/** The written part of a flash image (up to its last byte that is not 0xFF), as one chunk at address 0. */
export function imageChunk(image: Uint8Array): readonly [number, Uint8Array] {
  let end = image.length;
  while (end > 0 && image[end - 1] === 0xff) end--;
  return [0, image.subarray(0, end)];
}
