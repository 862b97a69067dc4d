// A virtual pen on virtual time with a HAL device connected: homed, or running the needle, for tests that start there.
import { expect } from 'vitest';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { PenDevice } from '../../hal/device.ts';

export interface VirtualSession {
  readonly pen: VirtualPen;
  readonly device: PenDevice;
}

export async function homedVirtualPen(seed = 1): Promise<VirtualSession> {
  const pen = new VirtualPen({ seed });
  pen.start();
  const device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
  await device.depth.home();
  return { pen, device };
}

/** Homed, at 1.5 mm, cartridge cleared, armed and running the needle at 100 strokes/s, checked to be running. */
export async function runningVirtualPen(seed = 1): Promise<VirtualSession> {
  const session = await homedVirtualPen(seed);
  const { pen, device } = session;
  await device.depth.moveTo(1.5);
  await device.clearCartridge(7);
  await device.arm();
  await device.needle.start(100);
  await pen.clock.sleep(800);
  expect(device.telemetry).toMatchObject({ state: 'running', fault: 'none' });
  expect(pen.plant.motorDrive()).toBeGreaterThan(0);
  return session;
}
