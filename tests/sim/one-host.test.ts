// One host owns the pen at a time (DESIGN, "The link"): `pen sim` refuses a second TCP client with a reason and
// keeps it out of the holder's byte stream, and a serial port is opened exclusively.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RealClock } from '../../hardware/clock.ts';
import { FrameKind, FRAME_SYNC } from '../../hardware/generated/protocol.ts';
import { PenDevice } from '../../hal/device.ts';
import { encodeMessage } from '../../hal/link/codec.ts';
import { encodeFrame } from '../../hal/link/frame.ts';
import { SerialTransport, TcpTransport } from '../../hal/link/transport.ts';
import { PenProcesses, type PenResult } from '../pen-process.ts';
import { clearFittedCartridge, armingDateMs } from './virtual-session.ts';

const clock = new RealClock();
const processes = new PenProcesses();
const cleanups: (() => Promise<void> | void)[] = [];
const BUSY = /^busy: another host holds this pen \(127\.0\.0\.1:\d+, connected \d+ s ago\)$/m;

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  processes.killAll();
});

const startSim = async (): Promise<number> => (await processes.startSim()).port;
const penCli = (args: string[], timeoutMs: number): Promise<PenResult> => processes.run(args, { timeoutMs });

/** Client A: the HAL over TCP, homed, at 1.5 mm, cartridge cleared, armed, needle running. */
async function holdRunningPen(port: number): Promise<PenDevice> {
  const device = await PenDevice.connect(await TcpTransport.open('127.0.0.1', port), { clock });
  cleanups.push(() => device.close());
  await device.depth.home();
  await device.depth.moveTo(1.5);
  await clearFittedCartridge(device);
  await device.arm(armingDateMs);
  await device.needle.start(100);
  await device.waitFor((t) => t.state === 'running' && t.needleOn, 2000, 'needle running');
  return device;
}

/** A raw second client: writes what it is given as soon as it connects, and collects what it receives until closed. */
function rawClient(port: number, bytes: Uint8Array): Promise<{ received: string; closedAfterMs: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    let received = '';
    const timeout = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the second client was not closed within 3 s (got ${JSON.stringify(received.slice(0, 80))}…)`));
    }, 3000);
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    socket.on('error', () => {});  // a write racing the server's close may be reset; 'close' follows
    socket.on('close', () => {
      clearTimeout(timeout);
      resolve({ received, closedAfterMs: performance.now() - started });
    });
    socket.connect(port, '127.0.0.1', () => socket.write(bytes));
  });
}

describe('one host at a time over TCP (pen sim --listen)', () => {
  it('refuses a second client with a busy line, keeps its bytes from the pen, and accepts a new one once the holder leaves', { tags: ['REQ-ONE-HOST'], timeout: 30_000 }, async () => {
    const port = await startSim();
    const a = await holdRunningPen(port);

    const before = { ...a.linkStats };
    // B sends what would stop the pen if it got through: a sync, then a STOP (acted on wherever it lands) and a heartbeat.
    const stop = Uint8Array.of(FRAME_SYNC, ...encodeFrame(FrameKind.data | 0, encodeMessage('stop', {})));
    const heartbeat = encodeFrame(FrameKind.data | 1, encodeMessage('heartbeat', {}));
    const b = await rawClient(port, Uint8Array.of(...encodeFrame(FrameKind.sync, new Uint8Array(0)), ...stop, ...heartbeat));
    expect(b.received).toMatch(BUSY);
    expect(b.received.endsWith('\n')).toBe(true);
    expect(b.received.split('\n')).toHaveLength(2);  // the one line and nothing else: no frames from the pen

    await clock.sleep(200);  // time for a STOP that had reached the pen to show
    const status = await a.status();  // A's commands are still answered
    expect(status).toMatchObject({ state: 'running', needleOn: true, fault: 'none' });
    expect(a.telemetry?.state).toBe('running');
    // The busy line never reached A: not a byte of it was dropped by A's frame parser.
    expect(a.linkStats).toMatchObject({ framesBad: before.framesBad, bytesDropped: before.bytesDropped });

    await a.close();
    const c = await penCli(['info', '--port', `tcp://127.0.0.1:${port}`, '--json'], 15_000);
    expect(c.code, c.stderr).toBe(0);
    expect(JSON.parse(c.stdout)).toMatchObject({ identity: { boardName: 'pen-r1a' } });
  });

  it('`pen info` while another host holds the pen exits 3 at once and prints the busy line', { tags: ['REQ-ONE-HOST'], timeout: 30_000 }, async () => {
    const port = await startSim();
    await holdRunningPen(port);
    const info = await penCli(['info', '--port', `tcp://127.0.0.1:${port}`], 15_000);
    expect(info.code).toBe(3);
    expect(info.stderr).toMatch(/busy: another host holds this pen \(127\.0\.0\.1:\d+, connected \d+ s ago\)/);
    expect(info.ms).toBeLessThan(5000);
  });
});

const hasSocat = spawnSync('socat', ['-V']).error === undefined;

describe('one host at a time over serial', () => {
  it('a serial port already open is refused with the busy text, and free again once closed', { tags: ['REQ-ONE-HOST'] }, async (context) => {
    context.skip(!hasSocat, 'socat is not installed (apt-get install socat): it makes the pty pair this test opens');
    const dir = mkdtempSync(join(tmpdir(), 'pen-pty-'));
    const ptyPath = join(dir, 'ttyPEN');
    const socat = spawn('socat', [`pty,raw,echo=0,link=${ptyPath}`, `pty,raw,echo=0,link=${join(dir, 'ttyOTHER')}`]);
    cleanups.push(() => { socat.kill('SIGKILL'); });
    for (let waitedMs = 0; !existsSync(ptyPath) && waitedMs < 3000; waitedMs += 20) await clock.sleep(20);

    const first = await SerialTransport.open(ptyPath);
    cleanups.push(() => first.close());
    const second = SerialTransport.open(ptyPath);
    await expect(second).rejects.toThrow(new RegExp(`^busy: another program holds ${ptyPath}: cannot open serial port ${ptyPath}: .+`));
    await first.close();
    const third = await SerialTransport.open(ptyPath);
    await third.close();
  });
});
