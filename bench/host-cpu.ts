// Host CPU: process CPU during a real-time 100 Hz treatment session, minus the simulated MCU's own share.
import { RealClock, type Clock } from '../hardware/clock.ts';
import { VirtualPen } from '../hardware/sim/virtual-pen.ts';
import { PenDevice } from '../hal/device.ts';
import type { Transport } from '../hal/link/transport.ts';
import { TreatmentSession } from '../src/control/session.ts';
import type { LatenessStats } from '../src/control/loop.ts';
import { PenStore } from '../src/store/store.ts';
import { progress, round, type Figure } from './figure.ts';
import { armFitted, recordSterileNosecone } from './running-pen.ts';

const durationS = 5;
const depthMm = 1.0;
const strokesPerSecond = 100;
const loopRateHz = 100;

interface CpuSample<T> {
  readonly percent: number;
  readonly wallMs: number;
  readonly result: T;
}

/**
 * Percent of one core this process used while run() ran (user + system), per simulated ms rather than wall ms:
 * a real-time pen that fell behind and catches up does more work in the same wall time, which would add noise.
 */
async function cpuPercentDuring<T>(pen: VirtualPen, run: () => Promise<T>): Promise<CpuSample<T>> {
  const cpuStart = process.cpuUsage();
  const wallStartMs = performance.now();
  const simStartMs = pen.simTimeMs;
  const result = await run();
  const wallMs = performance.now() - wallStartMs;
  const simMs = pen.simTimeMs - simStartMs;
  const cpu = process.cpuUsage(cpuStart);
  return { percent: (100 * (cpu.user + cpu.system)) / 1000 / simMs, wallMs, result };
}

/**
 * Times the host's own callbacks (timers on its clock, bytes it receives) directly, since the subtraction below
 * is swamped by the simulator's noise. A lower bound: promise continuations run after a callback returns.
 */
class HostMeter {
  busyMs = 0;
  clock(inner: Clock): Clock {
    return {
      nowMs: () => inner.nowMs(), epochMs: () => inner.epochMs(), sleep: (delayMs) => inner.sleep(delayMs),
      after: (delayMs, fn) => inner.after(delayMs, this.timed(fn)),
    };
  }
  transport(inner: Transport): Transport {
    return {
      description: inner.description, write: (bytes) => inner.write(bytes), close: () => inner.close(),
      onClose: (listener) => inner.onClose(listener), onData: (listener) => inner.onData(this.timed(listener)),
    };
  }
  private timed<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
    return (...args) => {
      const startMs = performance.now();
      try {
        fn(...args);
      } finally {
        this.busyMs += performance.now() - startMs;
      }
    };
  }
}

/** The full host: a TreatmentSession (loop, heartbeats, plausibility, store) treating on a real-time virtual pen. */
async function withSession(): Promise<{ cpu: CpuSample<unknown>; callbacksPercent: number; loop: LatenessStats; outcome: string }> {
  const pen = new VirtualPen({ seed: 11, timeMode: 'real' });
  pen.start();
  const meter = new HostMeter();
  const clock = meter.clock(pen.clock);
  const device = await PenDevice.connect(meter.transport(pen.openPort()), { clock, heartbeat: false });
  const store = PenStore.open(':memory:', new RealClock());
  const session = new TreatmentSession(device, { clock, store, target: 'bench', loopRateHz });
  try {
    await session.selfTest();
    await session.home();
    await recordSterileNosecone(device, store);  // a fresh store: the nosecone's cycle as its chip counts it
    await session.prepare();
    const busyStartMs = meter.busyMs;
    const cpu = await cpuPercentDuring(pen, () => session.treat({ depthMm, strokesPerSecond, durationS }));
    const { loop, outcome, reason } = cpu.result;
    const callbacksPercent = (100 * (meter.busyMs - busyStartMs)) / cpu.wallMs;
    return { cpu, callbacksPercent, loop, outcome: `${outcome} (${reason})` };
  } finally {
    session.close();
    await device.close();
    store.close();
    await pen.stop();
  }
}

/** The same pen doing the same work (homed, at depth, needle running) with only the device's own heartbeat as host. */
async function simAlone(): Promise<CpuSample<void>> {
  const pen = new VirtualPen({ seed: 11, timeMode: 'real' });
  pen.start();
  const device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
  try {
    await device.depth.home();
    await device.depth.moveTo(depthMm);
    await armFitted(device);
    await device.needle.start(strokesPerSecond);
    return await cpuPercentDuring(pen, () => pen.clock.sleep(durationS * 1000));
  } finally {
    await device.close();
    await pen.stop();
  }
}

export async function measure(): Promise<Figure[]> {
  // The simulator alone is measured before and after the session, so a drift in machine load cancels out.
  const aloneBefore = await simAlone();
  const full = await withSession();
  const aloneAfter = await simAlone();
  const alone = { percent: (aloneBefore.percent + aloneAfter.percent) / 2 };
  progress(`virtual pen alone: ${round(aloneBefore.percent, 1)} % then ${round(aloneAfter.percent, 1)} % of a core over ${durationS} s each`);
  progress(`session + virtual pen: ${round(full.cpu.percent, 1)} % over ${round(full.cpu.wallMs / 1000, 2)} s, ${full.outcome}; ` +
    `host callbacks ${round(full.callbacksPercent, 2)} %`);
  const treat = `treat(${depthMm} mm, ${strokesPerSecond} strokes/s, ${durationS} s) at ${loopRateHz} Hz on a real-time virtual pen`;
  const perCore = 'of one core (process CPU ms per simulated ms, which real-time mode keeps equal to wall ms)';
  const simWork = `pen homed, at ${depthMm} mm, needle at ${strokesPerSecond} strokes/s, device heartbeat only`;
  const loop = `supervisory loop tick lateness during the ${durationS} s treatment, sharing the thread with the simulated MCU`;
  return [
    { name: 'host_cpu_100hz_with_sim_percent', value: round(full.cpu.percent, 1), unit: '%', note: `${perCore}; ${treat}` },
    { name: 'sim_alone_cpu_percent', value: round(alone.percent, 1), unit: '%', note: `${perCore}; ${simWork}; mean of ${durationS} s before and after` },
    { name: 'host_cpu_100hz_percent', value: round(full.cpu.percent - alone.percent, 1), unit: '%', note: 'the two above subtracted: noisy at the level of a few %' },
    {
      name: 'host_callbacks_100hz_percent', value: round(full.callbacksPercent, 2), unit: '%',
      note: `of one core: wall time inside the host's timer and receive callbacks (promise continuations not counted); ${treat}`,
    },
    { name: 'host_session_100hz_loop_p99_ms', value: round(full.loop.p99Ms), unit: 'ms', note: loop },
    { name: 'host_session_100hz_loop_max_ms', value: round(full.loop.maxMs), unit: 'ms', note: loop },
  ];
}
