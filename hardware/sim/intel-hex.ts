// Intel HEX reader: turns the firmware's .hex file into a flash image, or into its data records.

export class IntelHexError extends Error {}

export interface IntelHexRecord {
  /** Absolute byte address (extended segment or linear address applied). */
  readonly address: number;
  readonly data: Uint8Array;
  /** 1-based line number in the file, for messages. */
  readonly line: number;
}

/** The data records of an Intel HEX text, in file order; throws an IntelHexError naming the first bad line. */
export function readIntelHexRecords(text: string): IntelHexRecord[] {
  const records: IntelHexRecord[] = [];
  let baseAddress = 0;
  text.split(/\r?\n/).forEach((rawLine, index) => {
    const line = rawLine.trim();
    if (line === '') return;
    const where = `line ${index + 1}`;
    if (!/^:(?:[0-9a-fA-F]{2})+$/.test(line) || line.length < 11) throw new IntelHexError(`${where}: not an Intel HEX record`);
    const bytes = Uint8Array.from(line.slice(1).match(/../g) ?? [], (pair) => parseInt(pair, 16));
    const sum = bytes.reduce((a, b) => (a + b) & 0xff, 0);
    if (sum !== 0) throw new IntelHexError(`${where}: checksum mismatch`);
    const count = bytes[0] ?? 0;
    if (bytes.length !== count + 5) throw new IntelHexError(`${where}: the record's length does not match its byte count`);
    const address = ((bytes[1] ?? 0) << 8) | (bytes[2] ?? 0);
    const type = bytes[3] ?? 0;
    const data = bytes.subarray(4, 4 + count);
    if (type === 0x00) records.push({ address: baseAddress + address, data, line: index + 1 });
    else if (type === 0x02) baseAddress = (((data[0] ?? 0) << 8) | (data[1] ?? 0)) * 16;
    else if (type === 0x04) baseAddress = (((data[0] ?? 0) << 8) | (data[1] ?? 0)) << 16;
    else if (type > 0x05) throw new IntelHexError(`${where}: record type ${type} is not an Intel HEX record type`);
    // 0x01 end of file, 0x03/0x05 start addresses: nothing to load.
  });
  return records;
}

/** Returns a flash image of flashBytes bytes (0xFF where the file writes nothing). */
export function parseIntelHex(text: string, flashBytes: number): Uint8Array {
  const flash = new Uint8Array(flashBytes).fill(0xff);
  for (const { address, data, line } of readIntelHexRecords(text)) {
    if (address + data.length > flashBytes) throw new IntelHexError(`line ${line}: data at 0x${address.toString(16)} is beyond flash`);
    flash.set(data, address);
  }
  return flash;
}
