// Opens what a command talks to: a serial port or tcp:// address when given (--port, else $PEN_PORT), else an
// in-process virtual pen whose EEPROM and part chips live in files. Every target is named for the output, and the
// process that opens one holds it (status-socket.ts): others see who, watch it read-only, or relay STOP through it.
import { realpathSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { resolve } from 'node:path';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { PenDevice } from '../../hal/device.ts';
import { connectPort } from './connect-port.ts';
import { defaultEepromPath, EepromFile } from './eeprom-file.ts';
import { UsageError } from './format.ts';
import { PartsFile, partsFilePath } from './parts-file.ts';
import { commandLine, PenOwnership } from './status-socket.ts';

export interface Target {
  readonly device: PenDevice;
  /** Where the pen is, for people and records: the port, or the in-process virtual pen and its EEPROM file. */
  readonly where: string;
  /** The in-process virtual pen, when no port was given. */
  readonly virtualPen: VirtualPen | null;
  /** This process's hold on the pen (none for a throwaway pen): a relayed STOP arrives here. */
  readonly owner?: PenOwnership | null;
  close(): Promise<void>;
}

export interface TargetOptions {
  readonly port?: string | undefined;
  readonly firmware?: string | undefined;
  /**
   * The in-process pen's EEPROM file (default: virtual-pen.eeprom in the data directory), its part chips kept next to it
   * (parts-file.ts); null: blank EEPROM and the pen's own parts, nothing kept.
   */
  readonly eeprom?: string | null | undefined;
  /** 'real' paces the in-process pen to the wall clock (for live displays); 'virtual' runs it flat out. */
  readonly timeMode?: 'virtual' | 'real';
  /** Whether the device sends its own heartbeats (false when a session's loop sends them). */
  readonly heartbeat?: boolean;
}

/** A target before it is opened: how it is named, and the key its holder is found by (null: nobody else can reach it). */
export interface TargetName {
  readonly port: string | null;
  readonly eepromPath: string | null;
  readonly where: string;
  readonly key: string | null;
}

/** Serial paths through their symlinks (/dev/serial/by-id/… and /dev/ttyUSB0 are one pen); tcp:// as written. */
function canonicalPort(port: string): string {
  if (/^tcp:/i.test(port)) return port.toLowerCase().replace(/\/$/, '');
  try {
    return realpathSync(port);
  } catch {
    return port;
  }
}

/** --eeprom of the command being run: openTarget's default for an in-process pen (set by addTargetOptions). */
let eepromFlag: string | undefined;

export function nameTarget(options: Pick<TargetOptions, 'port' | 'eeprom'>): TargetName {
  const port = options.port === undefined || options.port === '' ? null : options.port;
  const eeprom = options.eeprom === undefined ? eepromFlag : options.eeprom;
  if (port !== null && typeof eeprom === 'string') {
    throw new UsageError(`--eeprom is the in-process virtual pen's; this command is for the pen on ${port} (--port or $PEN_PORT): give one or the other`);
  }
  if (port !== null) return { port, eepromPath: null, where: port, key: `port:${canonicalPort(port)}` };
  if (eeprom === null) return { port: null, eepromPath: null, where: 'in-process virtual pen (blank EEPROM, not kept)', key: null };
  const eepromPath = resolve(eeprom ?? defaultEepromPath());
  return { port: null, eepromPath, where: `in-process virtual pen (EEPROM ${eepromPath})`, key: `virtual:${eepromPath}` };
}

/**
 * Gives every command that can open an in-process pen (those with --firmware, but the demo, which starts from a
 * blank pen every time) an --eeprom option, whose value openTarget then uses unless told otherwise.
 */
export function addTargetOptions(program: Command): void {
  for (const command of program.commands) {
    if (command.name() === 'demo' || !command.options.some((option) => option.long === '--firmware')) continue;
    command.addOption(new Option('--eeprom <file>', `the virtual pen's EEPROM image, loaded at start (a missing file is a blank EEPROM) and kept as the firmware writes it (default: ${defaultEepromPath()})`));
  }
  program.hook('preAction', (_program, action) => {
    const value: unknown = action.opts()['eeprom'];
    eepromFlag = typeof value === 'string' ? value : undefined;
  });
}

/** Throws a BusyError (naming the holder) when another process holds the pen. */
export async function openTarget(options: TargetOptions): Promise<Target> {
  const name = nameTarget(options);
  const owner = name.key === null ? null : await PenOwnership.claim(name.key, { command: commandLine(), target: name.where });
  try {
    const target = await openNamed(name, options, owner);
    if (owner !== null) {
      target.device.onTelemetry((telemetry) => owner.publish(telemetry));
      owner.onStop(async () => {
        await target.device.stop();
        return target.device.telemetry;
      });
    }
    return target;
  } catch (error) {
    await owner?.close();
    throw error;
  }
}

async function openNamed(name: TargetName, options: TargetOptions, owner: PenOwnership | null): Promise<Target> {
  const heartbeat = options.heartbeat ?? true;
  if (name.port !== null) {
    const device = await connectPort(name.port, heartbeat);  // checks the address; closes the transport if connecting fails
    return {
      device, where: name.where, virtualPen: null, owner,
      close: async () => {
        try {
          await device.close();
        } finally {
          await owner?.close();
        }
      },
    };
  }
  const virtualPen = new VirtualPen({
    timeMode: options.timeMode ?? 'virtual',
    ...(options.firmware === undefined ? {} : { firmwarePath: options.firmware }),
  });
  const eeprom = name.eepromPath === null ? null : EepromFile.attach(virtualPen, name.eepromPath);
  let parts: PartsFile | null;
  try {
    parts = name.eepromPath === null ? null : PartsFile.attach(virtualPen, partsFilePath(name.eepromPath));
  } catch (error) {
    eeprom?.close();
    throw error;
  }
  // Switched off as a person would: the link closed, then the pen left to finish an EEPROM write it acknowledged.
  const switchOff = async (): Promise<void> => {
    try {
      await virtualPen.stop();
      eeprom?.settle();
    } finally {
      eeprom?.close();
      parts?.close();
      await owner?.close();
    }
  };
  virtualPen.start();
  try {
    const device = await PenDevice.connect(virtualPen.openPort(), { clock: virtualPen.clock, heartbeat });
    return {
      device, where: name.where, virtualPen, owner,
      close: async () => {
        try {
          await device.close();
        } finally {
          await switchOff();
        }
      },
    };
  } catch (error) {
    await switchOff();
    throw error;
  }
}
