// The virtual rig (hardware/sim/virtual-rig.ts) with stock StandardFirmata, spoken to in raw Firmata bytes, on virtual time:
// it answers version and capability queries, presses the pen's e-stop, reads motorEnable and the filtered motor PWM.
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { standardFirmataHexPath, VirtualRig, type RigUart } from '../../hardware/sim/virtual-rig.ts';
import { armFitted, homedVirtualPen, type VirtualSession } from './virtual-session.ts';

// Firmata's message bytes (firmata protocol, v2.x).
const REPORT_VERSION = 0xf9;
const START_SYSEX = 0xf0;
const END_SYSEX = 0xf7;
const CAPABILITY_QUERY = 0x6b;
const CAPABILITY_RESPONSE = 0x6c;
const REPORT_FIRMWARE = 0x79;
const SET_PIN_MODE = 0xf4;
const DIGITAL_MESSAGE = 0x90;
const ANALOG_MESSAGE = 0xe0;
const REPORT_ANALOG = 0xc0;
const REPORT_DIGITAL = 0xd0;
const SAMPLING_INTERVAL = 0x7a;
const mode = { input: 0, output: 1 } as const;

interface Received {
  readonly at: number;
  readonly bytes: readonly number[];
}

/** Splits the rig's byte stream into Firmata messages, each stamped with the pen's simulated time it arrived at. */
class FirmataListener {
  readonly messages: Received[] = [];
  private partial: number[] = [];

  constructor(port: RigUart, private readonly now: () => number) {
    port.onData((bytes) => {
      for (const byte of bytes) this.take(byte);
    });
  }

  private take(byte: number): void {
    if (byte >= 0x80 && this.partial[0] !== START_SYSEX) this.partial = [];
    this.partial.push(byte);
    const first = this.partial[0] ?? 0;
    const complete = first === START_SYSEX ? byte === END_SYSEX : this.partial.length === 3;
    if (complete) {
      this.messages.push({ at: this.now(), bytes: this.partial });
      this.partial = [];
    }
  }

  /** Messages that start with firstByte (a command, with its port or pin for the MIDI-style ones), received since sinceMs. */
  of(firstByte: number, sinceMs = 0): Received[] {
    return this.messages.filter((m) => m.at >= sinceMs && m.bytes[0] === firstByte);
  }

  sysex(command: number): Received[] {
    return this.messages.filter((m) => m.bytes[0] === START_SYSEX && m.bytes[1] === command);
  }
}

/** A 14-bit value from Firmata's two 7-bit bytes. */
const value14 = (message: Received): number => (message.bytes[1] ?? 0) | ((message.bytes[2] ?? 0) << 7);
/** A0's reading in volts (10-bit ADC against the Uno's 5 V). */
const analogVolts = (message: Received): number => (value14(message) * 5) / 1024;

describe.skipIf(!existsSync(standardFirmataHexPath))('virtual rig running StandardFirmata', () => {
  let session: VirtualSession | null = null;
  afterEach(async () => {
    if (session === null) return;
    await session.device.close();
    await session.pen.stop();
    session = null;
  });

  it('announces itself after the DTR reset, answers REPORT_VERSION and the capability query, and keeps the pen\'s time', () => {
    const pen = new VirtualPen();
    const rig = new VirtualRig(pen, { firmwarePath: standardFirmataHexPath });
    const port = rig.openPort();
    const firmata = new FirmataListener(port, () => pen.simTimeMs);
    // This StandardFirmata (2.4) blinks its version on D13 first (about 1.8 s), then sends its version and name unasked.
    pen.runFor(2500);
    expect(firmata.of(REPORT_VERSION)[0]?.bytes).toEqual([REPORT_VERSION, 2, expect.any(Number) as number]);
    const name = firmata.sysex(REPORT_FIRMWARE)[0]?.bytes ?? [];
    const text = String.fromCharCode(...name.slice(4, -1).filter((_, i) => i % 2 === 0));
    expect(text).toBe('StandardFirmata.ino');

    const versions = firmata.of(REPORT_VERSION).length;
    port.write(Uint8Array.from([REPORT_VERSION]));
    port.write(Uint8Array.from([START_SYSEX, CAPABILITY_QUERY, END_SYSEX]));
    pen.runFor(100);
    expect(firmata.of(REPORT_VERSION)).toHaveLength(versions + 1);
    const capability = firmata.sysex(CAPABILITY_RESPONSE)[0]?.bytes ?? [];
    // One 0x7F-terminated list of (mode, resolution) per pin: the Uno's 20 (D0–D13, A0–A5); A0 lists analog (mode 2).
    const perPin: number[][] = [[]];
    for (const byte of capability.slice(2, -1)) {
      if (byte === 0x7f) perPin.push([]);
      else perPin[perPin.length - 1]?.push(byte);
    }
    expect(perPin.slice(0, -1)).toHaveLength(20);
    expect(perPin[14]).toEqual(expect.arrayContaining([2, 10]));  // A0: analog input (mode 2), 10 bits

    // The rig runs to the pen's cycle count after each slice: never further apart than a slice and one instruction.
    expect(Math.abs(rig.totalCycles - pen.totalCycles)).toBeLessThanOrEqual(rig.sliceCycles + 4);
    expect(rig.simTimeMs).toBeCloseTo(pen.simTimeMs, 1);
  });

  it('presses the e-stop on D2: the pen faults and its motor stops, seen on D12 (motorEnable) and A0 (filtered PWM)', { tags: ['REQ-ESTOP'] }, async () => {
    // runningVirtualPen's steps, with the rig wired and reporting before the needle starts, so A0 shows the rise too.
    session = await homedVirtualPen();
    const { pen, device } = session;
    const rig = new VirtualRig(pen, { firmwarePath: standardFirmataHexPath });
    const port = rig.openPort();
    const firmata = new FirmataListener(port, () => pen.simTimeMs);
    await pen.clock.sleep(2500);  // StandardFirmata's boot: its version blink, then its announcement
    expect(firmata.of(REPORT_VERSION).length).toBeGreaterThan(0);
    port.write(Uint8Array.from([
      START_SYSEX, SAMPLING_INTERVAL, 10, 0, END_SYSEX,  // 10 ms, as rig.json's samplingIntervalMs
      SET_PIN_MODE, 12, mode.input,
      SET_PIN_MODE, 8, mode.input,
      REPORT_DIGITAL | 1, 1,  // port 1: D8–D15
      REPORT_ANALOG | 0, 1,
    ]));
    await pen.clock.sleep(100);
    expect(analogVolts(firmata.of(ANALOG_MESSAGE | 0).at(-1) as Received)).toBeLessThan(0.02);

    await device.depth.moveTo(1.5);
    await armFitted(device);
    const startedAt = pen.simTimeMs;
    const revolutionsAtStart = pen.plant.revolutions;
    await device.needle.start(100);
    await pen.clock.sleep(800);
    expect(device.telemetry).toMatchObject({ state: 'running', fault: 'none' });
    const motorEnableHigh = (message: Received): boolean => ((value14(message) >> 4) & 1) === 1;  // D12 is port 1's bit 4
    const digital = firmata.of(DIGITAL_MESSAGE | 1);
    expect(digital.length).toBeGreaterThan(0);
    expect(motorEnableHigh(digital[digital.length - 1] as Received)).toBe(true);
    const analog = firmata.of(ANALOG_MESSAGE | 0, startedAt);
    expect(analog.length).toBeGreaterThan(60);  // one each 10 ms
    // D8 reads the tach line the plant drives into the pen: its 100 µs pulses, one a revolution, stretched to 1 ms by the
    // rig board (rig.json stretchMs), so Firmata's loop, blind while it reads A0, loses none of them.
    const tachLevels = [0, ...firmata.of(DIGITAL_MESSAGE | 1, startedAt).map((message) => value14(message) & 1)];  // D8: port 1's bit 0
    const tachPulses = tachLevels.filter((level, i) => level === 1 && tachLevels[i - 1] === 0).length;
    const revolutions = Math.floor(pen.plant.revolutions) - Math.floor(revolutionsAtStart);
    console.log(`virtual bench: ${tachPulses} tach pulses reported on D8 in ${(pen.simTimeMs - startedAt).toFixed(0)} ms, ` +
      `${revolutions} revolutions (the pen at ${pen.plant.strokesPerSecond.toFixed(0)} strokes/s)`);
    expect(Math.abs(tachPulses - revolutions)).toBeLessThanOrEqual(1);  // the last pulse's report may still be on its way
    const runningVolts = analogVolts(analog[analog.length - 1] as Received);
    const duty = rig.motorPwmVolts / 5;
    expect(runningVolts).toBeGreaterThan(0.2);
    expect(duty).toBeGreaterThan(0.05);
    // It rose with the RC filter's 100 ms: the first samples were lower than the settled ones.
    expect(analogVolts(analog[0] as Received)).toBeLessThan(runningVolts);

    // D2 as OUTPUT, high: the e-stop loop opened. It wins over the pen's own closed loop.
    const pressedAt = pen.simTimeMs;
    port.write(Uint8Array.from([SET_PIN_MODE, 2, mode.output, DIGITAL_MESSAGE | 0, 1 << 2, 0]));
    await pen.clock.sleep(100);
    expect(pen.pinIsHigh('estop')).toBe(true);
    expect(device.telemetry).toMatchObject({ fault: 'estop' });
    expect(pen.plant.motorDrive()).toBe(0);
    const off = firmata.of(DIGITAL_MESSAGE | 1, pressedAt).find((message) => !motorEnableHigh(message));
    expect(off).toBeDefined();
    const offMs = (off?.at ?? Infinity) - pressedAt;
    console.log(`virtual bench: e-stop pressed by the rig to motorEnable low reported by it: ${offMs.toFixed(2)} ms`);
    expect(offMs).toBeLessThan(50);

    await pen.clock.sleep(900);
    const after = firmata.of(ANALOG_MESSAGE | 0, pressedAt);
    const last = analogVolts(after[after.length - 1] as Received);
    expect(last).toBeLessThan(0.02);  // e^-9 of the running level, and the ADC's 5 mV step
    // Falling: the first sample after the press is still high, then the filter drains.
    expect(analogVolts(after[0] as Received)).toBeGreaterThan(last);

    // Back to input: the rig lets go and the pen's closed e-stop loop reads low again.
    port.write(Uint8Array.from([SET_PIN_MODE, 2, mode.input]));
    await pen.clock.sleep(50);
    expect(pen.pinIsHigh('estop')).toBe(false);
    expect(Math.abs(rig.totalCycles - pen.totalCycles)).toBeLessThanOrEqual(rig.sliceCycles + 4);
  });
});
