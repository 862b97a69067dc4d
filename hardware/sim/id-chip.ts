// The parts' ID chips at the bus level: a DS2431-class 1-Wire EEPROM on one of the virtual pen's pins. The bus watches
// the level the firmware drives (avr8js port listener, exact to the cycle), answers a reset with a presence pulse,
// reads write slots by how long the master held the line low, holds the line low for a 0 in read slots, and checks
// every edge against the datasheet's windows (pen.json idChips.datasheetUs). The chip runs Read ROM, Match ROM, Skip
// ROM, Read Memory, Write/Read Scratchpad and Copy Scratchpad with its authorization and programming time, and the
// page protections: write-protected (0x55) and EPROM mode (0xAA: bits only go from 1 to 0).
// Not modelled: Search ROM, Resume, overdrive speed, the user-byte row's own protection, analogue levels.
import type { AVRIOPort, CPU } from 'avr8js';
import { pen } from '../description.ts';

const cyclesPerUs = pen.board.cpuHz / 1e6;
const datasheet = pen.idChips.datasheetUs;
const layout = pen.idChips.layout;

export const idChipMemoryBytes = 0x90;  // four 32-byte pages, then the register row and a reserved row
const pageBytes = 32;
const protectionAddress = 0x80;
const copyProtectionAddress = 0x84;
const reservedRowAddress = 0x88;
const writeProtect = 0x55;
const epromMode = 0xaa;
const partialFlag = 0x20;
const authorizationAccepted = 0x80;
/** When the chip samples a write slot, after its falling edge: inside its window (tW1L max 15 to tW0L min 60 µs). */
const chipWriteSampleUs = 30;

const romCommand = { readRom: 0x33, matchRom: 0x55, skipRom: 0xcc } as const;
const functionCommand = { writeScratchpad: 0x0f, readScratchpad: 0xaa, copyScratchpad: 0x55, readMemory: 0xf0 } as const;

/** CRC-8 of the 1-Wire family (x^8 + x^5 + x^4 + 1, reflected, initial 0), as firmware/src/onewire_crc.c. */
export function onewireCrc8(bytes: Iterable<number>, crc = 0): number {
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x8c : crc >>> 1;
  }
  return crc;
}

/** CRC-16 of the 1-Wire family (x^16 + x^15 + x^2 + 1, reflected, initial 0); the chip sends its complement. */
export function onewireCrc16(bytes: Iterable<number>, crc = 0): number {
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

/** A ROM id: family code, the 48-bit serial little-endian, CRC-8. */
export function romId(serial: bigint, familyCode = pen.idChips.familyCode): Uint8Array {
  const rom = new Uint8Array(8);
  rom[0] = familyCode;
  for (let i = 0; i < 6; i++) rom[1 + i] = Number((serial >> BigInt(8 * i)) & 0xffn);
  rom[7] = onewireCrc8(rom.subarray(0, 7));
  return rom;
}

export type PartKind = 'cartridge' | 'nosecone';

/** What a part's maker (and its use so far) put into its chip, by hardware/pen.json idChips.layout. */
export interface PartContents {
  readonly kind: PartKind;
  readonly lot: number;
  /** Days since 2000-01-01: the cartridge's expiry, the nosecone's manufacture. */
  readonly date: number;
  /** Cartridge: already used (its mark burnt). */
  readonly used?: boolean;
  /** Nosecone: validated sterilization cycles in its tally. */
  readonly sterilizations?: number;
  /** Nosecone: how many of those sterilizations were followed by a use (the earliest ones). */
  readonly uses?: number;
}

/** The chip's 0x90 bytes for a part laid out as pen.json says: identity with its CRC, marks, protections. */
export function partMemory(contents: PartContents): Uint8Array {
  const memory = new Uint8Array(idChipMemoryBytes).fill(0xff);
  memory[layout.versionAddress] = layout.version;
  memory[layout.kindAddress] = contents.kind === 'cartridge' ? layout.kindCartridge : layout.kindNosecone;
  new DataView(memory.buffer).setUint32(layout.lotAddress, contents.lot >>> 0, true);
  new DataView(memory.buffer).setUint16(layout.dateAddress, contents.date, true);
  const crc = ~onewireCrc16(memory.subarray(0, layout.identityCrcAddress)) & 0xffff;
  memory[layout.identityCrcAddress] = crc & 0xff;
  memory[layout.identityCrcAddress + 1] = crc >> 8;
  const clearBits = (address: number, count: number): void => {
    for (let bit = 0; bit < count; bit++) memory[address + (bit >> 3)] = (memory[address + (bit >> 3)] ?? 0) & ~(1 << (bit & 7));
  };
  if (contents.kind === 'cartridge' && contents.used === true) memory[layout.markPageAddress] = 0x00;
  if (contents.kind === 'nosecone') {
    clearBits(layout.markPageAddress, contents.sterilizations ?? 0);
    clearBits(layout.useMarkPageAddress, contents.uses ?? 0);
  }
  memory[protectionAddress] = layout.writeProtect;
  memory[protectionAddress + 1] = layout.eprom;
  memory[protectionAddress + 2] = layout.eprom;
  memory[0x85] = 0xaa;  // the factory byte
  return memory;
}

/** The chip's own timing, inside the datasheet's windows by default; tests move them out to check the firmware's windows. */
export interface IdChipTiming {
  /** From the end of the master's reset pulse to the start of the presence pulse (tPDH, 15–60 µs). */
  presenceDelayUs: number;
  /** The presence pulse (tPDL, 60–240 µs). */
  presenceLowUs: number;
  /** How long the chip holds the line low for a 0 in a read slot, from the falling edge: the end of the master's
   * sampling window (tMSR, 15 µs), so a master sampling late reads a 1. */
  readZeroHoldUs: number;
  /** The copy's programming time (tPROG, 10 ms at most). */
  programMs: number;
}

const defaultTiming: IdChipTiming = { presenceDelayUs: 30, presenceLowUs: 120, readZeroHoldUs: datasheet.readSampleMax, programMs: datasheet.programMaxMs };

type Mode =
  | 'idle' | 'rom' | 'match' | 'readRom' | 'function' | 'memoryAddress' | 'readMemory' | 'scratchpadAddress' | 'scratchpadData'
  | 'scratchpadCrc' | 'readScratchpad' | 'copyAuthorization' | 'programming' | 'copyDone' | 'ones';

/** A DS2431-class chip: its ROM id and memory, its protocol state, and fault switches. */
export class IdChip {
  readonly rom: Uint8Array;
  readonly memory: Uint8Array;
  readonly timing: IdChipTiming = { ...defaultTiming };
  /** Fault: the chip's contact is open (absent from the bus); set it back to reconnect. */
  disconnected = false;
  /** Fault: after this many more bits sent in a Read Memory, the contact opens (disconnected). null: never. */
  loseContactAfterReadBits: number | null = null;
  /** Fault: copies are accepted but their programming fails (a worn cell): the memory keeps its bytes and the chip
   * never answers the copy-done pattern, so the master reads 1s. Set it back to program again. */
  failCopies = false;
  /** Called after a copy programmed a row into the memory (address: the row's first), so it can be kept somewhere. */
  onChange: ((address: number) => void) | null = null;
  readonly scratchpad = new Uint8Array(8);
  targetAddress = 0;
  endingStatus = 0;
  /** Counters for tests and benches. */
  readonly stats = { resets: 0, presencePulses: 0, copies: 0, copiesInterrupted: 0, copiesFailed: 0, bitsSent: 0, bitsReceived: 0 };

  private mode: Mode = 'idle';
  private received = 0;
  private receivedBits = 0;
  private sending: number[] = [];
  private bytesIn: number[] = [];
  private sendQueue: number[] = [];
  private readAddress = 0;
  private programmingUntil = 0;
  private programmingRow: { address: number; data: Uint8Array } | null = null;

  constructor(rom: Uint8Array, memory: Uint8Array) {
    if (rom.length !== 8 || memory.length !== idChipMemoryBytes) throw new Error(`an ID chip needs an 8-byte ROM id and ${idChipMemoryBytes} bytes of memory`);
    this.rom = Uint8Array.from(rom);
    this.memory = Uint8Array.from(memory);
  }

  /** A chip laid out as a part (serial: its 48-bit serial number). */
  static part(contents: PartContents, serial: bigint): IdChip {
    return new IdChip(romId(serial), partMemory(contents));
  }

  /** Where the chip's protocol stands (for tests that act at a given point of a command). */
  get protocolState(): string {
    return this.mode;
  }

  /** Bytes written into the scratchpad by the Write Scratchpad under way or last done. */
  get scratchpadBytesReceived(): number {
    return this.mode === 'scratchpadData' || this.mode === 'scratchpadCrc' ? Math.max(0, this.bytesIn.length - 3) : 0;
  }

  /** Whether a copy is programming at cycle now (the bus must stay high meanwhile). */
  programmingAt(now: number): boolean {
    return this.mode === 'programming' && now < this.programmingUntil;
  }

  /** The master ended a reset pulse: every function ends, an unfinished scratchpad write is flagged partial. */
  reset(): void {
    this.stats.resets++;
    if (this.mode === 'scratchpadData' && this.receivedBits !== 0) this.endingStatus |= partialFlag;
    this.mode = 'rom';
    this.received = this.receivedBits = 0;
    this.sending = [];
  }

  /** Whether the chip sends in the next slot (a read slot), and the bit it sends; null while it listens. */
  nextBitToSend(): number | null {
    if (!this.sendsNow()) return null;
    if (this.sending.length === 0) this.sending = bitsOf(this.nextByte());
    return this.sending[0] ?? 1;
  }

  /** The slot that sent nextBitToSend() is over. */
  bitSent(): void {
    this.sending.shift();
    this.stats.bitsSent++;
    // Read ROM ends with the id's last bit: a function command comes next.
    if (this.mode === 'readRom' && this.readAddress === 8 && this.sending.length === 0) this.mode = 'function';
    if (this.mode === 'readMemory' && this.loseContactAfterReadBits !== null && --this.loseContactAfterReadBits <= 0) {
      this.loseContactAfterReadBits = null;
      this.disconnected = true;
    }
  }

  /** A bit the master wrote. */
  bitReceived(bit: number): void {
    this.stats.bitsReceived++;
    this.received |= bit << this.receivedBits;
    if (++this.receivedBits < 8) return;
    const byte = this.received;
    this.received = this.receivedBits = 0;
    this.take(byte);
  }

  /** Set by the bus the chip is fitted to: a copy started, programming for programMs. */
  onProgrammingStarted: ((programMs: number) => void) | null = null;

  /** The copy completes at its programming time's end (or is lost when the bus was pulled low meanwhile, or failCopies). */
  finishProgramming(interrupted: boolean): void {
    const row = this.programmingRow;
    this.programmingRow = null;
    if (this.mode !== 'programming' || row === null) return;
    if (interrupted || this.failCopies) {
      if (interrupted) this.stats.copiesInterrupted++;
      else this.stats.copiesFailed++;
      this.mode = 'idle';
      return;
    }
    this.memory.set(row.data, row.address);
    this.stats.copies++;
    this.mode = 'copyDone';
    this.onChange?.(row.address);
  }

  /** In 'idle' and 'ones' the chip neither listens nor pulls the line: every slot reads 1. */
  private sendsNow(): boolean {
    return this.mode === 'readRom' || this.mode === 'readMemory' || this.mode === 'scratchpadCrc' || this.mode === 'readScratchpad' ||
      this.mode === 'copyDone';
  }

  private nextByte(): number {
    switch (this.mode) {
      case 'readRom':
        return this.rom[this.readAddress++] ?? 0xff;
      case 'readMemory':
        return this.readAddress < idChipMemoryBytes ? this.memory[this.readAddress++] ?? 0xff : 0xff;
      case 'scratchpadCrc':
      case 'readScratchpad': {
        const byte = this.sendQueue.shift();
        return byte ?? 0xff;
      }
      case 'copyDone':
        return 0xaa;  // alternating 0 and 1, least significant bit first
      default:
        return 0xff;  // nobody talks: the pull-up reads 1
    }
  }

  private take(byte: number): void {
    switch (this.mode) {
      case 'rom':
        if (byte === romCommand.readRom) {
          this.mode = 'readRom';
          this.readAddress = 0;
        } else if (byte === romCommand.matchRom) {
          this.mode = 'match';
          this.readAddress = 0;
        } else if (byte === romCommand.skipRom) {
          this.mode = 'function';
        } else {
          this.mode = 'idle';  // Search ROM, Resume, overdrive: not modelled; the chip waits for the next reset
        }
        return;
      case 'match':
        if (byte !== this.rom[this.readAddress]) this.mode = 'idle';
        else if (++this.readAddress === 8) this.mode = 'function';
        return;
      case 'function':
        this.bytesIn = [byte];
        if (byte === functionCommand.readMemory) this.mode = 'memoryAddress';
        else if (byte === functionCommand.writeScratchpad) this.mode = 'scratchpadAddress';
        else if (byte === functionCommand.copyScratchpad) this.mode = 'copyAuthorization';
        else if (byte === functionCommand.readScratchpad) this.startReadScratchpad();
        else this.mode = 'idle';
        return;
      case 'memoryAddress':
        this.bytesIn.push(byte);
        if (this.bytesIn.length === 3) {
          const address = (this.bytesIn[1] ?? 0) | ((this.bytesIn[2] ?? 0) << 8);
          this.readAddress = address;
          this.mode = address < idChipMemoryBytes ? 'readMemory' : 'ones';
        }
        return;
      case 'scratchpadAddress':
        this.bytesIn.push(byte);
        if (this.bytesIn.length === 3) {
          this.targetAddress = (this.bytesIn[1] ?? 0) | ((this.bytesIn[2] ?? 0) << 8);
          this.endingStatus = this.targetAddress & 7;  // AA and PF cleared
          this.readAddress = this.targetAddress & 7;   // the scratchpad offset
          this.mode = this.targetAddress < idChipMemoryBytes ? 'scratchpadData' : 'ones';
        }
        return;
      case 'scratchpadData': {
        this.bytesIn.push(byte);
        const offset = this.readAddress;
        const address = (this.targetAddress & ~7) + offset;
        this.scratchpad[offset] = this.loadedByte(address, byte);
        this.endingStatus = (this.endingStatus & ~7) | offset;
        if (++this.readAddress === 8) {
          const crc = ~onewireCrc16(this.bytesIn) & 0xffff;
          this.sendQueue = [crc & 0xff, crc >> 8];
          this.mode = 'scratchpadCrc';
        }
        return;
      }
      case 'copyAuthorization':
        this.bytesIn.push(byte);
        if (this.bytesIn.length === 4) this.startCopy();
        return;
      default:
        return;  // the chip is talking, or ignoring the bus until the next reset
    }
  }

  /** What Write Scratchpad puts into the scratchpad for address, by the protection of its page. */
  private loadedByte(address: number, byte: number): number {
    const stored = this.memory[address] ?? 0xff;
    if (address >= reservedRowAddress) return stored;
    if (address >= protectionAddress) {
      // The protection bytes protect themselves once set; the rest of the register row is open.
      const own = address < protectionAddress + 4 ? stored : 0xff;
      return own === writeProtect || own === epromMode ? stored : byte;
    }
    const protection = this.memory[protectionAddress + Math.floor(address / pageBytes)] ?? 0xff;
    if (protection === writeProtect) return stored;
    if (protection === epromMode) return byte & stored;
    return byte;
  }

  private startReadScratchpad(): void {
    const start = this.targetAddress & 7;
    const end = this.endingStatus & 7;
    const body = [this.targetAddress & 0xff, this.targetAddress >> 8, this.endingStatus, ...this.scratchpad.subarray(start, end + 1)];
    const crc = ~onewireCrc16([functionCommand.readScratchpad, ...body]) & 0xffff;
    this.sendQueue = [...body, crc & 0xff, crc >> 8];
    this.mode = 'readScratchpad';
  }

  private startCopy(): void {
    const [, ta1 = -1, ta2 = -1, es = -1] = this.bytesIn;
    const authorized = ta1 === (this.targetAddress & 0xff) && ta2 === this.targetAddress >> 8 && es === this.endingStatus;
    const fullRow = (this.targetAddress & 7) === 0 && (this.endingStatus & 7) === 7 && (this.endingStatus & partialFlag) === 0;
    const copyProtected = this.targetAddress >= protectionAddress &&
      (this.memory[copyProtectionAddress] === writeProtect || this.memory[copyProtectionAddress] === epromMode);
    if (!authorized || !fullRow || copyProtected || this.targetAddress >= reservedRowAddress) {
      this.mode = 'ones';
      return;
    }
    this.endingStatus |= authorizationAccepted;
    this.programmingRow = { address: this.targetAddress, data: Uint8Array.from(this.scratchpad) };
    this.mode = 'programming';
    this.onProgrammingStarted?.(this.timing.programMs);
  }

  /** Marks the programming deadline (cycles), set by the bus. */
  setProgrammingUntil(cycle: number): void {
    this.programmingUntil = cycle;
  }
}

function bitsOf(byte: number): number[] {
  return Array.from({ length: 8 }, (_, bit) => (byte >> bit) & 1);
}

export interface BusMachine {
  readonly cpu: CPU;
  readonly port: AVRIOPort;
}

/** A violation of the DS2431's timing by the master, with the cycle it happened at. */
export interface TimingViolation {
  readonly atCycle: number;
  readonly what: string;
}

/**
 * One part's 1-Wire bus: the pin, its pull-up, the chip on it (or none), a short to ground. Everything the firmware
 * drives is checked against the datasheet's windows; breaches are kept in violations.
 */
export class OneWireBus {
  /** The chip on the bus (null: none fitted). */
  chip: IdChip | null;
  /** Fault: the bus is held low (shorted to ground). */
  private shortedValue = false;
  readonly violations: TimingViolation[] = [];
  /** Edges seen (the master's and the chip's), for the bench. */
  readonly stats = { masterEdges: 0, slots: 0, resets: 0 };

  private machine: BusMachine | null = null;
  private masterLow = false;
  private chipLow = false;
  private level = true;
  private masterFellAt = -Infinity;
  private lineRoseAt = -Infinity;
  private lastSlotAt = -Infinity;
  private resetEndedAt = -Infinity;
  private slotBit: number | null = null;  // what the chip sends in the slot under way
  /** Timed actions (absolute cycles), kept so that an MCU reset (a new CPU) does not lose them. */
  private pending: { at: number; run: () => void }[] = [];

  constructor(readonly name: string, private readonly bit: number, private readonly now: () => number, chip: IdChip | null) {
    this.chip = null;
    this.fit(chip);
  }

  get shorted(): boolean {
    return this.shortedValue;
  }

  set shorted(shorted: boolean) {
    this.shortedValue = shorted;
    this.update();
  }

  /** Fits a chip (a part put in) or removes it (null). */
  fit(chip: IdChip | null): void {
    this.chip = chip;
    this.chipLow = false;
    if (chip !== null) chip.onProgrammingStarted = (programMs) => this.onProgramming(chip, programMs);
    this.update();
  }

  /** The line's level as the MCU's pin reads it. */
  get lineHigh(): boolean {
    return this.level;
  }

  /** Wires the bus to a (new) MCU's port: a reset leaves every pin an input, so the master has let go of the line. */
  attach(machine: BusMachine): void {
    this.machine = machine;
    this.masterLow = false;
    machine.port.addListener(() => this.onPortWrite());
    const now = this.now();
    for (const action of this.pending) machine.cpu.addClockEvent(() => this.runPending(action), Math.max(1, action.at - now));
    // The new MCU's pin released: the line is what the chip and a short make it, written whatever it was before.
    this.level = !(this.chipLow || this.shortedValue);
    if (this.level) this.lineRoseAt = now;
    machine.port.setPin(this.bit, this.level);
  }

  private runPending(action: { at: number; run: () => void }): void {
    const index = this.pending.indexOf(action);
    if (index < 0) return;
    this.pending.splice(index, 1);
    action.run();
  }

  private after(us: number, run: () => void): void {
    const machine = this.machine;
    if (machine === null) return;
    const cycles = Math.max(1, Math.round(us * cyclesPerUs));
    const action = { at: this.now() + cycles, run };
    this.pending.push(action);
    machine.cpu.addClockEvent(() => this.runPending(action), cycles);
  }

  private violation(what: string): void {
    if (this.violations.length < 100) this.violations.push({ atCycle: this.now(), what: `${this.name}: ${what}` });
  }

  private chipPresent(): IdChip | null {
    const chip = this.chip;
    return chip !== null && !chip.disconnected ? chip : null;
  }

  private onPortWrite(): void {
    const machine = this.machine;
    if (machine === null) return;
    const { cpu, port } = machine;
    const mask = 1 << this.bit;
    const output = ((cpu.data[port.portConfig.DDR] ?? 0) & mask) !== 0;
    const high = ((cpu.data[port.portConfig.PORT] ?? 0) & mask) !== 0;
    if (output && high) this.violation('the master drove the line high (push-pull) instead of releasing it to the pull-up');
    const low = output && !high;
    if (low === this.masterLow) return;
    this.masterLow = low;
    this.stats.masterEdges++;
    if (low) this.masterFell();
    else this.masterRose();
    this.update();
  }

  private masterFell(): void {
    const now = this.now();
    this.masterFellAt = now;
    const chip = this.chipPresent();
    if (chip?.programmingAt(now) === true) {
      this.violation('the master pulled the line low while the chip was programming (tPROG): the copy is lost');
      chip.finishProgramming(true);
    }
    if (!this.level) return;  // the line was already low (the chip's pulse, a short): no new slot
    const us = (cycles: number): number => cycles / cyclesPerUs;
    const sinceRise = us(now - this.lineRoseAt);
    if (sinceRise < datasheet.recoveryMin) this.violation(`recovery ${sinceRise.toFixed(2)} µs < tREC ${datasheet.recoveryMin} µs`);
    const sinceReset = us(now - this.resetEndedAt);
    if (sinceReset < datasheet.resetHighMin) this.violation(`a slot ${sinceReset.toFixed(1)} µs after the reset pulse < tRSTH ${datasheet.resetHighMin} µs`);
    const sinceSlot = us(now - this.lastSlotAt);
    if (this.lastSlotAt > this.resetEndedAt && sinceSlot < datasheet.slotMin) this.violation(`slot ${sinceSlot.toFixed(1)} µs < tSLOT ${datasheet.slotMin} µs`);
    this.lastSlotAt = now;
    // A read slot: a chip sending a 0 holds the line low from this edge to the end of the sampling window.
    this.slotBit = chip?.nextBitToSend() ?? null;
    if (chip !== null && this.slotBit === 0) {
      this.chipLow = true;
      this.after(chip.timing.readZeroHoldUs, () => {
        this.chipLow = false;
        this.update();
      });
    }
  }

  private masterRose(): void {
    const now = this.now();
    const lowUs = (now - this.masterFellAt) / cyclesPerUs;
    const chip = this.chipPresent();
    const sending = this.slotBit !== null;
    const slotBit = this.slotBit;
    this.slotBit = null;
    if (lowUs >= datasheet.resetLowMin) {
      this.stats.resets++;
      if (lowUs > datasheet.resetLowMax) this.violation(`reset low ${lowUs.toFixed(1)} µs > tRSTL ${datasheet.resetLowMax} µs`);
      this.resetEndedAt = now;
      if (chip === null || chip.programmingAt(now)) return;
      chip.reset();
      chip.stats.presencePulses++;
      const { presenceDelayUs, presenceLowUs } = chip.timing;
      this.after(presenceDelayUs, () => {
        if (chip !== this.chipPresent()) return;
        this.chipLow = true;
        this.update();
        this.after(presenceLowUs, () => {
          this.chipLow = false;
          this.update();
        });
      });
      return;
    }
    this.stats.slots++;
    if (sending) {
      if (lowUs < datasheet.readLowMin || lowUs > datasheet.readLowMax) {
        this.violation(`read slot low ${lowUs.toFixed(2)} µs outside tRL ${datasheet.readLowMin}–${datasheet.readLowMax} µs`);
      }
      if (chip !== null && slotBit !== null) chip.bitSent();
      return;
    }
    if (lowUs > datasheet.writeZeroLowMax) {
      this.violation(`low ${lowUs.toFixed(1)} µs: longer than tW0L (${datasheet.writeZeroLowMax} µs), shorter than a reset`);
    } else if (lowUs > datasheet.writeOneLowMax && lowUs < datasheet.writeZeroLowMin) {
      this.violation(`write low ${lowUs.toFixed(1)} µs between tW1L's maximum and tW0L's minimum`);
    } else if (lowUs < datasheet.writeOneLowMin) {
      this.violation(`write-one low ${lowUs.toFixed(2)} µs < tW1L ${datasheet.writeOneLowMin} µs`);
    }
    if (chip !== null && !chip.programmingAt(now)) chip.bitReceived(lowUs < chipWriteSampleUs ? 1 : 0);
  }

  /** A copy started: the chip programs for programMs, then completes unless the bus was pulled low meanwhile. */
  private onProgramming(chip: IdChip, programMs: number): void {
    const until = this.now() + Math.round(programMs * 1000 * cyclesPerUs);
    chip.setProgrammingUntil(until);
    this.after(programMs * 1000, () => chip.finishProgramming(false));
  }

  private update(): void {
    const high = !(this.masterLow || this.chipLow || this.shortedValue);
    if (high === this.level) return;
    this.level = high;
    if (high) this.lineRoseAt = this.now();
    const machine = this.machine;
    if (machine !== null) machine.port.setPin(this.bit, high);
  }
}
