// `pen sim --rig`: the virtual rig served on its own TCP port beside the pen, reset on each connect as an Uno's DTR does,
// so a client meets Firmata's announcement and its answers as on a real rig's serial port; and the flags' usage errors.
import { Socket } from 'node:net';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { standardFirmataHexPath } from '../../hardware/sim/virtual-rig.ts';
import { PenProcesses } from '../pen-process.ts';

const pen = new PenProcesses();
afterEach(() => pen.killAll());

/** Connects to the rig and collects what it sends. */
async function connect(port: number): Promise<{ readonly socket: Socket; readonly received: () => Buffer }> {
  const socket = new Socket();
  let received = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => { received = Buffer.concat([received, chunk]); });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.connect(port, '127.0.0.1', resolve);
  });
  return { socket, received: () => received };
}

async function until(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe.skipIf(!existsSync(standardFirmataHexPath))('pen sim --rig', () => {
  it('serves the rig beside the pen: Firmata announces itself after the connect\'s reset and answers REPORT_VERSION', async () => {
    const sim = pen.start(['sim', '--listen', 'tcp://127.0.0.1:0', '--rig', 'tcp://127.0.0.1:0', '--rig-firmware', standardFirmataHexPath,
      '--eeprom', join(pen.dataDir, 'sim.eeprom')]);
    // Both waits registered at once: the two lines may come in one chunk.
    const [, rigPort] = (await Promise.all([
      sim.waitFor(/virtual pen listening on tcp:\/\/127\.0\.0\.1:(\d+)/, 15_000),
      sim.waitFor(/virtual rig listening on tcp:\/\/127\.0\.0\.1:(\d+) \(.*standard-firmata\.hex/, 15_000),
    ])).map(Number) as [number, number];
    const rig = await connect(rigPort);
    // StandardFirmata 2.4 blinks its version for about 1.8 s after the reset, then announces its version and name.
    await until(() => rig.received().includes(Buffer.from('S\0t\0a\0n\0d\0a\0r\0d\0')) && rig.received().at(-1) === 0xf7, 10_000);
    expect(rig.received()[0]).toBe(0xf9);
    const before = rig.received().length;
    rig.socket.write(Buffer.from([0xf9]));
    await until(() => rig.received().length >= before + 3, 5_000);
    expect([...rig.received().subarray(before, before + 3)]).toEqual([0xf9, 2, rig.received()[2]]);
    expect(sim.output()).toMatch(/rig: client connected from .* \(reset pulsed, as DTR would\)/);

    // One host at a time, as on a serial port.
    const second = await connect(rigPort);
    await until(() => second.received().length > 0, 5_000);
    expect(second.received().toString()).toMatch(/^busy: another host holds this rig/);
    rig.socket.destroy();
    second.socket.destroy();
  });

  it('says what is wrong with the rig flags', async () => {
    const missing = await pen.run(['sim', '--listen', 'tcp://127.0.0.1:0', '--rig', 'tcp://127.0.0.1:0', '--rig-firmware', join(pen.dataDir, 'none.hex'),
      '--eeprom', join(pen.dataDir, 'a.eeprom')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--rig-firmware .*none\.hex: no such file/);
    const noAddress = await pen.run(['sim', '--listen', 'tcp://127.0.0.1:0', '--rig-firmware', standardFirmataHexPath, '--eeprom', join(pen.dataDir, 'b.eeprom')]);
    expect(noAddress.code).toBe(2);
    expect(noAddress.stderr).toMatch(/--rig-firmware needs --rig ADDRESS/);
    const badAddress = await pen.run(['sim', '--listen', 'tcp://127.0.0.1:0', '--rig', 'serial', '--eeprom', join(pen.dataDir, 'c.eeprom')]);
    expect(badAddress.code).toBe(2);
    expect(badAddress.stderr).toMatch(/--rig: "serial" is not a listen address/);
  });
});
