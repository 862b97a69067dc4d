// `pen sim`'s pen: the virtual pen booting through Optiboot like an Uno, with its EEPROM and part chips in files, a seed
// for its noise and link faults, and the mechanical errors a real pen is built with (home offset, travel scale), refused
// outside the tolerances in hardware/pen.json; its dial gauge on TCP, with the backlash and lead error a calibration must reject;
// the HIL rig wired to it (a second avr8js running Firmata), its UART on TCP; the control channel for the plant faults
// only a virtual bench can cause.
import { existsSync } from 'node:fs';
import type { Server } from 'node:net';
import rigDescription from '../../hardware/rig.json' with { type: 'json' };
import { pen as description } from '../../hardware/description.ts';
import { plantSettingNames, serveControl } from '../../hardware/sim/control.ts';
import { serveGauge, VirtualGauge } from '../../hardware/sim/gauge.ts';
import { parseListenAddress, type ListenAddress } from '../../hardware/sim/tcp-server.ts';
import { defaultBootloaderPath, VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { defaultRigFirmwarePath, rigFirmwareHexPath, serveRig, standardFirmataHexPath, VirtualRig } from '../../hardware/sim/virtual-rig.ts';
import { defaultEepromPath, EepromFile } from './eeprom-file.ts';
import { numberOption, UsageError } from './format.ts';
import { ListenError } from './listen.ts';
import { PartsFile, partsFilePath } from './parts-file.ts';

export interface SimFlags {
  readonly firmware?: string;
  readonly eeprom?: string;
  readonly seed?: string;
  readonly offsetMm?: string;
  readonly scaleError?: string;
  readonly backlashMm?: string;
  readonly screwErrorMm?: string;
  /** Where to serve the virtual dial gauge (tcp://HOST:PORT), if at all. */
  readonly gauge?: string;
  /** Wiring faults set in the plant at start (--fault, repeatable): see simFaults. */
  readonly fault?: readonly string[];
  /** A board with only its bootloader: no application in flash (a new board, before `pen flash`). */
  readonly blank?: boolean;
  /** Where to serve the virtual HIL rig's UART (tcp://HOST:PORT), if at all. */
  readonly rig?: string;
  /** The rig's firmware (Intel HEX); see defaultRigFirmwarePath. */
  readonly rigFirmware?: string;
  /** Where to serve the control channel for virtual-only plant faults (tcp://HOST:PORT), if at all. */
  readonly control?: string;
}

/** What `pen sim` serves: the pen's UART and, with their flags, the gauge, the rig's UART and the control channel. */
export type SimEndpoint = 'pen' | 'gauge' | 'rig' | 'control';

/**
 * `pen sim`'s output: a line of text; with endpoint, the line that says an endpoint is served and its bound address
 * (port 0 resolved), which `--json` prints as fields, so a script that asked for port 0 finds every address.
 */
export type SimLog = (line: string, served?: { readonly endpoint: SimEndpoint; readonly address: string }) => void;

/** `pen sim --fault NAME`: a miswired board, for bring-up checks (`pen doctor`); each sets a plant fault at start. */
export const simFaults = {
  'depth-sensor-open': (pen: VirtualPen): void => { pen.plant.depthSensorFault = 'open'; },
  'home-switch-stuck': (pen: VirtualPen): void => { pen.plant.setHomeSwitchStuck(true); },
  'tach-broken': (pen: VirtualPen): void => { pen.plant.tachBroken = true; },
} as const;
const simFaultNames = Object.keys(simFaults);

export const simTolerances = {
  offsetMm: description.tolerances.homeOffsetUm / 1000,
  scaleError: description.tolerances.depthScalePpm / 1e6,
} as const;

/** Bounds for the mechanical errors that are no tolerance of a good pen: set to test that `pen calibrate` rejects them. */
const simMechanicalErrorLimits = {
  backlashMm: 0.5,
  screwErrorMm: 0.1,
} as const;

const acceptance = description.calibration.acceptance;
const rigBaud = rigDescription.firmataBaud;

export const simOptionHelp = {
  seed: 'seed for the plant noise and link fault injection, a whole number 0–4294967295 (default 1)',
  offsetMm: `mechanical home offset of the needle, in mm: true depth at carriage 0, within ±${simTolerances.offsetMm.toFixed(3)} mm (pen.json tolerances; default 0)`,
  fault: `a wiring fault set at start, repeatable: ${simFaultNames.join(', ')}`,
  scaleError: `mechanical travel scale error, as a fraction: true depth = carriage × (1 + error) + offset, within ±${simTolerances.scaleError} (±${(simTolerances.scaleError * 100).toFixed(2)} %; default 0)`,
  backlashMm: `backlash between the lead screw and the needle, in mm, 0–${simMechanicalErrorLimits.backlashMm} (default 0): approached ` +
    `from above, the needle sits that much deeper than from below (pen calibrate accepts up to ${acceptance.maxBacklashUm} µm)`,
  screwErrorMm: `periodic lead error of the screw, in mm, 0–${simMechanicalErrorLimits.screwErrorMm} (default 0): peak amplitude, ` +
    `once per ${description.mechanics.leadScrewPitchMm} mm turn, which a straight-line calibration cannot remove`,
  gauge: 'also serve the virtual dial gauge on this address (tcp://HOST:PORT): it measures the true needle protrusion and ' +
    'answers each "?" line with a reading such as "+0001.234" and CR (pen.json calibration.virtualGauge)',
  autoReset: 'pulse the reset on each client connect, as an Uno\'s DTR does when its serial port opens, so that `pen flash` ' +
    '(avrdude) finds the bootloader; every connect then restarts the firmware (about a second in the bootloader first). ' +
    'Off by default, so that successive `pen` commands against a running pen do not reset it',
  blank: 'a board with only its bootloader and no application, as it comes before `pen flash` (give --auto-reset to flash it)',
  rig: 'also run the HIL rig (a second ATmega328P in avr8js running Firmata, wired to the pen as hardware/rig.json says, in the ' +
    'pen\'s simulated time) and serve its USB serial port on this address (tcp://HOST:PORT); each connect resets it, as DTR would',
  control: 'also serve the control channel on this address (tcp://HOST:PORT), for the plant faults only a virtual bench can ' +
    `cause (hardware/rig.json virtualOnly: ${plantSettingNames.join(', ')}): one JSON request a line, e.g. ` +
    '{"set":"temperatureC","value":62}, {"get":"plant"}, {"clear":"all"}; one JSON reply a line; any number of clients',
  rigFirmware: `the rig's firmware, Intel HEX (default ${rigFirmwareHexPath} if built, else ${standardFirmataHexPath}, ` +
    'fetched by scripts/fetch-standard-firmata.sh)',
} as const;

function withinLimit(value: string | undefined, name: string, limit: number, example: string): number {
  const number = numberOption(value, name, example) ?? 0;
  if (number < 0 || number > limit) throw new UsageError(`${name} ${value ?? ''} is outside 0–${limit} mm: give a size in mm, e.g. ${name} ${example}`);
  return number;
}

function listenAddressOption(value: string, name: string): ListenAddress {
  try {
    return parseListenAddress(value);
  } catch (error) {
    throw new UsageError(`${name}: ${(error as Error).message}`);
  }
}

function withinTolerance(value: string | undefined, name: string, limit: number, unit: string, example: string): number {
  const number = numberOption(value, name, example) ?? 0;
  if (Math.abs(number) > limit) {
    throw new UsageError(`${name} ${value ?? ''} is outside the pen's tolerance: allowed −${limit}–${limit}${unit} (hardware/pen.json tolerances)`);
  }
  return number;
}

/** The virtual dial gauge on the pen's needle and where `--gauge` asked to serve it. */
export interface SimGauge {
  readonly gauge: VirtualGauge;
  readonly address: ListenAddress;
}

/**
 * Checks the flags (a usage error names what is allowed), then builds the pen with its EEPROM loaded from the file and
 * its part chips from the file next to it (a new cartridge fitted). Both files are written as the pen changes them and
 * at exit; close them after the pen has stopped. With `--gauge`, also the gauge to serve (serveSimGauge).
 */
export function createSimPen(flags: SimFlags): {
  readonly pen: VirtualPen; readonly eeprom: EepromFile; readonly parts: PartsFile; readonly gauge: SimGauge | null;
  /** Where `--control` asked to serve the control channel (serveSimControl), or null. */
  readonly control: ListenAddress | null;
} {
  const seed = numberOption(flags.seed, '--seed', '42') ?? 1;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new UsageError(`--seed must be a whole number 0–4294967295 (got ${flags.seed ?? ''})`);
  const offsetMm = withinTolerance(flags.offsetMm, '--offset-mm', simTolerances.offsetMm, ' mm', '0.02');
  const scaleError = withinTolerance(flags.scaleError, '--scale-error', simTolerances.scaleError, '', '0.005');
  const backlashMm = withinLimit(flags.backlashMm, '--backlash-mm', simMechanicalErrorLimits.backlashMm, '0.02');
  const screwErrorMm = withinLimit(flags.screwErrorMm, '--screw-error-mm', simMechanicalErrorLimits.screwErrorMm, '0.01');
  const gaugeAddress = flags.gauge === undefined ? null : listenAddressOption(flags.gauge, '--gauge');
  const control = flags.control === undefined ? null : listenAddressOption(flags.control, '--control');
  const faults = (flags.fault ?? []).map((name) => {
    if (!Object.hasOwn(simFaults, name)) throw new UsageError(`--fault ${name} is not a fault the virtual pen knows: use one of ${simFaultNames.join(', ')}`);
    return simFaults[name as keyof typeof simFaults];
  });
  if (flags.blank === true && flags.firmware !== undefined) throw new UsageError('--blank is a board with no application: it takes no --firmware');
  const firmwarePath = flags.blank === true ? null : flags.firmware;
  const pen = new VirtualPen({ timeMode: 'real', seed, bootloaderPath: defaultBootloaderPath, ...(firmwarePath === undefined ? {} : { firmwarePath }) });
  pen.plant.offsetMm = offsetMm;
  pen.plant.scaleError = scaleError;
  pen.plant.backlashMm = backlashMm;
  pen.plant.screwNonlinearityMm = screwErrorMm;
  for (const fault of faults) fault(pen);
  // The gauge's noise is seeded apart from the plant's, so adding a gauge does not change the pen's own noise.
  const gauge = gaugeAddress === null ? null : { gauge: new VirtualGauge(pen.plant, { seed: (seed ^ 0x6a09e667) >>> 0 }), address: gaugeAddress };
  const eeprom = EepromFile.attach(pen, flags.eeprom ?? defaultEepromPath());
  try {
    return { pen, eeprom, parts: PartsFile.attach(pen, partsFilePath(eeprom.path)), gauge, control };
  } catch (error) {
    eeprom.close();
    throw error;
  }
}

/** Serves the pen's dial gauge where `--gauge` said, and says where and what it reads; a ListenError if it cannot. */
export async function serveSimGauge(gauge: SimGauge, log: SimLog): Promise<Server> {
  let server: Server;
  try {
    server = await serveGauge(gauge.gauge, gauge.address);
  } catch (error) {
    throw new ListenError(`cannot serve the gauge on tcp://${gauge.address.host}:${gauge.address.port}: ${(error as Error).message}; ` +
      'choose another --gauge address (port 0 for any free one)');
  }
  const address = boundAddress(server, gauge.address);
  const { resolutionMm, noiseMm, rangeMm } = gauge.gauge;
  log(`virtual gauge listening on ${address} (resolution ${resolutionMm} mm, noise ${noiseMm} mm, ` +
    `range ±${rangeMm} mm; a "?" line answers a reading)`, { endpoint: 'gauge', address });
  return server;
}

/** The virtual rig wired to the pen and where `--rig` asked to serve it. */
export interface SimRig {
  readonly rig: VirtualRig;
  readonly address: ListenAddress;
}

/**
 * With `--rig`, wires a virtual rig running `--rig-firmware` (or the default) to the pen, so that the pen's run loop
 * steps both; null without. A usage error names what is missing (an address, a firmware file).
 */
export function createSimRig(pen: VirtualPen, flags: Pick<SimFlags, 'rig' | 'rigFirmware'>): SimRig | null {
  if (flags.rig === undefined) {
    if (flags.rigFirmware !== undefined) throw new UsageError('--rig-firmware needs --rig ADDRESS: where to serve the rig');
    return null;
  }
  const address = listenAddressOption(flags.rig, '--rig');
  let firmwarePath: string;
  try {
    firmwarePath = flags.rigFirmware ?? defaultRigFirmwarePath();
  } catch (error) {
    throw new UsageError(`--rig: ${(error as Error).message}; or name one with --rig-firmware HEX`);
  }
  if (!existsSync(firmwarePath)) throw new UsageError(`--rig-firmware ${firmwarePath}: no such file (an Intel HEX for an Uno, e.g. ${standardFirmataHexPath})`);
  return { rig: new VirtualRig(pen, { firmwarePath }), address };
}

/** Serves the rig's UART where `--rig` said, and says where and what it runs; a ListenError if it cannot. */
export async function serveSimRig(simRig: SimRig, log: SimLog): Promise<Server> {
  let server: Server;
  try {
    server = await serveRig(simRig.rig, simRig.address, log);
  } catch (error) {
    throw new ListenError(`cannot serve the rig on tcp://${simRig.address.host}:${simRig.address.port}: ${(error as Error).message}; ` +
      'choose another --rig address (port 0 for any free one)');
  }
  const address = boundAddress(server, simRig.address);
  log(`virtual rig listening on ${address} (${simRig.rig.firmwarePath}; Firmata at ${rigBaud} baud, ` +
    'reset on connect; wired as hardware/rig.json)', { endpoint: 'rig', address });
  return server;
}

/** Serves the control channel where `--control` said, and says where and what it takes; a ListenError if it cannot. */
export async function serveSimControl(pen: VirtualPen, where: ListenAddress, log: SimLog): Promise<Server> {
  let server: Server;
  try {
    server = await serveControl(pen, where, log);
  } catch (error) {
    throw new ListenError(`cannot serve the control channel on tcp://${where.host}:${where.port}: ${(error as Error).message}; ` +
      'choose another --control address (port 0 for any free one)');
  }
  const address = boundAddress(server, where);
  log(`virtual pen control listening on ${address} (one JSON request a line: set ${plantSettingNames.join(', ')}; ` +
    'get plant; clear all)', { endpoint: 'control', address });
  return server;
}

/** tcp://HOST:PORT as the server is bound: port 0 resolved to the port the system chose. */
export function boundAddress(server: Server, asked: ListenAddress): string {
  const bound = server.address();
  const port = typeof bound === 'object' && bound !== null ? bound.port : asked.port;
  return `tcp://${asked.host}:${port}`;
}
