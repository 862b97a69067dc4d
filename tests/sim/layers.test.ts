// Safety layers proven alone: a real watchdog bite on a hung main loop, and the step interrupt's deep-end limit.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { watchdogConfig } from 'avr8js';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { hasRamSymbol } from '../../hardware/sim/elf-symbols.ts';
import { pen as description, stepsPerMm } from '../../hardware/description.ts';
import { PenDevice } from '../../hal/device.ts';
import { homedVirtualPen, runningVirtualPen } from './virtual-session.ts';

const firmwareDir = fileURLToPath(new URL('../../firmware/', import.meta.url));
const elfPath = join(firmwareDir, 'build/pen.elf');
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
  it('bites one period after the last kick: MCU restarted, cause watchdog, motor off, needle home', async () => {
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

/** The step interrupt's deep-end limit in microsteps, and where it was found. */
function stepLimit(): { readonly steps: number; readonly source: string } {
  if (hasRamSymbol(elfPath, 'limit_steps')) {
    const bytes = pen.readRam('limit_steps', 4);
    return { steps: new DataView(bytes.buffer, bytes.byteOffset, 4).getInt32(0, true), source: 'RAM symbol limit_steps' };
  }
  return limitFromMacros();
}

/**
 * Without a limit_steps variable the limit is a compile-time constant: a macro seen by stepper.c named like
 * *LIMIT_STEPS or DEPTH_MAX_STEPS, else the window's deep end (DEPTH_MAX_UM * STEPS_PER_MM / 1000). avr-gcc
 * evaluates it with stepper.c's own macros, so any expression works.
 */
function limitFromMacros(): { readonly steps: number; readonly source: string } {
  const flags = ['-fdata-sections', '-mmcu=atmega328p', '-DF_CPU=16000000UL', '-DBUILD_ID=0UL', '-Iinclude', '-Igenerated'];
  const stepper = 'src/avr/stepper.c';
  const failure = (why: string): Error =>
    new Error(`cannot find the step interrupt's deep-end limit: no RAM symbol limit_steps in ${elfPath}, and ${why}; update stepLimit() in tests/sim/layers.test.ts`);
  let macros: string;
  try {
    macros = execFileSync('avr-gcc', [...flags, '-E', '-dM', stepper], { cwd: firmwareDir, encoding: 'utf8' });
  } catch (error) {
    throw failure(`${stepper} does not preprocess (${error instanceof Error ? error.message : String(error)})`);
  }
  const names = [...macros.matchAll(/^#define (\w+) /gm)].map((match) => match[1] ?? '');
  const named = names.find((name) => /LIMIT_STEPS$|^DEPTH_MAX_STEPS$/.test(name));
  const expression = named ?? (names.includes('DEPTH_MAX_UM') && names.includes('STEPS_PER_MM') ? '(int32_t)DEPTH_MAX_UM * STEPS_PER_MM / 1000' : null);
  if (expression === null) throw failure('no macro *LIMIT_STEPS, DEPTH_MAX_STEPS, or DEPTH_MAX_UM and STEPS_PER_MM');
  const dir = mkdtempSync(join(tmpdir(), 'pen-limit-'));
  try {
    const source = join(dir, 'probe.c');
    writeFileSync(source, `#include "${join(firmwareDir, stepper)}"\nconst int32_t layers_probe_limit = (${expression});\n`);
    try {
      execFileSync('avr-gcc', [...flags, '-Os', '-c', '-o', join(dir, 'probe.o'), source], { cwd: firmwareDir, stdio: 'pipe' });
    } catch (error) {
      throw failure(`evaluating ${expression} with ${stepper} failed (${error instanceof Error ? error.message : String(error)})`);
    }
    execFileSync('avr-objcopy', ['-O', 'binary', '-j', '.rodata.layers_probe_limit', join(dir, 'probe.o'), join(dir, 'probe.bin')]);
    const bytes = readFileSync(join(dir, 'probe.bin'));
    if (bytes.length !== 4) throw failure(`evaluating ${expression} gave ${bytes.length} bytes`);
    return { steps: bytes.readInt32LE(0), source: named === undefined ? `the window's deep end, ${expression}` : `macro ${named}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the step interrupt alone: its deep-end limit', () => {
  it('stops a move whose target RAM was corrupted to 10 mm at the limit, to the microstep', async () => {
    await homedPen();
    await device.depth.moveTo(0.5);
    const limit = stepLimit();
    expect(limit.steps, limit.source).toBeGreaterThan(1.5 * stepsPerMm);
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
