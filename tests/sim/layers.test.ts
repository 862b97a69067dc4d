// Safety layers proven alone: a real watchdog bite on a hung main loop, and the step interrupt's deep-end limit.
import { afterEach, describe, expect, it } from 'vitest';
import { watchdogConfig } from 'avr8js';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { depthLimitSteps } from '../../hardware/depth-bounds.ts';
import { pen as description, stepsPerMm } from '../../hardware/description.ts';
import { PenDevice } from '../../hal/device.ts';
import { homedVirtualPen, runningVirtualPen } from './virtual-session.ts';

const { WDTCSR, MCUSR } = watchdogConfig;
const WDE = 0x08, WDIE = 0x40, WDCE = 0x10, WDRF = 0x08;
const WDR = 0x95a8;

let pen: VirtualPen;
let device: PenDevice;

afterEach(async () => {
  await (device as PenDevice | undefined)?.close();
  await pen.stop();
});

async function homedPen(): Promise<void> {
  ({ pen, device } = await homedVirtualPen());
}

async function runningPen(): Promise<void> {
  ({ pen, device } = await runningVirtualPen());
}

const carriageSteps = (): number => Math.round(pen.plant.carriageMm * stepsPerMm);

/** The watchdog period WDTCSR selects: 2K << WDP cycles of the 128 kHz oscillator (datasheet table 10-3). */
function watchdogPeriodMs(wdtcsr: number): number {
  const wdp = ((wdtcsr & 0x20) >> 2) | (wdtcsr & 0x07);
  return (2048 << wdp) / 128;
}

describe('the watchdog alone: a hung main loop', () => {
  it('bites one period after the last kick: MCU restarted, cause watchdog, motor off, needle home', { tags: ['REQ-WATCHDOG'] }, async () => {
    await runningPen();
    await pen.stop();  // from here the MCU runs alone, instruction by instruction
    // The firmware's own setting: system-reset mode (WDE, no WDIE), wdt_enable(WDTO_60MS) = WDP 010: 8K cycles, 64 ms.
    const wdtcsr = pen.mcu.data[WDTCSR] ?? 0;
    expect(wdtcsr & (WDE | WDIE)).toBe(WDE);
    const periodMs = watchdogPeriodMs(wdtcsr);
    expect(periodMs).toBeGreaterThanOrEqual(description.timing.watchdogTimeoutMs);
    expect(periodMs).toBeLessThan(description.timing.heartbeatTimeoutMs);  // the watchdog, not host silence, must act

    const hangMs = pen.simTimeMs;
    const bitesBefore = pen.watchdogBites;
    const kicks = pen.hangFirmware();
    // Hung within a main-loop pass: spinning on a former kick, interrupts enabled, the needle still driven.
    expect(pen.runUntil(() => kicks.includes(pen.mcu.pc), 5)).not.toBeNull();
    expect(pen.mcu.interruptsEnabled).toBe(true);
    expect(pen.plant.motorDrive()).toBeGreaterThan(0);
    const lastKickMs = pen.lastWatchdogKickMs ?? Number.NaN;
    expect(lastKickMs).toBeLessThanOrEqual(hangMs + 5);

    expect(pen.runUntil(() => pen.plant.motorDrive() === 0, periodMs + 10)).not.toBeNull();
    const motorOffMs = pen.simTimeMs - hangMs;
    expect(pen.watchdogBites).toBe(bitesBefore + 1);
    // The bite is the watchdog period after the last WDR, to the instruction; the hang came at most a pass later.
    expect(Math.abs(pen.simTimeMs - lastKickMs - periodMs)).toBeLessThan(0.01);
    expect(motorOffMs).toBeLessThanOrEqual(periodMs + 0.01);
    expect(motorOffMs).toBeGreaterThan(periodMs - 5);
    // The restart lifted the hang (a transient fault): the kicks are WDR again.
    for (const pc of kicks) expect(pen.mcu.progMem[pc]).toBe(WDR);

    expect(pen.runUntil(() => carriageSteps() <= 1, 1000)).not.toBeNull();
    const needleHomeMs = pen.simTimeMs - hangMs;
    expect(needleHomeMs).toBeLessThan(periodMs + 400);
    expect(pen.plant.motorDrive()).toBe(0);

    pen.start();
    await device.close();
    device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
    expect(device.identity.resetCause).toBe('watchdog');
    expect(await device.status()).toMatchObject({ state: 'fault', fault: 'watchdog_reset', homed: false });
    expect(pen.plant.motorDrive()).toBe(0);
    expect(carriageSteps()).toBeLessThanOrEqual(1);
  });

  it('models the chip after a bite: WDE held by WDRF, running at 16 ms until the firmware turns it off in .init3', () => {
    pen = new VirtualPen();
    pen.resetMcu('watchdog');
    const { mcu } = pen;
    expect(mcu.data[WDTCSR]).toBe(WDE);
    expect(watchdogPeriodMs(mcu.data[WDTCSR] ?? 0)).toBe(16);
    // The timed sequence cannot clear WDE while WDRF is set ...
    mcu.writeData(WDTCSR, WDCE | WDE);
    mcu.writeData(WDTCSR, 0);
    expect((mcu.data[WDTCSR] ?? 0) & WDE).toBe(WDE);
    // ... which is why the firmware clears MCUSR first, within its first instructions.
    expect(pen.runUntil(() => ((mcu.data[WDTCSR] ?? 0) & WDE) === 0, 1)).not.toBeNull();
    expect((mcu.data[MCUSR] ?? 0) & WDRF).toBe(0);
  });
});

describe('the step interrupt alone: its deep-end limit', () => {
  it('stops a move whose target RAM was corrupted to 10 mm at the limit, to the microstep', { tags: ['REQ-DEPTH-ABSOLUTE-LIMIT'] }, async () => {
    await homedPen();
    await device.depth.moveTo(0.5);
    // DEPTH_LIMIT_STEPS in the firmware's generated header: the same derivation (tests/unit/generated.test.ts).
    const limit = { steps: depthLimitSteps, source: 'DEPTH_LIMIT_STEPS' };
    expect(limit.steps).toBeGreaterThan(1.5 * stepsPerMm);
    expect(pen.ramAddress('target')).toBeGreaterThan(0);
    pen.plant.resetDeepest();
    // A legal move, accepted; the MCU is paused between run slices while the reply is handled, so the move is under way.
    await device.command('move_to', { depthUm: 1500 });
    const corrupt = new Uint8Array(4);
    new DataView(corrupt.buffer).setInt32(0, Math.round(10 * stepsPerMm), true);
    pen.writeRam('target', corrupt);
    expect(carriageSteps()).toBeLessThan(1.5 * stepsPerMm);
    // The pen reports the corrupted target (as depth) and, once the interrupt has ended the move, no motion.
    await device.waitFor((t) => !t.moving && t.targetDepthMm > description.depthWindowMm.max, 2000, 'the move to end');
    await pen.clock.sleep(50);
    const deepestSteps = pen.plant.deepestCarriageMm * stepsPerMm;
    // It went past the commanded 1.5 mm (the corruption took), and stopped at the limit: never past it.
    expect(deepestSteps, `${limit.source} = ${limit.steps}`).toBeLessThanOrEqual(limit.steps + 1e-6);
    expect(deepestSteps, `${limit.source} = ${limit.steps}`).toBeGreaterThanOrEqual(limit.steps - 1);
    expect(carriageSteps()).toBeGreaterThanOrEqual(limit.steps - 1);
  });
});
