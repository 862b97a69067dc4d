// The serial transport for real: socat makes a pty pair that carries the virtual pen's UART, and the host opens
// the pty with serialport as it would /dev/ttyUSB0.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { RealClock } from '../../hardware/clock.ts';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { servePen } from '../../hardware/sim/tcp-server.ts';
import { PenDevice } from '../../hal/device.ts';
import { openTransport } from '../../hal/link/transport.ts';

const clock = new RealClock();
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

it('talks to the pen through a serial port (a pty), identity and refusals included', async () => {
  const pen = new VirtualPen({ timeMode: 'real' });
  pen.start();
  const server = await servePen(pen, { host: '127.0.0.1', port: 0 });
  cleanups.push(async () => { server.close(); await pen.stop(); });
  const address = server.address();
  const tcpPort = typeof address === 'object' && address !== null ? address.port : 0;
  const ptyPath = join(mkdtempSync(join(tmpdir(), 'pen-pty-')), 'ttyPEN');
  const socat: ChildProcess = spawn('socat', [`pty,raw,echo=0,link=${ptyPath}`, `tcp:127.0.0.1:${tcpPort}`]);
  cleanups.push(() => { socat.kill(); });
  for (let waitedMs = 0; !existsSync(ptyPath) && waitedMs < 3000; waitedMs += 20) await clock.sleep(20);

  const device = await PenDevice.connect(await openTransport(ptyPath), { clock });
  cleanups.push(() => device.close());
  expect(device.identity.boardName).toBe('pen-r1a');
  await device.depth.home();
  await device.depth.moveTo(1.25);
  expect(pen.plant.trueDepthMm).toBeCloseTo(1.25, 3);
  await expect(device.command('move_to', { depthUm: 2500 })).rejects.toThrow(/out_of_range/);
});
