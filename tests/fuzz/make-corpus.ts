// Writes the link fuzzer's seed corpus (tests/fuzz/corpus/): small scripts in the harness's chunk language (see
// tests/fuzz/link_fuzz.c), messages built with the host's own codec and frames with its own encoder.
// Run: npx tsx tests/fuzz/make-corpus.ts
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { encodeMessage } from '../../hal/link/codec.ts';
import { encodeFrame } from '../../hal/link/frame.ts';
import { pen } from '../../hardware/description.ts';
import { FRAME_STOP, FrameKind, PROTOCOL_VERSION } from '../../hardware/generated/protocol.ts';
import type { MessageFields, MessageName } from '../../hardware/generated/protocol.ts';
import { romId } from '../../hardware/sim/id-chip.ts';

const corpusDir = fileURLToPath(new URL('corpus/', import.meta.url));

// The harness's chunks: the first byte's low 3 bits pick the operation, its high 5 bits carry a parameter.
const op = (code: number, parameter = 0): number => code | (parameter << 3);
const stepMs = [1, 2, 3, 5, 8, 10, 16, 25, 50, 99, 100, 128, 200, 250, 251, 300];

/** A command framed by the harness with the sequence number the pen expects. */
function command<K extends MessageName>(name: K, fields: MessageFields[K]): number[] {
  const payload = encodeMessage(name, fields);
  return [op(1), payload.length, ...payload];
}
/** A frame with a chosen seq byte (kind | seq), framed by the harness. */
function frame(seqByte: number, payload: readonly number[]): number[] {
  return [op(2), seqByte, payload.length, ...payload];
}
/** Bytes straight onto the wire, in chunks of up to 32. */
function raw(bytes: readonly number[]): number[] {
  const out: number[] = [];
  for (let at = 0; at < bytes.length; at += 32) {
    const chunk = bytes.slice(at, at + 32);
    out.push(op(0, chunk.length - 1), ...chunk);
  }
  return out;
}
function time(ms: number, heartbeats: boolean): number[] {
  const index = stepMs.indexOf(ms);
  if (index < 0) throw new RangeError(`the harness steps time by one of ${stepMs.join(', ')} ms`);
  return [op(4, index | (heartbeats ? 16 : 0))];
}
const input = (which: 'estop on' | 'estop off' | 'cartridge out' | 'cartridge in' | 'home switch on' | 'home switch off'): number[] =>
  [op(5, ['estop on', 'estop off', 'cartridge out', 'cartridge in', 'home switch on', 'home switch off'].indexOf(which))];
const moveEnds = [op(6, 0)];
const homingDone = [op(6, 1)];
const replay = [op(3)];
const sensor = (which: number, value: number): number[] => [op(7, which), value];
/** The harness answers the pen's last challenge rightly, with the key the pen holds. */
const answerChallenge = sensor(11, 0);
/** An ID chip fault toggled (0 presence, 1 shorted bus, 2 copy programs nothing, 3 copy refused) on a bus (0 cartridge). */
const chipFault = (bus: number, which: number): number[] => sensor(12, bus | (which << 1));

// The harness's fake parts (tests/firmware/fake_chips.c, fake_chips_fit_parts): serial bytes 0-3 are 0x1000 + bus, bytes
// 4-5 are 0x10 + bus; read from 0.1 s after start-up, a chip transaction per main-loop pass: both read by 0.2 s.
const fakeRom = (bus: number): Uint8Array =>
  romId(BigInt(0x1000 + bus) | (BigInt(0x10 + bus) << 32n) | (BigInt(0x10 + bus) << 40n));
const cartridgeRom = fakeRom(0);
const noseconeRom = fakeRom(1);
const today = pen.idChips.earliestHostDay + 300;  // before the fake cartridge's expiry (day 10000)
const partsRead = [...time(200, false)];

const homed = [...command('home', {}), ...homingDone, ...time(1, false)];
const atDepth = [...homed, ...command('move_to', { depthUm: 1000 }), ...moveEnds, ...time(1, false)];
const cleared = [...partsRead, ...atDepth, ...command('clear_cartridge', { cartridgeRom }), ...command('heartbeat', {})];
const armed = [...cleared, ...command('arm', { todayDay: today }), ...time(10, true)];
/** start_needle every 50 ms while the session's first start burns the marks (parts_busy): running by the fourth. */
const startAfterMarks = (strokesPerSecond: number): number[] =>
  Array.from({ length: 4 }, () => [...command('start_needle', { strokesPerSecond }), ...time(50, true)]).flat();
const running = [...armed, ...startAfterMarks(100), ...time(200, true)];

// The pen starts blank: provisioned here with keys the harness reads back from its EEPROM, then written out.
const key = (fill: number): Uint8Array => Uint8Array.from({ length: 32 }, (_, i) => (fill + 37 * i) & 0xff);
const provisioned = [
  ...time(50, false),  // the boot count's write first: provision waits for a free EEPROM
  ...command('provision_key', { role: 1, key: key(1) }), ...command('provision_key', { role: 2, key: key(2) }),
  ...command('provision_key', { role: 3, key: key(3) }), ...command('provision', { serial: 'SIM-FUZZ-0001' }), ...time(300, false),
];
/** A grant for a service command, then the command. */
function granted<K extends MessageName>(role: number, name: K, fields: MessageFields[K], id: number): number[] {
  return [...command('request_challenge', { role, commandId: id }), ...answerChallenge, ...command(name, fields)];
}

// The handshake leaves the pen expecting seq 1, `homed` seq 2: a raw frame with that seq executes.
const escapedMove = encodeFrame(FrameKind.data | 2, encodeMessage('move_to', { depthUm: 0x077d }));  // 0x7D in the payload
let noise = 0x2545f491;
const garbage = Array.from({ length: 96 }, () => {
  noise ^= noise << 13;
  noise ^= noise >>> 17;
  noise ^= noise << 5;
  return noise & 0xff;
});

const corpus: Record<string, number[]> = {
  'move': atDepth,
  'move-outside-window': [...homed, ...command('move_to', { depthUm: 2001 }), ...command('move_to', { depthUm: 499 })],
  'arm': armed,
  'start': [...running, ...command('move_to', { depthUm: 2000 }), ...moveEnds, ...command('stop_needle', {}), ...command('disarm', {})],
  'heartbeat-lost': [...armed, ...startAfterMarks(120), ...time(251, false), ...command('clear_fault', {})],
  'estop-and-clear': [
    ...running, ...input('estop on'), ...time(1, true), ...command('clear_fault', {}), ...input('estop off'),
    ...command('clear_fault', {}), ...command('home', {}), ...homingDone, ...time(5, true),
  ],
  'veto': [...armed, ...input('cartridge out'), ...command('start_needle', { strokesPerSecond: 100 }), ...time(2, true)],
  'stuck-switch-stop': [...armed, ...input('home switch on'), ...time(1, true), ...raw([FRAME_STOP]), ...moveEnds, ...time(5, true)],
  'calibration': [
    ...command('set_depth_calibration', { stepsPerMmX100: 161209, zeroOffsetUm: -30 }), ...time(50, false),
    ...command('set_sensor_calibration', { sensorZeroMv: 540, sensorMvPerMm: 1584 }), ...time(50, false),
    ...command('get_calibration', {}), ...atDepth,
  ],
  'sensors': [...running, ...sensor(0, 130), ...time(3, true), ...sensor(1, 200), ...sensor(2, 40), ...time(16, true)],
  'replay': [...command('home', {}), ...replay, ...replay, ...frame(FrameKind.data | 0, [...encodeMessage('get_status', {})])],
  'sync': [...frame(FrameKind.sync, []), ...command('get_status', {}), ...frame(FrameKind.nak | 3, [1])],
  'stop-bytes': [...running, ...raw([FRAME_STOP]), ...time(1, true), ...raw([0x7e, 0x05, FRAME_STOP, 0x11, 0x03, 0x7e])],
  'escaped': [...homed, ...raw([...escapedMove]), ...raw([0x7e, 0x7d, 0x5e, 0x7d, 0x5d, 0x7d, 0x38, 0x7e])],
  'garbage': raw(garbage),
  'provision-calibrate': [
    ...provisioned, ...granted(2, 'set_depth_calibration', { stepsPerMmX100: 161209, zeroOffsetUm: -30 }, 13), ...time(100, false),
    ...granted(3, 'set_sensor_calibration', { sensorZeroMv: 540, sensorMvPerMm: 1584 }, 15), ...time(100, false),
    ...command('get_calibration', {}), ...command('get_auth_status', {}), ...atDepth,
  ],
  'auth-refusals': [
    ...provisioned, ...command('set_depth_calibration', { stepsPerMmX100: 161209, zeroOffsetUm: -30 }),
    ...command('request_challenge', { role: 2, commandId: 13 }), ...command('heartbeat', {}), ...answerChallenge,
    ...command('request_challenge', { role: 2, commandId: 13 }), ...command('answer_challenge', { mac: new Uint8Array(32) }),
    ...command('request_challenge', { role: 2, commandId: 13 }), ...time(100, false), ...command('get_auth_status', {}),
  ],
  'reprovision': [
    ...provisioned, ...command('provision_key', { role: 1, key: key(4) }), ...command('provision_key', { role: 2, key: key(5) }),
    ...command('provision_key', { role: 3, key: key(6) }), ...granted(3, 'provision', { serial: 'SIM-FUZZ-0002' }, 19),
    ...time(300, false), ...command('identify', { hostProtocolVersion: PROTOCOL_VERSION }), ...granted(2, 'set_depth_calibration', { stepsPerMmX100: 160000, zeroOffsetUm: 0 }, 13),
  ],
  'arm-days': [
    ...cleared, ...command('arm', { todayDay: 0 }), ...command('arm', { todayDay: pen.idChips.earliestHostDay - 1 }),
    ...command('arm', { todayDay: 10001 }), ...command('arm', { todayDay: 0xffff }), ...command('arm', { todayDay: 10000 }),
  ],
  'clear-wrong-cartridge': [
    ...atDepth, ...command('clear_cartridge', { cartridgeRom }), ...partsRead,
    ...command('clear_cartridge', { cartridgeRom: noseconeRom }), ...command('get_parts', { reread: 3 }), ...time(100, false),
    ...command('get_parts', { reread: 0 }),
  ],
  'cartridge-used-after-refit': [
    ...running, ...command('stop_needle', {}), ...command('disarm', {}), ...input('cartridge out'), ...time(5, true),
    ...input('cartridge in'), ...partsRead, ...command('clear_cartridge', { cartridgeRom }), ...command('heartbeat', {}),
    ...command('arm', { todayDay: today }),
  ],
  'rearm-same-fitting': [
    ...running, ...command('disarm', {}), ...command('heartbeat', {}), ...command('arm', { todayDay: today }),
    ...command('start_needle', { strokesPerSecond: 100 }), ...time(50, true),
  ],
  // Fails, reported once (mark_failed), burnt again on the next start: fault cleared, running after a few more starts.
  'mark-copy-fails': [
    ...armed, ...chipFault(0, 2), ...startAfterMarks(100), ...chipFault(0, 2), ...startAfterMarks(100), ...startAfterMarks(100),
  ],
  'mark-copy-refused': [...armed, ...chipFault(1, 3), ...startAfterMarks(100), ...chipFault(1, 3), ...startAfterMarks(100)],
  'chip-gone': [...chipFault(0, 0), ...chipFault(1, 1), ...armed, ...chipFault(0, 0), ...command('get_parts', { reread: 3 })],
  'record-sterilization': [
    ...provisioned, ...partsRead, ...granted(1, 'record_sterilization', { noseconeRom }, 22), ...time(100, false),
    ...command('get_parts', { reread: 0 }), ...atDepth, ...command('clear_cartridge', { cartridgeRom }),
    ...command('heartbeat', {}), ...command('arm', { todayDay: today }), ...startAfterMarks(100),
  ],
  // A sterilization recorded between two starts of one fitting would leave the second start's use unmarked: refused.
  'sterilize-mid-session': [
    ...provisioned, ...running, ...command('stop_needle', {}), ...command('disarm', {}),
    ...granted(1, 'record_sterilization', { noseconeRom }, 22), ...time(100, true), ...command('heartbeat', {}),
    ...command('arm', { todayDay: today }), ...startAfterMarks(100),
  ],
  'grant-then-move': [
    ...provisioned, ...homed, ...command('request_challenge', { role: 2, commandId: 13 }), ...answerChallenge,
    ...command('move_to', { depthUm: 1000 }), ...command('set_depth_calibration', { stepsPerMmX100: 161209, zeroOffsetUm: -30 }),
    ...moveEnds, ...time(5, false),
  ],
};

rmSync(corpusDir, { recursive: true, force: true });
mkdirSync(corpusDir, { recursive: true });
for (const [name, bytes] of Object.entries(corpus)) writeFileSync(`${corpusDir}${name}`, Uint8Array.from(bytes));
process.stdout.write(`wrote ${Object.keys(corpus).length} inputs to ${corpusDir}\n`);
