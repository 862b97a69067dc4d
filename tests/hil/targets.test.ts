// One suite over every target: the in-process virtual pen always, and a real board when PEN_PORT names its port
// (a serial path or tcp://HOST:PORT); without PEN_PORT the board's run shows as skipped.
import { afterEach, describe, expect, it } from 'vitest';
import { RealClock } from '../../hardware/clock.ts';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { pen as description } from '../../hardware/description.ts';
import { PenDevice } from '../../hal/device.ts';
import { refusal } from '../refusal.ts';
import { openTransport } from '../../hal/link/transport.ts';
import { PROTOCOL_VERSION } from '../../hardware/generated/protocol.ts';

interface Target {
  readonly device: PenDevice;
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
      return { device, close: async () => { await device.close(); await pen.stop(); } };
    },
  },
  {
    name: `the board on ${boardPort ?? 'PEN_PORT (not set)'}`,
    skip: boardPort === undefined,
    open: async () => {
      const device = await PenDevice.connect(await openTransport(boardPort ?? ''), { clock: new RealClock() });
      return { device, close: () => device.close() };
    },
  },
];

for (const target of targets) {
  describe.skipIf(target.skip)(`on ${target.name}`, () => {
    let opened: Target | null = null;
    afterEach(async () => {
      await opened?.close();
      opened = null;
    });

    it('identifies with our protocol version and boots needing homing', async () => {
      opened = await target.open();
      expect(opened.device.identity.protocolVersion).toBe(PROTOCOL_VERSION);
      expect(opened.device.identity.boardName).toBe(description.board.name);
      const status = await opened.device.status();
      expect(['homing_required', 'idle', 'fault']).toContain(status.state);
      expect(status.needleOn).toBe(false);
    });

    it('refuses depths outside the window and the motor while not armed, from the wire', async () => {
      opened = await target.open();
      expect(await refusal(opened.device.command('move_to', { depthUm: 2500 }))).toBe('out_of_range');
      expect(await refusal(opened.device.command('move_to', { depthUm: 300 }))).toBe('out_of_range');
      expect(await refusal(opened.device.command('start_needle', { strokesPerSecond: 100 }))).toMatch(/not_allowed_in_(state|fault)/);
      await opened.device.stop();
      expect((await opened.device.status()).needleOn).toBe(false);
    });
  });
}
