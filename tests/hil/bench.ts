// The HIL suite's fixtures: the bench opened once (pen, rig, gauge, and on the virtual bench the plant's control
// channel), the known state every test starts from, the parts a needle run needs, and how a test says what it measured
// or that this bench cannot do it. The same code for the virtual bench and a real one (tests/hil/global-setup.ts).
import { hostname } from 'node:os';
import { inject, type TestContext } from 'vitest';
import { RealClock } from '../../hardware/clock.ts';
import { openGauge, type Gauge } from '../../hal/gauge.ts';
import { PenDevice } from '../../hal/device.ts';
import { openTransport } from '../../hal/link/transport.ts';
import { Rig, type MotorOffTiming } from '../../hal/rig.ts';
import { SimControl } from '../../hal/sim-control.ts';
import { defaultKeysDir, KeyFiles } from '../../src/provision/keys.ts';
import { annotationType } from '../../src/qa/results.ts';
import type { BenchAddresses } from './global-setup.ts';

export interface Bench {
  readonly addresses: BenchAddresses;
  readonly device: PenDevice;
  readonly rig: Rig;
  readonly gauge: Gauge | null;
  /** The plant's control channel: only on the virtual bench. */
  readonly control: SimControl | null;
  /** The rig's and the suite's clock: the wall clock, on either bench. */
  readonly clock: RealClock;
  close(): Promise<void>;
}

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/**
 * Retries open while the far end says it is busy: `pen sim` serves one host at a time and may not yet have seen an
 * earlier connection close. Gives up after 5 s.
 */
async function whileBusy<T>(open: () => Promise<T>): Promise<T> {
  const deadline = performance.now() + 5000;
  for (;;) {
    try {
      return await open();
    } catch (error) {
      if (!/busy/.test(message(error)) || performance.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/** Connects to the bench the global setup found; the pen with its heartbeat on. */
export async function openBench(): Promise<Bench> {
  const addresses = inject('hilBench');
  const clock = new RealClock();
  const opened: { device?: PenDevice; rig?: Rig; gauge?: Gauge; control?: SimControl } = {};
  const close = async (): Promise<void> => {
    await opened.control?.close();
    await opened.gauge?.close();
    await opened.rig?.close();
    await opened.device?.close();
  };
  try {
    opened.device = await whileBusy(async () => {
      const transport = await openTransport(addresses.pen);
      return PenDevice.connect(transport, { clock, heartbeat: true }).catch(async (error: unknown) => {
        await transport.close();
        throw error;
      });
    });
    // A virtual pen carries the test keys; a real one the keys `pen provision` wrote (PEN_KEYS_DIR, else the default).
    if (addresses.kind === 'real') opened.device.keys = new KeyFiles(process.env['PEN_KEYS_DIR'] ?? defaultKeysDir());
    opened.rig = await whileBusy(() => Rig.open(addresses.rig, { clock, timeoutMs: 15_000 }));
    if (addresses.gauge !== null) opened.gauge = await openGauge(addresses.gauge);
    if (addresses.control !== null) opened.control = await SimControl.open(addresses.control);
    return { addresses, device: opened.device, rig: opened.rig, gauge: opened.gauge ?? null, control: opened.control ?? null, clock, close };
  } catch (error) {
    await close();
    throw new Error(`cannot open ${addresses.description}: ${message(error)}`);
  }
}

/**
 * STOP, a healthy plant, the rig's outputs at rest, a latched fault cleared, homed: the state every test starts from.
 * Throws naming the step that failed and what the pen said.
 */
export async function bringToKnownState(bench: Bench): Promise<void> {
  const { device, rig } = bench;
  const step = async (name: string, action: () => Promise<unknown>): Promise<void> => {
    try {
      await action();
    } catch (error) {
      throw new Error(`cannot bring ${bench.addresses.description} to a known state: ${name} failed: ${message(error)}`);
    }
  };
  await step('STOP', () => device.stop());
  if (bench.control !== null) await step('restoring a healthy plant', () => bench.control?.clearAll() ?? Promise.resolve());
  rig.releaseEstop();
  rig.fitCartridge();
  rig.releaseFootswitch();
  device.setHeartbeat(true);
  await bench.clock.sleep(50);
  const t = await device.status();
  if (t.state === 'fault') await step(`clearing fault ${t.fault} (${t.faultText})`, () => device.clearFault());
  await step('homing', () => device.depth.home());
  const known = await device.status();
  if (known.state !== 'idle' || known.fault !== 'none' || !known.homed || known.needleOn) {
    throw new Error(`cannot bring ${bench.addresses.description} to a known state: after homing the pen reports state ${known.state}, ` +
      `fault ${known.fault}, ${known.homed ? 'homed' : 'not homed'}, needle ${known.needleOn ? 'ON' : 'off'}`);
  }
  await rig.waitFor(() => !rig.motorEnabled(), 500, 'motorEnable low at rest');
}

/** The date the suite arms with: the virtual bench's parts carry expiry dates fixed in the simulator; a real bench, today. */
export function armingDate(bench: Bench): number {
  return bench.addresses.kind === 'virtual' ? Date.UTC(2026, 10, 26) : Date.now();
}

/**
 * A nosecone ready for a new session: sterilized since its last use (the reprocessing role records a cycle on its chip,
 * as `pen sterilize` does, when it is not).
 */
export async function sterilizedNosecone(bench: Bench): Promise<void> {
  const { nosecone, cartridge } = await bench.device.settledParts();
  // Within a session (the fitted cartridge's marks burnt) the nosecone's use is this session's, and the pen refuses to
  // record a sterilization; a used cartridge from an earlier session is refused anyway.
  if (nosecone.sterilizations > nosecone.uses || cartridge.used) return;
  await bench.device.serviceCommand('record_sterilization', { noseconeRom: Uint8Array.from(Buffer.from(nosecone.rom, 'hex')) });
  const after = await bench.device.settledParts();
  if (after.nosecone.sterilizations <= after.nosecone.uses) throw new Error(`the nosecone ${nosecone.rom} still reads used after recording its sterilization`);
}

/** At depthMm, the fitted cartridge cleared, armed, the needle at strokesPerSecond and seen running by the rig. */
export async function runNeedle(bench: Bench, strokesPerSecond: number, depthMm = 1.5): Promise<void> {
  const { device, rig } = bench;
  await device.depth.moveTo(depthMm);
  await sterilizedNosecone(bench);
  const { cartridge } = await device.settledParts();
  await device.clearCartridge(cartridge.rom);
  await device.arm(armingDate(bench)).catch((error: unknown) => {
    throw new Error(`cannot arm ${bench.addresses.description} to run the needle: ${message(error)}; ` +
      'fit an unused cartridge and a sterilized nosecone and run again');
  });
  await device.needle.start(strokesPerSecond);
  await rig.waitFor(() => rig.motorEnabled(), 2000, 'motorEnable high');
}

/** A moment on the bench: the wall clock, and on the virtual bench its pen's simulated time (through the control channel). */
interface BenchInstant {
  readonly wallMs: number;
  readonly simMs: number | null;
}

async function benchInstant(bench: Bench): Promise<BenchInstant> {
  const simMs = bench.control === null ? null : (await bench.control.plant()).simTimeMs;
  return { wallMs: bench.clock.nowMs(), simMs };
}

/** Simulated over wall time between two instants: 1 on a real bench. */
function benchRate(before: BenchInstant, after: BenchInstant): number {
  if (before.simMs === null || after.simMs === null) return 1;
  return (after.simMs - before.simMs) / (after.wallMs - before.wallMs);
}

/**
 * What the rig measured, in the bench's own time. A real bench runs on the wall clock. The virtual bench runs in
 * simulated time, paced to the wall clock but slower when the machine is busy, so the rig's wall-clock timings are
 * scaled by the simulated time that passed meanwhile: what a rig would have measured on hardware.
 */
export interface BenchTiming extends MotorOffTiming {
  /** Simulated over wall time across the measurement (1 on a real bench). */
  readonly rate: number;
}

/**
 * Lets the needle settle for settleMs (the RC filter settles on the running duty, and the simulated time's rate is taken
 * over a span long enough that the stamps' jitter of a few ms does not matter), then writes the stimulus and times it.
 */
export async function timeToMotorOff(bench: Bench, stimulus: () => void, timeoutMs = 1000, settleMs = 300): Promise<BenchTiming> {
  const before = await benchInstant(bench);
  await bench.clock.sleep(settleMs);
  const timing = await bench.rig.timeToMotorOff(stimulus, timeoutMs);
  const rate = benchRate(before, await benchInstant(bench));
  return {
    enableOffMs: timing.enableOffMs * rate, dutyFallMs: timing.dutyFallMs === null ? null : timing.dutyFallMs * rate,
    dutyBefore: timing.dutyBefore, rate,
  };
}

/**
 * The tach's pulse rate over about windowMs, in pulses per second of the bench's own time: on a real bench from the
 * edges' wall-clock stamps; on the virtual bench the pulses counted between two readings of its simulated time (±1
 * pulse, and a host-to-pen hop, at each end).
 */
export async function tachHz(bench: Bench, windowMs: number): Promise<{ readonly hz: number; readonly rate: number }> {
  if (bench.control === null) return { hz: await bench.rig.tachHz(windowMs), rate: 1 };
  const instants: BenchInstant[] = [];
  const pulses = await bench.rig.tachPulsesDuring(async () => {
    instants.push(await benchInstant(bench));
    await bench.clock.sleep(windowMs);
    instants.push(await benchInstant(bench));
  });
  const [before, after] = instants;
  if (before?.simMs == null || after?.simMs == null) throw new Error('the virtual bench did not say its simulated time');
  return { hz: pulses / ((after.simMs - before.simMs) / 1000), rate: benchRate(before, after) };
}

/** Records a figure the test measured: printed, and carried into the results, JUnit properties and the HTML report. */
export async function figure(context: TestContext, text: string): Promise<void> {
  console.log(`  ${text}`);
  await context.annotate(text, annotationType.figure);
}

/** Ends a test that this bench cannot run, reported as not applicable with the reason (not silently skipped). */
export async function notApplicable(context: TestContext, reason: string): Promise<never> {
  await context.annotate(reason, annotationType.notApplicable);
  return context.skip(`not applicable: ${reason}`);
}

/** Records an identity record (bench, pen, rig, gauge) for the reports. */
export async function identity(context: TestContext, name: string, record: Readonly<Record<string, unknown>>): Promise<void> {
  await context.annotate(JSON.stringify(record), `${annotationType.identityPrefix}${name}`);
}

/** The bench's own identity record. */
export function benchRecord(bench: Bench): Record<string, unknown> {
  const { addresses } = bench;
  return {
    kind: addresses.kind, description: addresses.description, penPort: addresses.pen, rigPort: addresses.rig,
    gaugePort: addresses.gauge, controlPort: addresses.control, host: hostname(), node: process.version,
  };
}

/** "e-stop: motorEnable low after 0.84 ms, PWM falling after 31.0 ms (filtered duty before 62 %; bench at 0.98× real time)". */
export function motorOffText(failsafe: string, timing: BenchTiming): string {
  const duty = timing.dutyFallMs === null ? 'PWM fall not seen' : `PWM falling after ${timing.dutyFallMs.toFixed(1)} ms`;
  const rate = timing.rate === 1 ? '' : `; simulated time, the bench at ${timing.rate.toFixed(2)}× real time`;
  return `${failsafe}: motorEnable low after ${timing.enableOffMs.toFixed(2)} ms, ${duty} (filtered duty before ${(timing.dutyBefore * 100).toFixed(0)} %${rate})`;
}
