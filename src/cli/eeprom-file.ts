// The virtual pen's EEPROM kept in a file, so that what the firmware stores (the calibration) outlives the process:
// loaded before the firmware starts, written back durably (temp file, fsync, rename, fsync of the folder) after the
// MCU writes, and flushed at exit.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { UsageError } from './format.ts';

/** Where the pen command keeps its files: $XDG_DATA_HOME/pen, else ~/.local/share/pen (the store's folder). */
export function dataDirectory(): string {
  const dataHome = process.env['XDG_DATA_HOME'];
  return join(dataHome !== undefined && dataHome !== '' ? dataHome : join(homedir(), '.local', 'share'), 'pen');
}

export function defaultEepromPath(): string {
  return join(dataDirectory(), 'virtual-pen.eeprom');
}

/**
 * Replaces path with data so that a crash at any instant leaves the old file or the new one, never a mix: temp file,
 * fsync, rename over the old one, fsync of the folder.
 */
export function writeDurably(path: string, data: Uint8Array): void {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(temporary, 'w', 0o600);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
  const folder = openSync(dirname(path), 'r');
  try {
    fsyncSync(folder);
  } finally {
    closeSync(folder);
  }
}

/** How long the EEPROM must be quiet (simulated ms) before an in-process pen is switched off after writing it. */
const settleQuietMs = 50;
/** The longest an in-process pen is kept running at close for a write to finish (simulated ms). */
const settleLimitMs = 2000;

/**
 * One virtual pen's EEPROM in a file. Every change is written back at the next turn of the event loop (so within
 * about a millisecond of simulated time), as a whole image that replaces the old file atomically: a process killed
 * with -9 leaves the image of some instant shortly before it died, which is what a chip losing power at that
 * instant would hold (a byte or a record half written at most, which the firmware's two copies are made for).
 */
export class EepromFile {
  readonly path: string;
  private dirty = false;
  private scheduled: NodeJS.Immediate | null = null;
  private lastChangeMs: number | null = null;
  private readonly flushAtExit = (): void => {
    try {
      this.flush();
    } catch (error) {
      process.stderr.write(`pen: could not keep the virtual pen's EEPROM in ${this.path}: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  };

  private constructor(path: string, private readonly pen: VirtualPen) {
    this.path = path;
  }

  /** Loads the file into the pen's EEPROM (a missing file is a blank EEPROM, all 0xFF) and follows its writes. */
  static attach(pen: VirtualPen, path: string): EepromFile {
    const file = new EepromFile(resolve(path), pen);
    const memory = pen.eeprom.memory;
    if (existsSync(file.path)) {
      const image = readFileSync(file.path);
      if (image.length !== memory.length) {
        throw new UsageError(`${file.path} holds ${image.length} bytes, not an EEPROM image of ${memory.length} bytes: give another --eeprom file`);
      }
      memory.set(image);
    } else {
      mkdirSync(dirname(file.path), { recursive: true });
    }
    pen.eeprom.onChange = () => file.changed();
    process.on('exit', file.flushAtExit);
    return file;
  }

  private changed(): void {
    this.dirty = true;
    this.lastChangeMs = this.pen.simTimeMs;
    this.scheduled ??= setImmediate(() => {
      this.scheduled = null;
      this.flush();
    });
  }

  /** Writes the image now if it changed (writeDurably). */
  flush(): void {
    if (!this.dirty) return;
    this.dirty = false;
    writeDurably(this.path, this.pen.eeprom.memory);
  }

  /**
   * For a pen about to be switched off (its run loop stopped): if the firmware wrote the EEPROM lately, runs it on
   * until the EEPROM has been quiet for a while, so a calibration the pen acknowledged is complete in the file.
   */
  settle(): void {
    const start = this.pen.simTimeMs;
    while (this.lastChangeMs !== null && this.pen.simTimeMs - this.lastChangeMs < settleQuietMs && this.pen.simTimeMs - start < settleLimitMs) {
      this.pen.runFor(5);
    }
  }

  /** Final flush; the pen's EEPROM is no longer followed. */
  close(): void {
    if (this.scheduled !== null) clearImmediate(this.scheduled);
    this.scheduled = null;
    this.flush();
    this.pen.eeprom.onChange = null;
    process.off('exit', this.flushAtExit);
  }
}
