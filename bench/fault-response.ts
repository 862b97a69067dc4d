// Fault response: from each fault's injection, while the needle runs at 100 strokes/s, to the motor drive off, in exact cycles.
import { usart0Config } from 'avr8js';
import { pen as penDescription } from '../hardware/description.ts';
import { FRAME_STOP, FrameKind, type FaultName } from '../hardware/generated/protocol.ts';
import { encodeFrame } from '../hal/link/frame.ts';
import { encodeMessage } from '../hal/link/codec.ts';
import { progress, round, type Figure } from './figure.ts';
import {
  closeSession, cyclesPerMs, cyclesPerUartByte, cyclesPerUs, latestTelemetryAfter, pauseAfterHeartbeat, startSession,
  type PenSession,
} from './running-pen.ts';

// Deepest working depth: the longest way home for the retract figure.
const workingDepthMm = penDescription.depthWindowMm.max;
const strokesPerSecond = 100;
const limitMs = 400;  // beyond the heartbeat timeout, so every kind trips something
const heartbeatTimeoutUs = penDescription.timing.heartbeatTimeoutMs * 1000;
const rxComplete = 0x80;  // RXC0 in UCSR0A: set when a received byte is ready

// A command cut off mid-write: what a STOP must get through.
const partialFrame = encodeFrame(FrameKind.data | 9, encodeMessage('move_to', { depthUm: 1800 })).subarray(0, 4);

interface FaultKind {
  readonly name: string;
  /** What the pen should report afterwards; STOP is not a fault. */
  readonly expected: FaultName;
  /** Injects the fault with the MCU paused; returns the cycle to measure from. */
  readonly inject: (session: PenSession, heartbeatCycle: number) => number;
}

const atOnce = (change: (session: PenSession) => void) => (session: PenSession): number => {
  change(session);
  return session.pen.totalCycles;
};

const kinds: readonly FaultKind[] = [
  { name: 'estop', expected: 'estop', inject: atOnce(({ pen }) => pen.setInput('estop', true)) },
  { name: 'cartridge_removed', expected: 'cartridge_removed', inject: atOnce(({ pen }) => pen.setInput('cartridgePresent', false)) },
  { name: 'over_temperature', expected: 'over_temperature', inject: atOnce(({ pen }) => { pen.plant.forcedTemperatureC = 60; }) },
  { name: 'temperature_sensor_open', expected: 'temperature_sensor', inject: atOnce(({ pen }) => { pen.plant.ntcFault = 'open'; }) },
  { name: 'supply_low', expected: 'supply_out_of_range', inject: atOnce(({ pen }) => { pen.plant.supplyVolts = 9; }) },
  { name: 'motor_stall', expected: 'motor_stall', inject: atOnce(({ pen }) => { pen.plant.tachBroken = true; }) },
  { name: 'motor_overcurrent', expected: 'motor_overcurrent', inject: atOnce(({ pen }) => pen.plant.setLoad('jam')) },
  // Inward, so the needle stays inside the window and the step/sensor disagreement is what trips (outward, the
  // window check trips first).
  { name: 'depth_mismatch', expected: 'depth_mismatch', inject: atOnce(({ pen }) => pen.plant.slip(-0.3)) },
  // Nothing to inject: the heartbeat paused on is the last one, so measure from when it reached the MCU.
  { name: 'heartbeat_loss', expected: 'heartbeat_lost', inject: (_session, heartbeatCycle) => heartbeatCycle },
  // The STOP byte alone, between frames: the receive interrupt acts on it.
  { name: 'stop_byte', expected: 'none', inject: atOnce(({ port }) => port.write(Uint8Array.of(FRAME_STOP))) },
  // A partial frame first (as if a command were cut off mid-write), then the STOP byte behind it.
  {
    name: 'stop_after_partial_frame',
    expected: 'none',
    inject: atOnce(({ port }) => port.write(Uint8Array.of(...partialFrame, FRAME_STOP))),
  },
];

/** Wraps a condition so it also records the cycle of each byte the UART receives (RXC rising). */
function countingReceivedBytes(session: PenSession, receivedAt: number[], condition: () => boolean): () => boolean {
  let wasSet = false;
  return () => {
    const set = ((session.pen.mcu.data[usart0Config.UCSRA] ?? 0) & rxComplete) !== 0;
    if (set && !wasSet) receivedAt.push(session.pen.totalCycles);
    wasSet = set;
    return condition();
  };
}

async function measureKind(kind: FaultKind, seed: number): Promise<Figure[]> {
  const session = await startSession({ seed, depthMm: workingDepthMm, strokesPerSecond });
  const { pen } = session;
  const heartbeatCycle = await pauseAfterHeartbeat(session);
  if (pen.plant.motorDrive() === 0) throw new Error(`${kind.name}: the motor was off before the injection`);
  const fromCycle = kind.inject(session, heartbeatCycle);
  const receivedAt: number[] = [];
  const motorOff = countingReceivedBytes(session, receivedAt, () => pen.plant.motorDrive() === 0);
  const tripped = pen.runUntil(motorOff, limitMs) !== null;
  const offCycle = pen.totalCycles;
  // Before anything else runs on, so the retract is timed from its start.
  const homeCycles = kind.name === 'estop' && tripped ? pen.runUntil(() => pen.plant.carriageMm <= 0, 1000) : null;
  const homeCycle = pen.totalCycles;
  const telemetry = latestTelemetryAfter(session, 20);
  const reported = telemetry?.fault ?? 'no telemetry';
  const note = tripped ? `pen reported ${reported}` : `motor still on after ${limitMs} ms; pen reported ${reported}`;
  if (!tripped || reported !== kind.expected) progress(`SURPRISE ${kind.name}: expected ${kind.expected}, ${note}`);
  const us = (cycles: number): number => (tripped ? round(cycles / cyclesPerUs, 1) : Number.NaN);
  const prefix = `fault_${kind.name}`;
  const figures: Figure[] = [];

  if (kind.name === 'heartbeat_loss') {
    figures.push({ name: `${prefix}_overshoot_us`, value: us(offCycle - fromCycle - heartbeatTimeoutUs * cyclesPerUs), unit: 'µs', note });
    figures.push({ name: `${prefix}_motor_off_ms`, value: round(us(offCycle - fromCycle) / 1000, 3), unit: 'ms', note });
  } else if (kind.name.startsWith('stop_')) {
    // The STOP byte's arrival, measured (RXC: the last byte received before the motor went off), else from line time.
    const bytesOnLine = kind.name === 'stop_byte' ? 1 : partialFrame.length + 1;
    const stopByteCycle = receivedAt[bytesOnLine - 1] ?? fromCycle + bytesOnLine * cyclesPerUartByte;
    figures.push({ name: `${prefix}_motor_off_us`, value: us(offCycle - stopByteCycle), unit: 'µs', note: `${note}; from the STOP byte received` });
    figures.push({ name: `${prefix}_motor_off_incl_line_us`, value: us(offCycle - fromCycle), unit: 'µs', note: `${note}; from the write, ${bytesOnLine} B on the line` });
  } else {
    figures.push({ name: `${prefix}_motor_off_us`, value: us(offCycle - fromCycle), unit: 'µs', note });
  }
  if (kind.name === 'estop') {
    const value = homeCycles === null ? Number.NaN : round((homeCycle - fromCycle) / cyclesPerMs, 2);
    figures.push({ name: `${prefix}_needle_home_ms`, value, unit: 'ms', note: `from ${workingDepthMm} mm, from the injection` });
  }
  await closeSession(session);
  return figures;
}

export async function measure(): Promise<Figure[]> {
  const figures: Figure[] = [];
  for (const [index, kind] of kinds.entries()) {
    const measured = await measureKind(kind, index + 1);
    progress(`${kind.name}: ${measured.map((f) => `${f.value} ${f.unit}`).join(', ')}`);
    figures.push(...measured);
  }
  return figures;
}
