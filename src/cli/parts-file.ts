// The virtual pen's part chips kept in a file next to its EEPROM image (<eeprom>.parts.json), so that they behave as a
// clinic's parts do from one `pen` process to the next: the nosecone's chip (ROM id and memory, its one-way marks) is
// loaded before the firmware starts and written back durably after every copy it programs; and each start fits a new
// cartridge, fresh from its maker, under the next serial of a counter kept in the file, so no two runs share its id.
import { randomInt } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { IdChip, idChipMemoryBytes, onewireCrc8, romId } from '../../hardware/sim/id-chip.ts';
import type { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { writeDurably } from './eeprom-file.ts';
import { UsageError } from './format.ts';

const fileKind = 'pen virtual pen parts';
const fileVersion = 1;
/** A ROM id's serial field holds 48 bits. */
const serialLimit = 2 ** 48;
/** A new file's first cartridge serial is drawn below this, leaving room to count up within 48 bits. */
const firstSerialLimit = 2 ** 40;

/** What a parts file keeps. */
export interface KeptParts {
  /** The serial the cartridge of the next process start gets. */
  readonly nextCartridgeSerial: number;
  readonly nosecone: { readonly rom: Uint8Array; readonly memory: Uint8Array };
}

/** Where the parts of the virtual pen with this EEPROM file are kept. */
export function partsFilePath(eepromPath: string): string {
  return `${eepromPath}.parts.json`;
}

const hexBytes = (text: unknown, bytes: number): Uint8Array | null =>
  typeof text === 'string' && new RegExp(`^[0-9a-f]{${bytes * 2}}$`).test(text) ? Uint8Array.from(Buffer.from(text, 'hex')) : null;

/** The file's parts, checked; null when there is no file. A file that is not one throws a UsageError saying what to do. */
export function readPartsFile(path: string): KeptParts | null {
  if (!existsSync(path)) return null;
  const refused = (why: string): UsageError => new UsageError(`${path} is not a parts file of the virtual pen (${why}): move it away to start ` +
    'with new parts (the parts registry may then flag the nosecone, whose tally starts over), or give another --eeprom file');
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw refused(error instanceof Error ? error.message : String(error));
  }
  const fields = typeof json === 'object' && json !== null ? json as Record<string, unknown> : {};
  if (fields['kind'] !== fileKind || fields['version'] !== fileVersion) throw refused(`it does not say kind "${fileKind}", version ${fileVersion}`);
  const next = fields['nextCartridgeSerial'];
  if (typeof next !== 'number' || !Number.isSafeInteger(next) || next < 0 || next >= serialLimit) throw refused('nextCartridgeSerial is not a 48-bit serial');
  const nosecone = typeof fields['nosecone'] === 'object' && fields['nosecone'] !== null ? fields['nosecone'] as Record<string, unknown> : {};
  const rom = hexBytes(nosecone['rom'], 8);
  if (rom === null || onewireCrc8(rom) !== 0) throw refused('nosecone.rom is not a ROM id of 16 hex digits with its CRC-8');
  const memory = hexBytes(nosecone['memory'], idChipMemoryBytes);
  if (memory === null) throw refused(`nosecone.memory is not ${idChipMemoryBytes} bytes in hex`);
  return { nextCartridgeSerial: next, nosecone: { rom, memory } };
}

/** One virtual pen's part chips in a file; written at the next turn of the event loop after a change, and at exit. */
export class PartsFile {
  readonly path: string;
  private dirty = false;
  private scheduled: NodeJS.Immediate | null = null;
  private readonly flushAtExit = (): void => {
    try {
      this.flush();
    } catch (error) {
      process.stderr.write(`pen: could not keep the virtual pen's parts in ${this.path}: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  };

  private constructor(path: string, private readonly nosecone: IdChip, private nextCartridgeSerial: number) {
    this.path = path;
  }

  /**
   * Fits the pen (not started yet) with the file's nosecone and a new cartridge, and follows the nosecone's writes. A
   * missing file keeps the pen's own nosecone and starts the cartridges at a random serial, so that a file started
   * over (or another pen's) does not hand out cartridge ids the parts registry has seen.
   */
  static attach(pen: VirtualPen, path: string): PartsFile {
    const absolute = resolve(path);
    const kept = readPartsFile(absolute);
    const nosecone = kept === null ? pen.idChips.nosecone.chip : new IdChip(kept.nosecone.rom, kept.nosecone.memory);
    // The pen comes with a fresh cartridge: the new one is its like, under its own serial.
    const fresh = pen.idChips.cartridge.chip;
    if (nosecone === null || fresh === null) throw new Error('the virtual pen must have its nosecone and cartridge fitted to keep its parts');
    const serial = kept?.nextCartridgeSerial ?? randomInt(firstSerialLimit);
    pen.idChips.nosecone.fit(nosecone);
    pen.idChips.cartridge.fit(new IdChip(romId(BigInt(serial)), fresh.memory));
    const file = new PartsFile(absolute, nosecone, serial + 1);
    // The serial is taken before the firmware reads the chip: a process killed later never hands it out again.
    mkdirSync(dirname(absolute), { recursive: true });
    file.write();
    // Cartridges swapped in later (pen.fitNewCartridge) count on from the file's serial too, each written before use.
    pen.newCartridgeSerial = () => {
      const next = file.nextCartridgeSerial++;
      file.write();
      return BigInt(next);
    };
    nosecone.onChange = () => {
      file.dirty = true;
      file.scheduled ??= setImmediate(() => {
        file.scheduled = null;
        file.flush();
      });
    };
    process.on('exit', file.flushAtExit);
    return file;
  }

  /** Writes the file now if the nosecone's chip changed. */
  flush(): void {
    if (!this.dirty) return;
    this.dirty = false;
    this.write();
  }

  /** Writes the file (writeDurably): a process killed at any instant leaves the chip as it was at some instant before. */
  private write(): void {
    const contents = {
      kind: fileKind,
      version: fileVersion,
      nextCartridgeSerial: this.nextCartridgeSerial,
      nosecone: { rom: Buffer.from(this.nosecone.rom).toString('hex'), memory: Buffer.from(this.nosecone.memory).toString('hex') },
    };
    writeDurably(this.path, Buffer.from(`${JSON.stringify(contents, null, 2)}\n`));
  }

  /** Final write; the nosecone's chip is no longer followed. */
  close(): void {
    if (this.scheduled !== null) clearImmediate(this.scheduled);
    this.scheduled = null;
    this.flush();
    this.nosecone.onChange = null;
    process.off('exit', this.flushAtExit);
  }
}
