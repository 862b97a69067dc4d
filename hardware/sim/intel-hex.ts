// Intel HEX reader: turns the firmware's .hex file into a flash image.

export class IntelHexError extends Error {}

/** Returns a flash image of flashBytes bytes (0xFF where the file writes nothing). */
export function parseIntelHex(text: string, flashBytes: number): Uint8Array {
  const flash = new Uint8Array(flashBytes).fill(0xff);
  let baseAddress = 0;
  text.split(/\r?\n/).forEach((rawLine, index) => {
    const line = rawLine.trim();
    if (line === '') return;
    const where = `line ${index + 1}`;
    if (!line.startsWith(':') || line.length < 11 || line.length % 2 === 0) throw new IntelHexError(`${where}: not an Intel HEX record`);
    const bytes = Uint8Array.from(line.slice(1).match(/../g) ?? [], (pair) => parseInt(pair, 16));
    const sum = bytes.reduce((a, b) => (a + b) & 0xff, 0);
    if (sum !== 0) throw new IntelHexError(`${where}: checksum mismatch`);
    const count = bytes[0] ?? 0;
    const address = ((bytes[1] ?? 0) << 8) | (bytes[2] ?? 0);
    const type = bytes[3];
    const data = bytes.subarray(4, 4 + count);
    if (type === 0x00) {
      const start = baseAddress + address;
      if (start + count > flashBytes) throw new IntelHexError(`${where}: data at 0x${start.toString(16)} is beyond flash`);
      flash.set(data, start);
    } else if (type === 0x02) {
      baseAddress = (((data[0] ?? 0) << 8) | (data[1] ?? 0)) * 16;
    } else if (type === 0x04) {
      baseAddress = (((data[0] ?? 0) << 8) | (data[1] ?? 0)) << 16;
    }
    // 0x01 end of file, 0x03/0x05 start addresses: nothing to load.
  });
  return flash;
}
