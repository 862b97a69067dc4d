// The virtual pen itself: the same seed gives the same bytes (and virtual time never stalls on the way).
import { describe, expect, it } from 'vitest';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { PenDevice } from '../../hal/device.ts';

async function transcript(seed: number): Promise<string> {
  const pen = new VirtualPen({ seed });
  pen.start();
  const port = pen.openPort();
  const bytes: number[] = [];
  port.onData((chunk) => bytes.push(...chunk));
  const device = await PenDevice.connect(port, { clock: pen.clock });
  pen.setLinkFaults({ corruptProbability: 0.002, dropProbability: 0.002 });
  await device.depth.home();
  await device.depth.moveTo(1.1);
  for (let i = 0; i < 20; i++) await device.status();
  await device.close();
  await pen.stop();
  return Buffer.from(bytes).toString('hex');
}

describe('the virtual pen', () => {
  it('gives the same bytes for the same seed, noise included', async () => {
    const first = await transcript(5);
    expect(first.length).toBeGreaterThan(2000);
    expect(await transcript(5)).toBe(first);
    expect(await transcript(6)).not.toBe(first);
  });
});
