// The virtual pen's DS2431 model a byte at a time, without the firmware: the 1-Wire CRCs against published vectors,
// the ROM commands, Read Memory, Write/Read Scratchpad with their CRC-16, Copy Scratchpad's authorization, and the page
// protections (EPROM mode: bits only go from 1 to 0; write-protected: the scratchpad gets the memory's bytes), the
// change hook and the failing-copy fault.
import { describe, expect, it } from 'vitest';
import { IdChip, onewireCrc16, onewireCrc8, partMemory, romId } from '../../hardware/sim/id-chip.ts';
import { pen } from '../../hardware/description.ts';

const layout = pen.idChips.layout;

/** The chip's side of the slots: what a master writes and reads, a byte at a time, least significant bit first. */
class Master {
  constructor(readonly chip: IdChip) {}

  reset(): this {
    this.chip.reset();
    return this;
  }

  write(...bytes: number[]): this {
    for (const byte of bytes) {
      for (let bit = 0; bit < 8; bit++) {
        // A write slot: the chip sends nothing (a chip that is talking would hold a 0 against a written 1).
        expect(this.chip.nextBitToSend()).toBeNull();
        this.chip.bitReceived((byte >> bit) & 1);
      }
    }
    return this;
  }

  read(count: number): number[] {
    return Array.from({ length: count }, () => {
      let byte = 0;
      for (let bit = 0; bit < 8; bit++) {
        const sent = this.chip.nextBitToSend();
        if (sent !== null) this.chip.bitSent();
        byte |= (sent ?? 1) << bit;
      }
      return byte;
    });
  }

  /** Write Scratchpad at address, with its CRC-16 back; then Read Scratchpad: TA1 TA2 E/S, data, CRC-16. */
  writeScratchpad(address: number, data: readonly number[]): { crc: number[]; readBack: number[] } {
    this.reset().write(0xcc, 0x0f, address & 0xff, address >> 8, ...data);
    const crc = this.read(2);
    const readBack = this.reset().write(0xcc, 0xaa).read(3 + data.length + 2);
    return { crc, readBack };
  }

  /** Copy Scratchpad with the authorization bytes, then the programming time passes. */
  copy(ta1: number, ta2: number, es: number): number {
    this.reset().write(0xcc, 0x55, ta1, ta2, es);
    this.chip.finishProgramming(false);
    return this.read(1)[0] ?? -1;
  }
}

const cartridge = (): IdChip => IdChip.part({ kind: 'cartridge', lot: 0x01020304, date: 9000 }, 0xabcdefn);
const inverted = (crc: number): number[] => [~crc & 0xff, (~crc >> 8) & 0xff];

describe('1-Wire CRCs', () => {
  it('match the published vectors: a ROM id checks to 0, CRC-16/ARC of "123456789" is 0xBB3D', () => {
    const rom = [0x02, 0x1c, 0xb8, 0x01, 0x00, 0x00, 0x00];  // Maxim's application note 27 example
    expect(onewireCrc8(rom)).toBe(0xa2);
    expect(onewireCrc8([...rom, 0xa2])).toBe(0);
    expect(onewireCrc16(Buffer.from('123456789'))).toBe(0xbb3d);
    expect(romId(0x1b81cn, 0x02)).toEqual(Uint8Array.from([...rom, 0xa2]));
  });
});

describe('the DS2431 model', () => {
  it('answers Read ROM with its id, and Match ROM only with its own', () => {
    const chip = cartridge();
    const master = new Master(chip);
    expect(master.reset().write(0x33).read(8)).toEqual([...chip.rom]);
    expect(master.reset().write(0x55, ...chip.rom, 0xf0, 0, 0).read(2)).toEqual([layout.version, layout.kindCartridge]);
    const other = romId(1n);
    expect(master.reset().write(0x55, ...other, 0xf0, 0, 0).read(2)).toEqual([0xff, 0xff]);
  });

  it('reads the memory from any address to its end, then 1s', () => {
    const chip = cartridge();
    const master = new Master(chip);
    expect(master.reset().write(0xcc, 0xf0, 0x8e, 0).read(4)).toEqual([chip.memory[0x8e], chip.memory[0x8f], 0xff, 0xff]);
    expect(master.reset().write(0xcc, 0xf0, 0x90, 0).read(1)).toEqual([0xff]);  // past the memory: nothing
  });

  it('returns the CRC-16 of what it received, and the scratchpad with its own CRC-16', () => {
    const master = new Master(cartridge());
    const data = [1, 2, 3, 4, 5, 6, 7, 8];
    const { crc, readBack } = master.writeScratchpad(0x60, data);  // page 3: open
    expect(crc).toEqual(inverted(onewireCrc16([0x0f, 0x60, 0x00, ...data])));
    expect(readBack.slice(0, 3 + 8)).toEqual([0x60, 0x00, 0x07, ...data]);
    expect(readBack.slice(11)).toEqual(inverted(onewireCrc16([0xaa, 0x60, 0x00, 0x07, ...data])));
  });

  it('copies only with the exact authorization, after a whole row, and answers 0xAA when done', () => {
    const chip = cartridge();
    const master = new Master(chip);
    const data = [9, 9, 9, 9, 9, 9, 9, 9];
    master.writeScratchpad(0x60, data);
    expect(master.copy(0x60, 0x00, 0x06)).toBe(0xff);  // wrong E/S: refused, nothing programmed
    expect([...chip.memory.subarray(0x60, 0x68)]).toEqual(Array<number>(8).fill(0xff));
    expect(master.copy(0x60, 0x00, 0x07)).toBe(0xaa);
    expect([...chip.memory.subarray(0x60, 0x68)]).toEqual(data);
    expect(chip.stats.copies).toBe(1);
    // A write cut short by a reset mid-byte sets PF: that scratchpad cannot be copied.
    master.reset().write(0xcc, 0x0f, 0x68, 0x00, 1, 2, 3);
    chip.bitReceived(1);
    master.reset();
    expect(chip.endingStatus & 0x20).toBe(0x20);
    expect(master.copy(0x68, 0x00, chip.endingStatus)).toBe(0xff);
  });

  it('in EPROM mode only clears bits, and keeps a write-protected page as it is', () => {
    const chip = cartridge();
    const master = new Master(chip);
    chip.memory[layout.markPageAddress] = 0xf0;
    const { readBack } = master.writeScratchpad(layout.markPageAddress, [0x0f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
    expect(readBack.slice(3, 11)).toEqual([0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);  // AND with the memory
    expect(master.copy(layout.markPageAddress, 0, 0x07)).toBe(0xaa);
    expect(chip.memory[layout.markPageAddress]).toBe(0x00);
    // Setting bits again (0x00 -> 0xFF) is impossible: the scratchpad takes the AND.
    master.writeScratchpad(layout.markPageAddress, Array<number>(8).fill(0xff));
    master.copy(layout.markPageAddress, 0, 0x07);
    expect(chip.memory[layout.markPageAddress]).toBe(0x00);
    // The identity page is write-protected: its bytes come back whatever was sent.
    const identity = [...chip.memory.subarray(0, 8)];
    expect(master.writeScratchpad(0, Array<number>(8).fill(0)).readBack.slice(3, 11)).toEqual(identity);
    // The protection bytes protect themselves.
    master.writeScratchpad(0x80, Array<number>(8).fill(0));
    master.copy(0x80, 0, 0x07);
    expect([...chip.memory.subarray(0x80, 0x83)]).toEqual([layout.writeProtect, layout.eprom, layout.eprom]);
  });

  it('calls its change hook after a programmed copy, not after a refused, interrupted or failed one', () => {
    const chip = cartridge();
    const master = new Master(chip);
    const changes: number[] = [];
    chip.onChange = (address) => changes.push(address);
    const data = [1, 2, 3, 4, 5, 6, 7, 8];
    master.writeScratchpad(0x60, data);
    expect(master.copy(0x60, 0x00, 0x06)).toBe(0xff);  // refused: wrong E/S
    master.reset().write(0xcc, 0x55, 0x60, 0x00, 0x07);
    chip.finishProgramming(true);  // the bus pulled low while programming
    expect(chip.stats.copiesInterrupted).toBe(1);
    // failCopies: accepted, programmed for its time, then no copy-done answer and the memory as it was.
    chip.failCopies = true;
    master.writeScratchpad(0x60, data);
    expect(master.copy(0x60, 0x00, 0x07)).toBe(0xff);
    expect(chip.stats.copiesFailed).toBe(1);
    expect([...chip.memory.subarray(0x60, 0x68)]).toEqual(Array<number>(8).fill(0xff));
    expect(changes).toEqual([]);
    chip.failCopies = false;
    master.writeScratchpad(0x60, data);
    expect(master.copy(0x60, 0x00, 0x07)).toBe(0xaa);
    expect([...chip.memory.subarray(0x60, 0x68)]).toEqual(data);
    expect(changes).toEqual([0x60]);
  });

  it('lays a part out as pen.json says, its identity CRC included', () => {
    const memory = partMemory({ kind: 'nosecone', lot: 7, date: 8, sterilizations: 10, uses: 9 });
    const crc = onewireCrc16(memory.subarray(0, layout.identityCrcAddress));
    expect([memory[layout.identityCrcAddress], memory[layout.identityCrcAddress + 1]]).toEqual(inverted(crc));
    expect([memory[layout.markPageAddress], memory[layout.markPageAddress + 1]]).toEqual([0x00, 0xfc]);
    expect([memory[layout.useMarkPageAddress], memory[layout.useMarkPageAddress + 1]]).toEqual([0x00, 0xfe]);
  });
});
