// Opens what a command talks to: a serial port or tcp:// address when given, else an in-process virtual pen.
import { RealClock } from '../../hardware/clock.ts';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { PenDevice } from '../../hal/device.ts';
import { openTransport } from '../../hal/link/transport.ts';

export interface Target {
  readonly device: PenDevice;
  /** The in-process virtual pen, when no port was given. */
  readonly virtualPen: VirtualPen | null;
  close(): Promise<void>;
}

export interface TargetOptions {
  readonly port?: string | undefined;
  readonly firmware?: string | undefined;
  /** 'real' paces the in-process pen to the wall clock (for live displays); 'virtual' runs it flat out. */
  readonly timeMode?: 'virtual' | 'real';
}

export async function openTarget(options: TargetOptions): Promise<Target> {
  if (options.port !== undefined) {
    const device = await PenDevice.connect(await openTransport(options.port), { clock: new RealClock() });
    return { device, virtualPen: null, close: () => device.close() };
  }
  const virtualPen = new VirtualPen({
    timeMode: options.timeMode ?? 'virtual',
    ...(options.firmware === undefined ? {} : { firmwarePath: options.firmware }),
  });
  virtualPen.start();
  try {
    const device = await PenDevice.connect(virtualPen.openPort(), { clock: virtualPen.clock });
    return {
      device,
      virtualPen,
      close: async () => {
        await device.close();
        await virtualPen.stop();
      },
    };
  } catch (error) {
    await virtualPen.stop();
    throw error;
  }
}
