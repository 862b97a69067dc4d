// One suite over every target: the in-process virtual pen always, and a real board when PEN_PORT names its port
// (a serial path or tcp://HOST:PORT); without PEN_PORT the board's run shows as skipped. Each test first brings the
// pen to a known state (STOP, clear any latched fault, home), so a pen left faulted or armed by an earlier run does
// not fail it; when that cannot be done the test fails saying which step failed and why.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RealClock } from '../../hardware/clock.ts';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { pen as description } from '../../hardware/description.ts';
import { PenDevice, type Telemetry } from '../../hal/device.ts';
import { refusal } from '../refusal.ts';
import { openTransport } from '../../hal/link/transport.ts';
import { PROTOCOL_VERSION } from '../../hardware/generated/protocol.ts';

interface Target {
  readonly device: PenDevice;
  readonly where: string;
  close(): Promise<void>;
}

const boardPort = process.env['PEN_PORT'];
const targets: readonly { name: string; skip: boolean; open: () => Promise<Target> }[] = [
  {
    name: 'the virtual pen',
    skip: false,
    open: async () => {
      const pen = new VirtualPen();
      pen.start();
      const device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
      return { device, where: 'the virtual pen', close: async () => { await device.close(); await pen.stop(); } };
    },
  },
  {
    name: `the board on ${boardPort ?? 'PEN_PORT (not set)'}`,
    skip: boardPort === undefined,
    open: async () => {
      const transport = await openTransport(boardPort ?? '');
      try {
        const device = await PenDevice.connect(transport, { clock: new RealClock() });
        return { device, where: `the board on ${boardPort ?? ''}`, close: () => device.close() };
      } catch (error) {
        await transport.close();
        throw error;
      }
    },
  },
];

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/**
 * STOP, clear a latched fault, home: the known state every test starts from (idle, homed, no fault, needle off).
 * Throws naming the step that failed, what the pen said, and what to do.
 */
async function bringToKnownState(target: Target): Promise<Telemetry> {
  const { device, where } = target;
  const cannot = (step: string, reason: string): Error =>
    new Error(`cannot bring ${where} to a known state (stop, clear fault, home): ${step} failed: ${reason}`);
  try {
    await device.stop();
  } catch (error) {
    throw cannot('STOP', message(error));
  }
  const t = await device.status();
  if (t.state === 'fault') {
    try {
      await device.clearFault();
    } catch (error) {
      throw cannot(`clearing fault ${t.fault} (${t.faultText})`, `${message(error)}; remove its cause (e-stop, supply, temperature, cartridge) and run again`);
    }
  }
  try {
    await device.depth.home();
  } catch (error) {
    throw cannot('homing', message(error));
  }
  const known = await device.status();
  if (known.state !== 'idle' || known.fault !== 'none' || !known.homed || known.needleOn) {
    throw cannot('the check after homing', `the pen reports state ${known.state}, fault ${known.fault}, ${known.homed ? 'homed' : 'not homed'}, needle ${known.needleOn ? 'ON' : 'off'}`);
  }
  return known;
}

for (const target of targets) {
  describe.skipIf(target.skip)(`on ${target.name}`, () => {
    let opened: Target | null = null;
    /** The state the pen reported on connecting, before it was brought to the known state. */
    let found: Telemetry | null = null;
    const device = (): PenDevice => {
      if (opened === null) throw new Error('no target open');
      return opened.device;
    };

    beforeEach(async () => {
      opened = await target.open();
      found = await opened.device.status();
      await bringToKnownState(opened);
    });

    afterEach(async () => {
      await opened?.close();
      opened = null;
      found = null;
    });

    it('identifies with our protocol version, boots in a state it can be brought from, and is idle and homed after', async () => {
      expect(device().identity.protocolVersion).toBe(PROTOCOL_VERSION);
      expect(device().identity.boardName).toBe(description.board.name);
      expect(['homing_required', 'idle', 'fault']).toContain(found?.state);
      const status = await device().status();
      expect(status).toMatchObject({ state: 'idle', fault: 'none', homed: true, needleOn: false });
    });

    it('refuses depths outside the window and the motor while not armed, from the wire', async () => {
      expect(await refusal(device().command('move_to', { depthUm: 2500 }))).toBe('out_of_range');
      expect(await refusal(device().command('move_to', { depthUm: 300 }))).toBe('out_of_range');
      expect(await refusal(device().command('start_needle', { strokesPerSecond: 100 }))).toMatch(/not_allowed_in_(state|fault)/);
      await device().stop();
      expect((await device().status()).needleOn).toBe(false);
    });
  });
}
