// Virtual pens for tests that start from one: on virtual time with a HAL device connected (homed, or running the
// needle), or on real time served on TCP for a `pen` process.
import { expect } from 'vitest';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { servePen } from '../../hardware/sim/tcp-server.ts';
import { PenDevice } from '../../hal/device.ts';
import { provisionedVirtualPen } from './provisioned.ts';

export interface VirtualSession {
  readonly pen: VirtualPen;
  readonly device: PenDevice;
}

/** Provisioned as SIM-0001 with the test keys (tests/sim/provisioned.ts), homed, idle. */
export async function homedVirtualPen(seed = 1): Promise<VirtualSession> {
  const pen = provisionedVirtualPen({ seed });
  pen.start();
  const device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
  await device.depth.home();
  return { pen, device };
}

/** The date tests arm on: before the virtual pen's default cartridge expiry (2030-01-01), after idChips.earliestHostDay. */
export const armingDateMs = Date.UTC(2026, 10, 26);

/** Clears the fitted cartridge by its ID chip's ROM id, once the pen has read its chips; returns that id. */
export async function clearFittedCartridge(device: PenDevice): Promise<string> {
  const { cartridge } = await device.settledParts();
  await device.clearCartridge(cartridge.rom);
  return cartridge.rom;
}

/** Clears the fitted cartridge and arms on armingDateMs. */
export async function armFitted(device: PenDevice): Promise<void> {
  await clearFittedCartridge(device);
  await device.arm(armingDateMs);
}

/** Homed, at 1.5 mm, cartridge cleared, armed and running the needle at 100 strokes/s, checked to be running. */
export async function runningVirtualPen(seed = 1): Promise<VirtualSession> {
  const session = await homedVirtualPen(seed);
  const { pen, device } = session;
  await device.depth.moveTo(1.5);
  await armFitted(device);
  await device.needle.start(100);
  await pen.clock.sleep(800);
  expect(device.telemetry).toMatchObject({ state: 'running', fault: 'none' });
  expect(pen.plant.motorDrive()).toBeGreaterThan(0);
  return session;
}

export interface ServedVirtualPen {
  readonly pen: VirtualPen;
  /** tcp://127.0.0.1:PORT, for a `pen` process's --port. */
  readonly address: string;
  close(): Promise<void>;
}

/** A virtual pen in this process, on real time, served on a free TCP port: for a `pen` process to talk to while the
 * test works the pen's switches and plant, which only this process can reach. */
export async function servedVirtualPen(): Promise<ServedVirtualPen> {
  const pen = provisionedVirtualPen({ timeMode: 'real' });
  pen.start();
  const server = await servePen(pen, { host: '127.0.0.1', port: 0 });
  const bound = server.address();
  const port = typeof bound === 'object' && bound !== null ? bound.port : 0;
  return {
    pen,
    address: `tcp://127.0.0.1:${port}`,
    close: async () => {
      server.close();
      await pen.stop();
    },
  };
}
