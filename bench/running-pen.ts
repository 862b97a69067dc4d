// Shared set-up for benchmarks on the virtual pen: boot, connect, home, move, arm and run the needle; pause on a fresh heartbeat.
import { RealClock } from '../hardware/clock.ts';
import { pen as penDescription } from '../hardware/description.ts';
import type { MotorLoad } from '../hardware/sim/plant.ts';
import { VirtualPen, type PenUart } from '../hardware/sim/virtual-pen.ts';
import { encodeMessage } from '../hal/link/codec.ts';
import { FrameKind } from '../hardware/generated/protocol.ts';
import { encodeFrame } from '../hal/link/frame.ts';
import { PenDevice } from '../hal/device.ts';
import type { PenStore } from '../src/store/store.ts';
import { noseconeReport, SterilizationRegistry } from '../src/sterilization/registry.ts';

export const cyclesPerUs = penDescription.board.cpuHz / 1e6;
export const cyclesPerMs = penDescription.board.cpuHz / 1e3;
/** One byte on the line: start + 8 data + stop bits at the UART's baud rate (640 cycles at 250 kbaud). */
export const cyclesPerUartByte = (10 * penDescription.board.cpuHz) / penDescription.board.uartBaud;

export interface PenSession {
  readonly pen: VirtualPen;
  /** The port the device talks through, kept so raw frames can share it (opening another closes this one). */
  readonly port: PenUart;
  readonly device: PenDevice;
}

export interface NeedleSetup {
  readonly seed: number;
  readonly depthMm?: number;
  readonly strokesPerSecond?: number;
  readonly load?: MotorLoad;
  readonly settleMs?: number;
}

/** Clears the fitted cartridge by its ID chip's ROM id and arms on today's date (the pen checks the cartridge's expiry against it). */
export async function armFitted(device: PenDevice): Promise<void> {
  const { cartridge } = await device.settledParts();
  await device.clearCartridge(cartridge.rom);
  await device.arm(new RealClock().epochMs());
}

/** Puts the fitted nosecone on record in store with a passed cycle, as its chip's tally says, so a session may use it. */
export async function recordSterileNosecone(device: PenDevice, store: PenStore): Promise<void> {
  const { nosecone } = await device.settledParts();
  const registry = new SterilizationRegistry(store);
  const actor = { pen: null, operator: 'bench' };
  registry.checkFitted(noseconeReport(nosecone), actor);
  registry.recordCycle({ partIds: [nosecone.rom], cycle: '134C-3min-prevac', sterilizerId: 'BENCH', loadNumber: 1, chemicalIndicator: 'pass' }, actor);
}

/** A booted, connected and homed pen; with strokesPerSecond, also moved, armed and running the needle, settled. */
export async function startSession(setup: NeedleSetup): Promise<PenSession> {
  const pen = new VirtualPen({ seed: setup.seed });
  pen.start();
  const port = pen.openPort();
  const device = await PenDevice.connect(port, { clock: pen.clock });
  await device.depth.home();
  if (setup.depthMm !== undefined) await device.depth.moveTo(setup.depthMm);
  if (setup.strokesPerSecond !== undefined) {
    if (setup.load !== undefined) pen.plant.setLoad(setup.load);
    await armFitted(device);
    await device.needle.start(setup.strokesPerSecond);
    await pen.clock.sleep(setup.settleMs ?? 1000);
  }
  return { pen, port, device };
}

/**
 * Stops the periodic heartbeat, sends one last beat and pauses the background loop once it is answered, so the MCU
 * then runs only under runUntil with the full heartbeat timeout ahead. Returns the cycle that beat reached the MCU.
 */
export async function pauseAfterHeartbeat({ pen, device }: PenSession): Promise<number> {
  device.setHeartbeat(false);
  // As sent on the wire (one byte more when the sequence number makes the seq byte need escaping).
  const frameBytes = encodeFrame(FrameKind.data, encodeMessage('heartbeat', {})).length;
  // The write is synchronous and the MCU is paused between run slices, so this is the write's exact cycle.
  const receivedCycle = pen.totalCycles + frameBytes * cyclesPerUartByte;
  await device.heartbeat();
  await pen.stop();
  return receivedCycle;
}

/** Runs the MCU briefly so the pen's latest telemetry reaches the device, and returns it (the loop stays paused). */
export function latestTelemetryAfter({ pen, device }: PenSession, ms: number): PenDevice['telemetry'] {
  pen.runFor(ms);
  return device.telemetry;
}

export async function closeSession({ pen, device }: PenSession): Promise<void> {
  await device.close();
  await pen.stop();
}
