// The link through the wire: the real firmware in the virtual pen, driven by the HAL and by a raw client.
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { pen as description } from '../../hardware/description.ts';
import { PenDevice, ProtocolMismatchError, type Telemetry } from '../../hal/device.ts';
import { LinkLostError } from '../../hal/link/reliable-link.ts';
import { decodeMessage } from '../../hal/link/codec.ts';
import { ErrorCode, FrameKind, MessageFields, PROTOCOL_VERSION } from '../../hardware/generated/protocol.ts';
import { RawClient } from './raw-client.ts';

let pen: VirtualPen;
const devices: PenDevice[] = [];

function startPen(seed = 1): VirtualPen {
  pen = new VirtualPen({ seed });
  pen.start();
  return pen;
}

async function connect(): Promise<PenDevice> {
  const device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
  devices.push(device);
  return device;
}

afterEach(async () => {
  for (const device of devices.splice(0)) await device.close();
  await pen.stop();
});

function expectError(message: ReturnType<typeof decodeMessage>, code: number, detail?: number): void {
  expect(message.name).toBe('error');
  const fields = message.fields as MessageFields['error'];
  expect(fields.code).toBe(code);
  if (detail !== undefined) expect(fields.detail).toBe(detail);
}

describe('identity and telemetry', () => {
  it('reads the identity the firmware was built with, after a power-on reset', { tags: ['REQ-IDENTITY'] }, async () => {
    startPen();
    const device = await connect();
    const [major, minor, patch] = description.board.firmwareVersion;
    expect(device.identity).toMatchObject({
      boardName: description.board.name,
      firmwareVersion: `${major}.${minor}.${patch}`,
      protocolVersion: PROTOCOL_VERSION,
      resetCause: 'power_on',
    });
    expect(device.identity.buildId).toMatch(/^[0-9a-f]{8}$/);
  });

  it('sends telemetry every telemetryPeriodMs of simulated time', async () => {
    startPen();
    const device = await connect();
    const records: Telemetry[] = [];
    device.onTelemetry((t) => records.push(t));
    await pen.clock.sleep(1000);
    const period = description.timing.telemetryPeriodMs;
    expect(records.length).toBeGreaterThanOrEqual(1000 / period - 1);
    expect(records.length).toBeLessThanOrEqual(1000 / period + 1);
    const gaps = records.slice(1).map((r, i) => r.uptimeMs - (records[i]?.uptimeMs ?? 0));
    for (const gap of gaps) expect(gap).toBe(period);
    expect(records.at(-1)).toMatchObject({ state: 'homing_required', fault: 'none' });
  });

  it('blinks the status LED slowly while healthy', async () => {
    startPen();
    const levels: boolean[] = [];
    for (let i = 0; i < 20; i++) {
      await pen.clock.sleep(100);
      levels.push(pen.isActive('statusLed'));
    }
    const changes = levels.slice(1).filter((level, i) => level !== levels[i]).length;
    expect(changes).toBeGreaterThanOrEqual(3);
    expect(changes).toBeLessThanOrEqual(5);
  });
});

describe('bad input gets a clear answer and breaks nothing', () => {
  it('survives a flood of random bytes, counts them, and then serves a clean session', { tags: ['REQ-LINK-INTEGRITY', 'REQ-HOSTILE-HOST'] }, async () => {
    startPen(7);
    const raw = new RawClient(pen);
    let state = 12345;
    const noise = Uint8Array.from({ length: 4000 }, () => {
      state = (state * 1103515245 + 12345) & 0x7fffffff;
      return state >> 16;
    });
    raw.writeBytes(noise);
    await pen.clock.sleep(250);  // 4000 bytes at 250 kbaud take 160 ms
    await raw.handshake();
    const { message } = await raw.request(1, 'get_status', {});
    expect(message.name).toBe('telemetry');
    const telemetry = message.fields as MessageFields['telemetry'];
    expect(telemetry.rxFramesBad).toBeGreaterThan(0);
    expect(telemetry.rxBytesDropped).toBeGreaterThan(0);
    const reply = await raw.request(2, 'identify', { hostProtocolVersion: PROTOCOL_VERSION });
    // Still the power-on boot: the flood caused no watchdog reset.
    expect((reply.message.fields as MessageFields['identify_reply']).resetCause).toBe(1);
  });

  it('naks a frame with a bad CRC, naming the sequence it expects, then carries on', { tags: ['REQ-LINK-INTEGRITY'] }, async () => {
    startPen();
    const raw = new RawClient(pen);
    await raw.handshake();
    const from = raw.frames.length;
    const good = Uint8Array.from([6, FrameKind.data | 1, 0x03, 0, 0, 0x7e]);
    raw.writeBytes(good);  // CRC bytes left at zero
    const nak = await raw.nextAnswer(from);
    expect(nak.seqByte).toBe(FrameKind.nak | 1);
    const { frame, message } = await raw.request(1, 'get_status', {});
    expect(frame.seqByte).toBe(FrameKind.reply | 2);
    expect(message.name).toBe('telemetry');
  });

  it('resynchronises after an oversize length', { tags: ['REQ-LINK-INTEGRITY'] }, async () => {
    startPen();
    const raw = new RawClient(pen);
    await raw.handshake();
    const from = raw.frames.length;
    raw.writeBytes(Uint8Array.of(0xff, 0x10, 0x00, 0x7e));  // length 255 > 64
    expect((await raw.nextAnswer(from)).seqByte).toBe(FrameKind.nak | 1);
    expect((await raw.request(1, 'heartbeat', {})).message.name).toBe('ok');
    expect(raw.parser.stats.framesBad).toBe(0);
  });

  it('drops a frame cut short once the line goes idle, so the next frame is not swallowed', { tags: ['REQ-LINK-INTEGRITY'] }, async () => {
    startPen();
    const raw = new RawClient(pen);
    await raw.handshake();
    const from = raw.frames.length;
    raw.writeBytes(Uint8Array.of(0x08, 0x11, 0x02));  // 3 of 8 bytes, then silence
    expect((await raw.nextAnswer(from, 20)).seqByte).toBe(FrameKind.nak | 1);
    expect((await raw.request(1, 'heartbeat', {})).message.name).toBe('ok');
  });

  it('naks a frame cut short when the next frame follows at once; the host resends it', { tags: ['REQ-LINK-INTEGRITY'] }, async () => {
    startPen();
    const raw = new RawClient(pen);
    await raw.handshake();
    const from = raw.frames.length;
    raw.writeBytes(Uint8Array.of(0x08, 0x11, 0x02));
    raw.send(1, 'heartbeat', {});  // its first bytes complete the cut frame, which fails its check
    expect((await raw.nextAnswer(from)).seqByte).toBe(FrameKind.nak | 1);
    expect((await raw.request(1, 'heartbeat', {})).message.name).toBe('ok');
  });

  it('refuses unknown ids, pen-only ids and wrong lengths with an error code and detail', { tags: ['REQ-HOSTILE-HOST'] }, async () => {
    startPen();
    const raw = new RawClient(pen);
    await raw.handshake();
    raw.sendFrame(FrameKind.data | 1, Uint8Array.of(0x42));
    expectError(decodeMessage((await raw.nextAnswer(raw.frames.length - 0)).payload), ErrorCode.unknown_message, 0x42);
    const from = raw.frames.length;
    raw.sendFrame(FrameKind.data | 2, Uint8Array.of(0x81));
    expectError(decodeMessage((await raw.nextAnswer(from)).payload), ErrorCode.not_host_message);
    const from2 = raw.frames.length;
    raw.sendFrame(FrameKind.data | 3, Uint8Array.of(0x01, 0x01, 0x00, 0x00));
    expectError(decodeMessage((await raw.nextAnswer(from2)).payload), ErrorCode.bad_length, 3);
  });

  it('refuses every command but identify and stop until the host identifies with its version', { tags: ['REQ-HOSTILE-HOST', 'REQ-IDENTITY'] }, async () => {
    startPen();
    const raw = new RawClient(pen);
    await raw.sync();
    expectError((await raw.request(0, 'get_status', {})).message, ErrorCode.protocol_mismatch, PROTOCOL_VERSION);
    const identity = await raw.request(1, 'identify', { hostProtocolVersion: PROTOCOL_VERSION + 1 });
    expect(identity.message.name).toBe('identify_reply');
    expectError((await raw.request(2, 'heartbeat', {})).message, ErrorCode.protocol_mismatch);
    expect((await raw.request(3, 'stop', {})).message.name).toBe('ok');
    await raw.request(4, 'identify', { hostProtocolVersion: PROTOCOL_VERSION });
    expect((await raw.request(5, 'heartbeat', {})).message.name).toBe('ok');
  });

  it('answers a repeated sequence number with the stored reply instead of executing twice', { tags: ['REQ-LINK-INTEGRITY'] }, async () => {
    startPen();
    const raw = new RawClient(pen);
    await raw.handshake();
    const first = await raw.request(1, 'get_status', {});
    await pen.clock.sleep(30);
    const again = await raw.request(1, 'get_status', {});
    expect(again.frame).toEqual(first.frame);
    const fresh = await raw.request(2, 'get_status', {});
    const uptime = (m: typeof fresh.message): number => (m.fields as MessageFields['telemetry']).uptimeMs;
    expect(uptime(fresh.message)).toBeGreaterThanOrEqual(uptime(first.message) + 30);
  });

  it('naks a sequence gap with the sequence it expects', { tags: ['REQ-LINK-INTEGRITY'] }, async () => {
    startPen();
    const raw = new RawClient(pen);
    await raw.handshake();
    const from = raw.frames.length;
    raw.send(5, 'heartbeat', {});
    expect((await raw.nextAnswer(from)).seqByte).toBe(FrameKind.nak | 1);
  });

  it('keeps up with a burst of back-to-back commands without losing its place', { tags: ['REQ-LINK-INTEGRITY'] }, async () => {
    startPen();
    const raw = new RawClient(pen);
    await raw.handshake();
    const from = raw.frames.length;
    for (let i = 0; i < 4; i++) raw.send((1 + i) & 0x0f, 'get_status', {});
    await pen.clock.sleep(20);
    const answers = raw.answers(from).map((f) => f.seqByte);
    expect(answers).toEqual([2, 3, 4, 5].map((n) => FrameKind.reply | n));
  });
});

describe('reliable link over a noisy line', () => {
  it('completes every request with bytes corrupted and lost in both directions', { tags: ['REQ-LINK-INTEGRITY'] }, async () => {
    startPen(42);
    const device = await connect();
    pen.setLinkFaults({ corruptProbability: 0.003, dropProbability: 0.003 });
    const replies: Telemetry[] = [];
    for (let i = 0; i < 150; i++) replies.push(await device.status());
    expect(replies).toHaveLength(150);
    expect(replies.every((r) => r.state === 'homing_required')).toBe(true);
    expect(pen.linkStats.bytesCorrupted + pen.linkStats.bytesDropped).toBeGreaterThan(0);
    expect(device.linkStats.retransmits).toBeGreaterThan(0);
  });
});

describe('version handshake', () => {
  it('refuses a pen of another protocol version, naming both versions', { tags: ['REQ-IDENTITY'] }, async () => {
    startPen();
    const attempt = PenDevice.connect(pen.openPort(), { clock: pen.clock, hostProtocolVersion: PROTOCOL_VERSION + 1 });
    await expect(attempt).rejects.toThrow(ProtocolMismatchError);
    await expect(attempt).rejects.toThrow(
      `speaks version ${PROTOCOL_VERSION}, this host speaks version ${PROTOCOL_VERSION + 1}`,
    );
  });
});

describe('link loss', () => {
  it('is reported within 300 ms of the line going dead, and fails requests instead of retrying', { tags: ['REQ-LINK-LOSS'] }, async () => {
    startPen();
    const device = await connect();
    const lostAtMs: number[] = [];
    device.onLinkLost(() => lostAtMs.push(pen.clock.nowMs()));
    const cutAtMs = pen.clock.nowMs();
    pen.setLinkFaults({ dropProbability: 1 });
    const pending = device.status();
    await expect(pending).rejects.toThrow(LinkLostError);
    await pen.clock.sleep(300);
    expect(lostAtMs).toHaveLength(1);
    expect((lostAtMs[0] ?? Infinity) - cutAtMs).toBeLessThanOrEqual(300);
    pen.setLinkFaults({});
    await expect(device.heartbeat()).rejects.toThrow(/link lost/);
  });

  it('is reported when the transport closes', { tags: ['REQ-LINK-LOSS'] }, async () => {
    startPen();
    const port = pen.openPort();
    const device = await PenDevice.connect(port, { clock: pen.clock });
    const lost = new Promise<Error>((resolve) => device.onLinkLost(resolve));
    await port.close();
    expect((await lost).message).toMatch(/closed/);
  });

  it('does not carry on silently across an MCU reset; reconnecting shows the reset cause', { tags: ['REQ-LINK-LOSS', 'REQ-RESET-SAFE'] }, async () => {
    startPen();
    const device = await connect();
    const lost = new Promise<Error>((resolve) => device.onLinkLost(resolve));
    pen.resetMcu();
    await expect(device.status()).rejects.toThrow(LinkLostError);
    await lost;
    const again = await connect();
    expect(again.identity.resetCause).toBe('external');
    expect((await again.status()).uptimeMs).toBeLessThan(1000);
  });
});
