// Opens what a command talks to: a serial port or tcp:// address when given, else an in-process virtual pen.
import { RealClock } from '../../hardware/clock.ts';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { PenDevice } from '../../hal/device.ts';
import { openTransport } from '../../hal/link/transport.ts';

export interface Target {
  readonly device: PenDevice;
  /** Where the pen is, for people and records. */
  readonly where: string;
  /** The in-process virtual pen, when no port was given. */
  readonly virtualPen: VirtualPen | null;
  close(): Promise<void>;
}

export interface TargetOptions {
  readonly port?: string | undefined;
  readonly firmware?: string | undefined;
  /** 'real' paces the in-process pen to the wall clock (for live displays); 'virtual' runs it flat out. */
  readonly timeMode?: 'virtual' | 'real';
  /** Whether the device sends its own heartbeats (false when a session's loop sends them). */
  readonly heartbeat?: boolean;
}

export async function openTarget(options: TargetOptions): Promise<Target> {
  if (options.port !== undefined) {
    const device = await PenDevice.connect(await openTransport(options.port), { clock: new RealClock(), heartbeat: options.heartbeat ?? true });
    return { device, where: options.port, virtualPen: null, close: () => device.close() };
  }
  const virtualPen = new VirtualPen({
    timeMode: options.timeMode ?? 'virtual',
    ...(options.firmware === undefined ? {} : { firmwarePath: options.firmware }),
  });
  virtualPen.start();
  try {
    const device = await PenDevice.connect(virtualPen.openPort(), { clock: virtualPen.clock, heartbeat: options.heartbeat ?? true });
    return {
      device,
      where: 'the in-process virtual pen',
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
