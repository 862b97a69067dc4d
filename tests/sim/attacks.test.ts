// A hostile host, through the wire: raw frames with no HAL, every calibration field at, inside and beyond its bounds
// on pens at their tolerance corners (sent on grants, as a host with the keys would; tests/sim/roles.test.ts has the
// host without them), STOP landing mid-frame, after noise and in a flood, partial-frame timing,
// an old-protocol host, and the arming and clearing rules the firmware holds alone.
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { pen as description, protocolDescription, stepsPerMm } from '../../hardware/description.ts';
import { calibrationBounds, depthLimitSteps } from '../../hardware/depth-bounds.ts';
import { encodeFrame } from '../../hal/link/frame.ts';
import { decodeMessage, encodeMessage, type Message } from '../../hal/link/codec.ts';
import {
  ErrorCode, Fault, FRAME_STOP, FRAME_SYNC, FrameKind, PROTOCOL_VERSION, Role, messageSpecs, type HostMessageName, type MessageFields,
} from '../../hardware/generated/protocol.ts';
import { challengeAnswer, keyedRoleOf, testKeys } from '../../hal/auth.ts';
import { dayNumber } from '../../hal/parts.ts';
import { RawClient } from './raw-client.ts';
import { armingDateMs } from './virtual-session.ts';
import { provisionedVirtualPen, testSerial } from './provisioned.ts';

let pen: VirtualPen;
afterEach(async () => {
  await pen.stop();
});

const accuracyMm = description.tolerances.depthAccuracyUm / 1000;
const window = description.depthWindowMm;
const byteMs = 10 / (description.board.uartBaud / 1000);  // 8N1: ten bit times a byte
const armingDay = dayNumber(armingDateMs);

/** A raw client after a valid handshake, with its own sequence numbers and a heartbeat it must send itself. */
class Attacker {
  private seq = 1;
  constructor(readonly raw: RawClient) {}

  static async connect(): Promise<Attacker> {
    const raw = new RawClient(pen);
    await raw.handshake();
    return new Attacker(raw);
  }

  async send<K extends HostMessageName>(name: K, fields: MessageFields[K]): Promise<Message> {
    return this.sendPayload(encodeMessage(name, fields));
  }

  /** Sends a payload with the next sequence number; the reply to it, skipping NAKs for bytes sent before. */
  async sendPayload(payload: Uint8Array): Promise<Message> {
    const seq = this.seq;
    this.seq = (seq + 1) & 0x0f;
    const from = this.raw.frames.length;
    this.raw.sendFrame(FrameKind.data | seq, payload);
    for (let ms = 0; ms < 50; ms++) {
      const reply = this.raw.answers(from).find((frame) => (frame.seqByte & 0xf0) === FrameKind.reply);
      if (reply !== undefined) return decodeMessage(reply.payload);
      await pen.clock.sleep(1);
    }
    throw new Error(`no reply to message ${String(payload[0])} within 50 ms`);
  }

  /** The error code name of a reply (error or part_refused), or 'ok' for an ok (or data) reply. */
  async code<K extends HostMessageName>(name: K, fields: MessageFields[K]): Promise<string> {
    const reply = await this.send(name, fields);
    if (reply.name !== 'error' && reply.name !== 'part_refused') return 'ok';
    return Object.entries(ErrorCode).find(([, value]) => value === reply.fields.code)?.[0] ?? `code ${reply.fields.code}`;
  }

  /** clear_cartridge with the fitted cartridge's ROM id, once the pen has read its chips. */
  async clearCartridge(): Promise<string> {
    for (let ms = 0; ms < 3000; ms += 20) {
      const parts = await this.send('get_parts', { reread: 0 });
      if (parts.name !== 'parts') throw new Error(`get_parts answered ${parts.name}`);
      if (parts.fields.activity === 0) return this.code('clear_cartridge', { cartridgeRom: parts.fields.cartridgeRom });
      await this.wait(20);
    }
    throw new Error('the pen was still reading its parts after 3 s');
  }

  /** arm on the tests' date. */
  async arm(): Promise<string> {
    return this.code('arm', { todayDay: armingDay });
  }

  /** start_needle, repeated while the session's first start burns the parts' marks. */
  async start(strokesPerSecond = 100): Promise<string> {
    for (let ms = 0; ms < 3000; ms += 20) {
      const code = await this.code('start_needle', { strokesPerSecond });
      if (code !== 'parts_busy') return code;
      await this.wait(20);
    }
    throw new Error('the parts\' marks were still burning after 3 s');
  }

  /**
   * A service command as a host holding the pen's keys sends it (a buggy host, not a thief): a challenge for its role,
   * the answer with the test key, then the command; the command's error code name, or 'ok'.
   */
  async granted<K extends HostMessageName>(name: K, fields: MessageFields[K]): Promise<string> {
    const spec = messageSpecs[name];
    const role = spec.role === null ? null : keyedRoleOf(Role[spec.role]);
    if (role === null) throw new Error(`${name} needs no grant`);
    let challenge = await this.send('request_challenge', { role: Role[role], commandId: spec.id });
    for (let tries = 0; challenge.name === 'error' && challenge.fields.code === ErrorCode.eeprom_busy && tries < 100; tries++) {
      await pen.clock.sleep(10);  // an EEPROM write still under way
      challenge = await this.send('request_challenge', { role: Role[role], commandId: spec.id });
    }
    if (challenge.name !== 'challenge') throw new Error(`no challenge for ${name}: ${JSON.stringify(challenge)}`);
    const answer = await this.send('answer_challenge', { mac: challengeAnswer(testKeys[role], challenge.fields.nonce, testSerial, spec.id) });
    expect(answer).toMatchObject({ name: 'ok' });
    return this.code(name, fields);
  }

  /** Simulated time passes with the heartbeat kept alive, as a live host would. */
  async wait(ms: number): Promise<void> {
    for (let left = ms; left > 0; left -= 100) {
      await this.send('heartbeat', {});
      await pen.clock.sleep(Math.min(100, left));
    }
  }

  async moveAndSettle(depthUm: number): Promise<string> {
    const code = await this.code('move_to', { depthUm });
    await this.wait(300);
    return code;
  }

  async telemetry(): Promise<MessageFields['telemetry']> {
    const reply = await this.send('get_status', {});
    if (reply.name !== 'telemetry') throw new Error(`get_status answered ${reply.name}`);
    return reply.fields;
  }
}

/** Homed and idle; provisioned (serial SIM-0001, the test keys) when it is to take service commands. */
async function homedAttacker(seed = 1, provisioned = false): Promise<Attacker> {
  pen = provisioned ? provisionedVirtualPen({ seed }) : new VirtualPen({ seed });
  pen.start();
  const attacker = await Attacker.connect();
  expect(await attacker.code('home', {})).toBe('ok');
  await attacker.wait(400);
  expect((await attacker.telemetry()).state).toBe(3);  // idle
  return attacker;
}

async function runningAttacker(depthUm = 1500): Promise<Attacker> {
  const attacker = await homedAttacker();
  expect(await attacker.moveAndSettle(depthUm)).toBe('ok');
  expect(await attacker.clearCartridge()).toBe('ok');
  expect(await attacker.arm()).toBe('ok');
  expect(await attacker.start()).toBe('ok');
  await attacker.wait(500);
  expect(pen.plant.motorDrive()).toBeGreaterThan(0);
  return attacker;
}

describe('the needle runs only inside the depth window', () => {
  it('refuses arm and start_needle at home (0 mm), with the depth, and the motor never turns', { tags: ['REQ-DEPTH-WINDOW', 'REQ-HOSTILE-HOST'] }, async () => {
    const attacker = await homedAttacker();
    expect(await attacker.clearCartridge()).toBe('ok');
    const arm = await attacker.send('arm', { todayDay: armingDay });
    expect(arm).toMatchObject({ name: 'error', fields: { code: ErrorCode.depth_outside_window, detail: 0 } });
    expect(await attacker.code('start_needle', { strokesPerSecond: 100 })).toBe('not_allowed_in_state');
    await attacker.wait(100);
    expect(pen.plant.motorDrive()).toBe(0);
    expect((await attacker.telemetry()).state).toBe(3);  // still idle
    // Inside the window the same sequence is accepted: the refusal was the depth, nothing else.
    expect(await attacker.moveAndSettle(500)).toBe('ok');
    expect(await attacker.arm()).toBe('ok');
    expect(await attacker.start()).toBe('ok');
    await attacker.wait(300);
    expect(pen.plant.motorDrive()).toBeGreaterThan(0);
    expect(pen.plant.trueDepthMm).toBeGreaterThanOrEqual(window.min - 1 / stepsPerMm);
  });

  it('goes safe with depth_outside_window within milliseconds when the needle is pushed past the deep end while running', { tags: ['REQ-DEPTH-WINDOW'] }, async () => {
    const attacker = await runningAttacker(2000);
    await pen.stop();
    pen.plant.slip(0.3);  // the carriage moves without steps: only the depth sensor sees it
    const cycles = pen.runUntil(() => pen.plant.motorDrive() === 0, 50);
    pen.start();
    expect(cycles, 'the motor was still on 50 ms later').not.toBeNull();
    expect((cycles ?? 0) / (description.board.cpuHz / 1000)).toBeLessThan(5);  // ahead of the 10 ms mismatch debounce
    await attacker.wait(400);
    const status = await attacker.telemetry();
    expect(status.faultCode).toBe(Fault.depth_outside_window);
    expect(pen.plant.motorDrive()).toBe(0);
    expect(pen.plant.carriageMm).toBeLessThanOrEqual(1 / stepsPerMm);
  });

  it('refuses arming while the needle is still on its way into the window', { tags: ['REQ-DEPTH-WINDOW'] }, async () => {
    const attacker = await homedAttacker();
    expect(await attacker.clearCartridge()).toBe('ok');
    expect(await attacker.code('move_to', { depthUm: 2000 })).toBe('ok');
    expect(await attacker.arm()).toBe('depth_outside_window');
    expect(pen.plant.motorDrive()).toBe(0);
  });
});

type CalibrationField = 'stepsPerMmX100' | 'zeroOffsetUm' | 'sensorZeroMv' | 'sensorMvPerMm';
const integerRange: Record<CalibrationField, { min: number; max: number }> = {
  stepsPerMmX100: { min: 0, max: 0xffffffff },
  zeroOffsetUm: { min: -32768, max: 32767 },
  sensorZeroMv: { min: 0, max: 0xffff },
  sensorMvPerMm: { min: 0, max: 0xffff },
};
const nominal = {
  stepsPerMmX100: stepsPerMm * 100, zeroOffsetUm: 0,
  sensorZeroMv: description.sensors.depthSensorZeroMv, sensorMvPerMm: description.sensors.depthSensorMvPerMm,
};

/** At, just inside and just beyond each bound, and the field type's extremes. */
function probeValues(field: CalibrationField): number[] {
  const { min, max } = calibrationBounds[field];
  const type = integerRange[field];
  const values = [type.min, type.min + 1, min - 1, min, min + 1, max - 1, max, max + 1, type.max - 1, type.max];
  return [...new Set(values.filter((v) => v >= type.min && v <= type.max))];
}

async function setCalibrationField(attacker: Attacker, field: CalibrationField, value: number): Promise<string> {
  const fields = { ...nominal, [field]: value };
  return field === 'stepsPerMmX100' || field === 'zeroOffsetUm'
    ? attacker.granted('set_depth_calibration', { stepsPerMmX100: fields.stepsPerMmX100, zeroOffsetUm: fields.zeroOffsetUm })
    : attacker.granted('set_sensor_calibration', { sensorZeroMv: fields.sensorZeroMv, sensorMvPerMm: fields.sensorMvPerMm });
}

// The firmware's bounds hold against a host that has the keys: each write below runs on a grant.
describe('calibration bounds derived from the tolerances', () => {
  it('accepts every field exactly inside its bounds and refuses everything beyond, integer extremes included', { tags: ['REQ-CALIBRATION-BOUNDS'] }, async () => {
    pen = provisionedVirtualPen();
    pen.start();
    const attacker = await Attacker.connect();
    const outcomes: string[] = [];
    for (const field of Object.keys(integerRange) as CalibrationField[]) {
      const { min, max } = calibrationBounds[field];
      for (const value of probeValues(field)) {
        const code = await setCalibrationField(attacker, field, value);
        outcomes.push(`${field}=${value}:${code}`);
        expect(code, `${field} = ${value}`).toBe(value >= min && value <= max ? 'ok' : 'out_of_range');
        if (code === 'ok') await attacker.wait(150);  // both EEPROM copies written before the next one
      }
      expect(await setCalibrationField(attacker, field, nominal[field])).toBe('ok');
      await attacker.wait(150);
    }
    expect(outcomes.filter((o) => o.endsWith(':ok')).length).toBeGreaterThanOrEqual(12);
    expect(outcomes.filter((o) => o.endsWith(':out_of_range')).length).toBeGreaterThanOrEqual(24);
    // Nothing refused was kept.
    const kept = await attacker.send('get_calibration', {});
    expect(kept).toMatchObject({ name: 'calibration', fields: nominal });
  });

  it('refuses the calibration that put the needle at 2.42 mm, and no single frame can set both channels', { tags: ['REQ-CALIBRATION-BOUNDS'] }, async () => {
    pen = provisionedVirtualPen();
    pen.start();
    const attacker = await Attacker.connect();
    expect(await attacker.granted('set_depth_calibration', { stepsPerMmX100: 176000, zeroOffsetUm: -200 })).toBe('out_of_range');
    expect(await attacker.granted('set_sensor_calibration', { sensorZeroMv: 450, sensorMvPerMm: 1760 })).toBe('out_of_range');
    expect(await attacker.granted('set_depth_calibration', { stepsPerMmX100: 160000, zeroOffsetUm: -32768 })).toBe('out_of_range');
    // The old combined frame (id 13 with all four fields) is now the wrong length for set_depth_calibration.
    const combined = Uint8Array.from([...encodeMessage('set_depth_calibration', { stepsPerMmX100: 176000, zeroOffsetUm: -200 }), 0xc2, 0x01, 0xe0, 0x06]);
    const reply = await attacker.sendPayload(combined);
    expect(reply).toMatchObject({ name: 'error', fields: { code: ErrorCode.bad_length } });
  });

  const corners = [
    { offsetMm: -description.tolerances.homeOffsetUm / 1000, scaleError: -description.tolerances.depthScalePpm / 1e6 },
    { offsetMm: -description.tolerances.homeOffsetUm / 1000, scaleError: description.tolerances.depthScalePpm / 1e6 },
    { offsetMm: description.tolerances.homeOffsetUm / 1000, scaleError: -description.tolerances.depthScalePpm / 1e6 },
    { offsetMm: description.tolerances.homeOffsetUm / 1000, scaleError: description.tolerances.depthScalePpm / 1e6 },
  ];
  const { stepsPerMmX100: k, zeroOffsetUm: z } = calibrationBounds;
  const extremeCalibrations = [
    { stepsPerMmX100: k.min, zeroOffsetUm: z.min }, { stepsPerMmX100: k.min, zeroOffsetUm: z.max },
    { stepsPerMmX100: k.max, zeroOffsetUm: z.min }, { stepsPerMmX100: k.max, zeroOffsetUm: z.max },
  ];
  for (const corner of corners) {
    it(`keeps the true needle within ${window.min}–${window.max} mm ± the promised ${accuracyMm} mm on a pen at offset ${corner.offsetMm} mm, scale ${corner.scaleError}`, { tags: ['REQ-DEPTH-ACCURACY'] }, async () => {
      const attacker = await homedAttacker(1, true);
      pen.plant.offsetMm = corner.offsetMm;
      pen.plant.scaleError = corner.scaleError;
      expect(await attacker.clearCartridge()).toBe('ok');
      let deepestTrueMm = 0;
      let shallowestRunningMm = Infinity;
      for (const calibration of extremeCalibrations) {
        expect(await attacker.granted('set_depth_calibration', calibration)).toBe('ok');
        await attacker.wait(150);
        pen.plant.resetDeepest();
        expect(await attacker.moveAndSettle(2000)).toBe('ok');
        deepestTrueMm = Math.max(deepestTrueMm, pen.plant.deepestCarriageMm * (1 + corner.scaleError) + corner.offsetMm);
        expect(await attacker.moveAndSettle(500)).toBe('ok');
        expect(await attacker.arm()).toBe('ok');
        expect(await attacker.start()).toBe('ok');
        await attacker.wait(200);
        expect(pen.plant.motorDrive()).toBeGreaterThan(0);
        shallowestRunningMm = Math.min(shallowestRunningMm, pen.plant.trueDepthMm);
        expect(await attacker.code('disarm', {})).toBe('ok');
        expect((await attacker.telemetry()).faultCode).toBe(0);
      }
      expect(deepestTrueMm).toBeLessThanOrEqual(window.max + accuracyMm);
      expect(shallowestRunningMm).toBeGreaterThanOrEqual(window.min - accuracyMm);
      expect(pen.plant.deepestCarriageMm).toBeLessThanOrEqual(depthLimitSteps / stepsPerMm);
    });
  }
});

describe('STOP wherever it lands in the byte stream', () => {
  /** Writes bytes, then runs the MCU alone until the motor is off; returns ms from the write to motor off. */
  async function motorOffAfter(attacker: Attacker, bytes: Uint8Array): Promise<number> {
    await pen.stop();
    attacker.raw.writeBytes(bytes);
    const cycles = pen.runUntil(() => pen.plant.motorDrive() === 0, 200);
    expect(cycles, 'the motor was still on 200 ms later').not.toBeNull();
    pen.start();
    return (cycles ?? 0) / (description.board.cpuHz / 1000);
  }

  async function expectStoppedAndHome(attacker: Attacker): Promise<void> {
    await attacker.wait(400);
    const status = await attacker.telemetry();
    expect(status.state).toBe(3);  // idle: stopped, disarmed, not a fault
    expect(status.flags & 8).toBe(0);  // needle_on
    expect(pen.plant.motorDrive()).toBe(0);
    expect(pen.plant.carriageMm).toBeLessThanOrEqual(1 / stepsPerMm);
  }

  const longestMainLoopPassMs = 2;
  const halfFrame = encodeFrame(FrameKind.data | 9, encodeMessage('move_to', { depthUm: 1800 })).subarray(0, 4);
  const stopFrame = encodeFrame(FrameKind.data | 10, encodeMessage('stop', {}));

  it('the STOP byte inside a partial frame stops the pen within a byte time', { tags: ['REQ-STOP'] }, async () => {
    const attacker = await runningAttacker();
    const ms = await motorOffAfter(attacker, Uint8Array.of(...halfFrame, FRAME_STOP));
    expect(ms).toBeLessThan((halfFrame.length + 1) * byteMs + 0.05);
    await expectStoppedAndHome(attacker);
  });

  it('a framed STOP sent 1 ms after half of another frame stops the pen without waiting for a retransmit', { tags: ['REQ-STOP'] }, async () => {
    const attacker = await runningAttacker();
    await pen.stop();
    attacker.raw.writeBytes(halfFrame);
    pen.runFor(1 + halfFrame.length * byteMs);
    attacker.raw.writeBytes(stopFrame);
    const cycles = pen.runUntil(() => pen.plant.motorDrive() === 0, 100);
    pen.start();
    expect(cycles).not.toBeNull();
    expect((cycles ?? 0) / (description.board.cpuHz / 1000)).toBeLessThan(stopFrame.length * byteMs + longestMainLoopPassMs);
    await expectStoppedAndHome(attacker);
  });

  it('a framed STOP right behind garbage bytes, with no sync byte between, stops the pen', { tags: ['REQ-STOP'] }, async () => {
    const attacker = await runningAttacker();
    const garbage = Uint8Array.of(0x05, 0x10, 0x04, 0xff, 0x33);
    const ms = await motorOffAfter(attacker, Uint8Array.of(...garbage, ...stopFrame));
    // A framed STOP waits for the main loop to read it: at most one pass, the longest (with a telemetry record) about
    // 1.8 ms (`npm run bench`: main_loop_pass_max_cycles). The STOP byte is the fast path, acted on in the interrupt.
    expect(ms).toBeLessThan((garbage.length + stopFrame.length) * byteMs + longestMainLoopPassMs);
    await expectStoppedAndHome(attacker);
  });

  it('the STOP byte at the end of a flood that overruns the receive buffer stops the pen as it lands', { tags: ['REQ-STOP'] }, async () => {
    const attacker = await runningAttacker();
    const flood = Uint8Array.from({ length: 600 }, (_, i) => (i * 89 + 7) & 0xff).map((b) => (b === FRAME_STOP ? 0x55 : b));
    const ms = await motorOffAfter(attacker, Uint8Array.of(...flood, FRAME_STOP));
    expect(ms).toBeGreaterThan(flood.length * byteMs);  // the line is a queue: STOP lands after the flood
    expect(ms).toBeLessThan((flood.length + 1) * byteMs + 0.05);
    await expectStoppedAndHome(attacker);
  });
});

describe('the link, from outside', () => {
  it('drops a partial frame 5 ms after its last byte, not later, and says so with a NAK', { tags: ['REQ-LINK-INTEGRITY'] }, async () => {
    pen = new VirtualPen();
    pen.start();
    const attacker = await Attacker.connect();
    await pen.stop();
    const from = attacker.raw.frames.length;
    const partial = encodeFrame(FrameKind.data | 3, encodeMessage('move_to', { depthUm: 1000 })).subarray(0, 5);
    attacker.raw.writeBytes(partial);
    const lastByteLandsMs = partial.length * byteMs;
    const nakCycles = pen.runUntil(() => attacker.raw.answers(from).length > 0, 20);
    pen.start();
    expect(nakCycles).not.toBeNull();
    const nak = attacker.raw.answers(from)[0];
    expect((nak?.seqByte ?? 0) & 0xf0).toBe(FrameKind.nak);
    // The NAK is received whole: its own bytes on the line come after the drop.
    const nakBytes = encodeFrame(FrameKind.nak, new Uint8Array(0)).length;
    const dropMs = (nakCycles ?? 0) / (description.board.cpuHz / 1000) - lastByteLandsMs - nakBytes * byteMs;
    const idleMs = protocolDescription.framing.frameIdleTimeoutMs;
    expect(dropMs).toBeGreaterThanOrEqual(idleMs);
    expect(dropMs).toBeLessThan(idleMs + 0.3);
  });

  it('refuses a host speaking protocol version 1, and a version 1 frame is never executed', { tags: ['REQ-IDENTITY', 'REQ-HOSTILE-HOST'] }, async () => {
    pen = new VirtualPen();
    pen.start();
    const raw = new RawClient(pen);
    // Version 1 framing: len | seq | payload | crc | 7E, no opening sync, no escaping, len counting the sync.
    const v1Home = Uint8Array.from([6, FrameKind.data | 0, 0x05, 0x00, 0x00, FRAME_SYNC]);
    raw.writeBytes(v1Home);
    await pen.clock.sleep(50);
    expect(raw.answers().every((frame) => (frame.seqByte & 0xf0) === FrameKind.nak)).toBe(true);
    raw.sendFrame(FrameKind.sync, new Uint8Array(0));
    await pen.clock.sleep(20);
    const identify = await raw.request(0, 'identify', { hostProtocolVersion: PROTOCOL_VERSION - 1 });
    expect(identify.message).toMatchObject({ name: 'identify_reply', fields: { protocolVersion: PROTOCOL_VERSION } });
    const home = await raw.request(1, 'home', {});
    expect(home.message).toMatchObject({ name: 'error', fields: { code: ErrorCode.protocol_mismatch, detail: PROTOCOL_VERSION } });
    await pen.clock.sleep(100);
    expect(pen.plant.stepsReceived).toBe(0);
  });
});

describe('fault rules the firmware holds alone', () => {
  it('does not clear a supply fault while the supply is still out, even with another interlock tripped', { tags: ['REQ-SUPPLY', 'REQ-FAULT-LATCH'] }, async () => {
    const attacker = await runningAttacker();
    pen.plant.supplyVolts = 9;
    await attacker.wait(50);
    expect((await attacker.telemetry()).faultCode).toBe(6);  // supply_out_of_range
    pen.setInput('estop', true);
    await attacker.wait(20);
    const refused = await attacker.send('clear_fault', {});
    expect(refused).toMatchObject({ name: 'error', fields: { code: ErrorCode.fault_cause_present, detail: 6 } });
    pen.setInput('estop', false);
    expect(await attacker.code('clear_fault', {})).toBe('fault_cause_present');
    pen.plant.supplyVolts = 12;
    await attacker.wait(50);
    expect(await attacker.code('clear_fault', {})).toBe('ok');
  });

  it('withdraws the cartridge clearance after a critical fault, so the cartridge is inspected before arming again', { tags: ['REQ-CARTRIDGE-INTERLOCK', 'REQ-FAULT-LATCH'] }, async () => {
    const attacker = await runningAttacker();
    pen.setInput('estop', true);
    await attacker.wait(300);
    pen.setInput('estop', false);
    await attacker.wait(20);
    expect(await attacker.code('clear_fault', {})).toBe('ok');
    expect(await attacker.code('home', {})).toBe('ok');
    await attacker.wait(400);
    expect(await attacker.moveAndSettle(1000)).toBe('ok');
    expect((await attacker.telemetry()).flags & 2).toBe(0);  // cartridge_cleared
    expect(await attacker.arm()).toBe('cartridge_not_cleared');
    expect(await attacker.clearCartridge()).toBe('ok');
    expect(await attacker.arm()).toBe('ok');
  });
});
