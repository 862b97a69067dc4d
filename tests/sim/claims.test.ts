// Safety claims of the firmware that had no test of their own, through the wire on virtual time: a homing failure,
// the speed tolerance, a home switch stuck during homing, the interlock refusals, and every refusal of `arm`, each by
// its exact code with the motor left off.
import { afterEach, describe, expect, it } from 'vitest';
import { defaultFirmwarePath, VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { elfPathFor, elfSymbols } from '../../hardware/sim/elf-symbols.ts';
import { pen as description, stepsPerMm } from '../../hardware/description.ts';
import { PenDevice, PenRefusedError, type Telemetry } from '../../hal/device.ts';
import { faultInfo, messageSpecs, type ErrorCodeName, type FaultName, type HostMessageName, type MessageFields } from '../../hardware/generated/protocol.ts';
import { refusal } from '../refusal.ts';
import { dayNumber } from '../../hal/parts.ts';
import { clearFittedCartridge, armingDateMs } from './virtual-session.ts';

const armingDay = dayNumber(armingDateMs);

let pen: VirtualPen;
let device: PenDevice;

afterEach(async () => {
  await (device as PenDevice | undefined)?.close();  // a test may not connect one
  await pen.stop();
});

async function connectedPen(): Promise<void> {
  pen.start();
  device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
}

/** Homed, needle at depthMm (inside the window: arming needs it there), cartridge cleared. */
async function readyPen(depthMm = 1.0): Promise<void> {
  pen = new VirtualPen({ seed: 1 });
  await connectedPen();
  await device.depth.home();
  await device.depth.moveTo(depthMm);
  await clearFittedCartridge(device);
}

/** Home: within one microstep of where the home switch opens (0 mm), or behind it against the mechanical stop. */
const carriageSteps = (): number => Math.round(pen.plant.carriageMm * stepsPerMm);
async function waitForNeedleHome(): Promise<void> {
  for (let ms = 0; ms < 1000 && carriageSteps() > 1; ms += 10) await pen.clock.sleep(10);
  expect(carriageSteps()).toBeLessThanOrEqual(1);
}

/** The pen went safe for `fault`: latched and reported in telemetry, motor drive 0, needle back home. */
async function expectWentSafe(fault: FaultName, withinMs: number): Promise<void> {
  const faulted = await device.waitFor((t) => t.state === 'fault', withinMs, fault).catch((e: unknown) => e);
  expect(faulted).toMatchObject({ fault });
  expect(pen.plant.motorDrive()).toBe(0);
  await waitForNeedleHome();
  expect(device.telemetry).toMatchObject({ state: 'fault', fault, needleOn: false });
  expect(await device.status()).toMatchObject({ state: 'fault', fault, needleOn: false, homed: false });
  expect(pen.plant.motorDrive()).toBe(0);
}

describe('firmware faults', () => {
  it('homing_failed: a home switch that never closes ends homing in the fault; motor off, needle home, homing needed again', { tags: ['REQ-HOMING', 'REQ-FAULT-LATCH'] }, async () => {
    await readyPen(1.5);
    pen.plant.setHomeSwitchBroken(true);
    await device.command('home', {});
    // The seek covers the homing travel (3 mm at 3200 steps/s: 1.5 s) before it gives up.
    await expectWentSafe('homing_failed', 3000);
    expect(await refusal(device.arm(armingDateMs))).toBe('not_allowed_in_fault');
    await device.clearFault();
    expect((await device.status()).state).toBe('homing_required');
    expect(await refusal(device.arm(armingDateMs))).toBe('not_homed');
    pen.plant.setHomeSwitchBroken(false);  // the switch repaired, homing succeeds
    await device.depth.home();
    expect(await device.status()).toMatchObject({ state: 'idle', homed: true, fault: 'none' });
  });

  it('speed_tolerance: a needle that cannot reach its speed (heavy load, 10.6 V supply inside its range) goes safe with speed_tolerance, not stall or over-current', { tags: ['REQ-RATE-ACCURACY'] }, async () => {
    await readyPen(1.5);
    pen.plant.setLoad('heavy');
    pen.plant.supplyVolts = 10.6;  // the supply interlock allows 10.5–13.5 V
    await pen.clock.sleep(20);
    await device.arm(armingDateMs);
    const running: Telemetry[] = [];
    device.onTelemetry((t) => { if (t.state === 'running') running.push(t); });
    await device.needle.start(150);
    // At-speed timeout after the 0.3 s ramp: about 1.3 s after the start.
    const faulted = await device.waitFor((t) => t.state === 'fault', 3000, 'speed_tolerance').catch((e: unknown) => e);
    expect(faulted).toMatchObject({ fault: 'speed_tolerance' });
    // Up to the fault the tach kept coming (not a stall), the current stayed under the limit (not a jam) and the
    // supply inside its range: only the speed was off, 12 % short of 150 strokes/s.
    const last = running.at(-1);
    expect(last?.strokesPerSecond).toBeGreaterThan(120);
    expect(last?.strokesPerSecond).toBeLessThan(150 * (1 - description.needleDrive.speedTolerancePercent / 100));
    expect(Math.max(...running.map((t) => t.motorCurrentMa))).toBeLessThan(description.needleDrive.currentLimitMa);
    expect(Math.min(...running.map((t) => t.supplyVolts))).toBeGreaterThanOrEqual(description.limits.supplyMinMv / 1000);
    expect(pen.plant.motorDrive()).toBe(0);
    await waitForNeedleHome();
    expect(await device.status()).toMatchObject({ state: 'fault', fault: 'speed_tolerance', needleOn: false });
    expect(pen.plant.motorDrive()).toBe(0);
    // A speed fault keeps the position: cleared, the pen is idle again.
    await device.clearFault();
    expect((await device.status()).state).toBe('idle');
  });

  it('home_switch_stuck: a switch that sticks pressed during the back-off ends homing in the fault; motor off, needle home', { tags: ['REQ-HOMING', 'REQ-SENSOR-PLAUSIBILITY'] }, async () => {
    await readyPen(0.5);
    await device.command('home', {});
    await pen.stop();  // instruction by instruction: catch the moment the seek closes the switch
    expect(pen.runUntil(() => pen.plant.carriageMm < 0, 1000)).not.toBeNull();
    pen.plant.resetDeepest();
    pen.plant.setHomeSwitchStuck(true);
    pen.start();
    // The back-off creeps out at 800 steps/s for at most 0.5 mm waiting for the switch to open.
    await expectWentSafe('home_switch_stuck', 2000);
    expect(pen.plant.deepestCarriageMm).toBeLessThanOrEqual(description.depthAxis.backoffMaxUm / 1000 + 1 / stepsPerMm);
    await device.clearFault();
    expect((await device.status()).state).toBe('homing_required');
  });

  it('home_switch_stuck: a switch already stuck pressed when homing starts with the needle out goes safe; motor off, needle home, never deeper than it was', { tags: ['REQ-HOMING', 'REQ-SENSOR-PLAUSIBILITY'] }, async () => {
    await readyPen(1.5);
    // A reset with the needle out (the reset pin, a brown-out): the position is unknown and the pen must home.
    await device.close();
    pen.resetMcu('external');
    device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
    expect((await device.status()).state).toBe('homing_required');
    pen.plant.setHomeSwitchStuck(true);
    pen.plant.resetDeepest();
    await device.command('home', {});
    await expectWentSafe('home_switch_stuck', 3000);
    expect(pen.plant.deepestCarriageMm).toBeLessThanOrEqual(1.5 + 1 / stepsPerMm);
  });
});

// The 1 kHz check latches any interlock as a fault within a millisecond, and in FAULT the dispatcher refuses
// with not_allowed_in_fault; the command's own interlock check acts when the interlock trips as the command
// arrives, inside that millisecond. The MCU is stopped at the dispatcher with the command in hand, the e-stop
// opens there, and the command must see it.
describe('interlock refusals', () => {
  const elf = elfPathFor(defaultFirmwarePath);

  async function commandAsEstopTrips<K extends HostMessageName>(name: K, fields: MessageFields[K]): Promise<unknown> {
    const linkExecute = elfSymbols(elf).find((symbol) => symbol.name === 'link_execute' && /^[tT]$/.test(symbol.type));
    if (linkExecute === undefined) throw new Error(`no link_execute in ${elf}`);
    const entryWord = linkExecute.address / 2;
    const id = messageSpecs[name].id;
    await pen.stop();
    const reply = device.command(name, fields).then(() => 'accepted', (e: unknown) => e);
    // At link_execute's first instruction its first argument (r25:r24) points at the request: its first byte is the id.
    const cpu = pen.mcu;
    const atDispatch = (): boolean => cpu.pc === entryWord && cpu.data[(cpu.data[24] ?? 0) | ((cpu.data[25] ?? 0) << 8)] === id;
    expect(pen.runUntil(atDispatch, 50)).not.toBeNull();
    pen.setInput('estop', true);
    pen.start();
    return reply;
  }

  function expectInterlockRefusal(error: unknown, interlock: FaultName): void {
    expect(error).toBeInstanceOf(PenRefusedError);
    const refused = error as PenRefusedError;
    expect(refused.code).toBe('interlock_active');
    expect(faultInfo[refused.detail]?.name).toBe(interlock);
  }

  it('arm is refused with interlock_active naming the e-stop when it trips as arm arrives; never armed, motor off', { tags: ['REQ-ESTOP', 'REQ-ARM-PRECONDITIONS'] }, async () => {
    await readyPen(1.0);
    const states: string[] = [];
    device.onTelemetry((t) => states.push(t.state));
    expectInterlockRefusal(await commandAsEstopTrips('arm', { todayDay: armingDay }), 'estop');
    await pen.clock.sleep(20);
    expect(pen.plant.motorDrive()).toBe(0);
    expect(await device.status()).toMatchObject({ state: 'fault', fault: 'estop', needleOn: false });
    expect(states).not.toContain('armed');
  });

  it('home is refused with interlock_active naming the e-stop when it trips as home arrives; homing never starts, motor off', { tags: ['REQ-ESTOP'] }, async () => {
    await readyPen(1.0);
    const states: string[] = [];
    device.onTelemetry((t) => states.push(t.state));
    expectInterlockRefusal(await commandAsEstopTrips('home', {}), 'estop');
    await pen.clock.sleep(20);
    expect(pen.plant.motorDrive()).toBe(0);
    expect(await device.status()).toMatchObject({ state: 'fault', fault: 'estop', needleOn: false });
    expect(states).not.toContain('homing');
  });

  it('with the e-stop fault latched, arm and home are refused with not_allowed_in_fault naming estop; motor off, state kept', { tags: ['REQ-ESTOP', 'REQ-FAULT-LATCH'] }, async () => {
    await readyPen(1.0);
    pen.setInput('estop', true);
    await device.waitFor((t) => t.state === 'fault', 100, 'e-stop fault').catch(() => {});
    for (const command of [device.arm(armingDateMs), device.depth.home()]) {
      const error = await command.then(() => null, (e: unknown) => e);
      expect(error).toMatchObject({ code: 'not_allowed_in_fault', detail: 2 });
      expect(faultInfo[(error as PenRefusedError).detail]?.name).toBe('estop');
    }
    expect(pen.plant.motorDrive()).toBe(0);
    expect(await device.status()).toMatchObject({ state: 'fault', fault: 'estop', needleOn: false });
  });
});

describe('every refusal of arm', () => {
  /** arm refused with `code`; the state is what it was, the motor stays off and cannot be started. */
  async function expectArmRefused(code: ErrorCodeName): Promise<PenRefusedError> {
    const before = await device.status();
    const error = await device.arm(armingDateMs).then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(PenRefusedError);
    expect((error as PenRefusedError).code).toBe(code);
    const after = await device.status();
    expect(after.state).toBe(before.state);
    expect(after.needleOn).toBe(false);
    expect(pen.plant.motorDrive()).toBe(0);
    const start = await refusal(device.command('start_needle', { strokesPerSecond: 100 }));
    expect(start).toBe(before.state === 'fault' ? 'not_allowed_in_fault' : 'not_allowed_in_state');
    expect(pen.plant.motorDrive()).toBe(0);
    return error as PenRefusedError;
  }

  it('not_homed: before the first homing (cartridge cleared)', { tags: ['REQ-ARM-PRECONDITIONS', 'REQ-HOMING'] }, async () => {
    pen = new VirtualPen({ seed: 1 });
    await connectedPen();
    await clearFittedCartridge(device);
    await expectArmRefused('not_homed');
    expect(device.telemetry?.state).toBe('homing_required');
  });

  it('not_allowed_in_state: while homing', { tags: ['REQ-ARM-PRECONDITIONS'] }, async () => {
    await readyPen(1.0);
    await device.command('home', {});
    await device.waitFor((t) => t.state === 'homing', 100, 'homing');
    await expectArmRefused('not_allowed_in_state');
    await device.waitFor((t) => t.state === 'idle' && t.homed, 2000, 'homing done');
  });

  it('not_allowed_in_fault: with a fault latched, naming it', { tags: ['REQ-ARM-PRECONDITIONS', 'REQ-FAULT-LATCH'] }, async () => {
    await readyPen(1.0);
    pen.plant.setLoad('jam');
    await device.arm(armingDateMs);
    await device.needle.start(100);
    await device.waitFor((t) => t.state === 'fault', 1000, 'jam').catch(() => {});
    await waitForNeedleHome();
    const error = await expectArmRefused('not_allowed_in_fault');
    expect(faultInfo[error.detail]?.name).toBe('motor_overcurrent');
  });

  it('calibration_invalid: both calibration copies in EEPROM unreadable', { tags: ['REQ-ARM-PRECONDITIONS', 'REQ-CALIBRATION-STORAGE'] }, async () => {
    pen = new VirtualPen({ seed: 1 });
    pen.eeprom.memory.fill(0x00);  // not blank, and no valid record anywhere
    await connectedPen();
    expect((await device.calibration()).source).toBe('invalid');
    await device.depth.home();
    await device.depth.moveTo(1.0);
    await clearFittedCartridge(device);
    await expectArmRefused('calibration_invalid');
  });

  it('cartridge_missing: the cartridge taken out after it was cleared', { tags: ['REQ-ARM-PRECONDITIONS', 'REQ-CARTRIDGE-INTERLOCK'] }, async () => {
    await readyPen(1.0);
    pen.setInput('cartridgePresent', false);
    await pen.clock.sleep(5);
    await expectArmRefused('cartridge_missing');
  });

  it('cartridge_not_cleared: a cartridge fitted but never cleared', { tags: ['REQ-ARM-PRECONDITIONS', 'REQ-CARTRIDGE-INTERLOCK'] }, async () => {
    pen = new VirtualPen({ seed: 1 });
    await connectedPen();
    await device.depth.home();
    await device.depth.moveTo(1.0);
    await expectArmRefused('cartridge_not_cleared');
  });

  it('heartbeat_stale: no heartbeat for longer than the timeout; arms once heartbeats resume', { tags: ['REQ-ARM-PRECONDITIONS', 'REQ-HEARTBEAT'] }, async () => {
    await readyPen(1.0);
    device.setHeartbeat(false);
    await pen.clock.sleep(description.timing.heartbeatTimeoutMs + 20);
    await expectArmRefused('heartbeat_stale');
    device.setHeartbeat(true);
    await pen.clock.sleep(10);
    await device.arm(armingDateMs);
    expect(device.telemetry?.state).toBe('armed');
  });

  it('depth_outside_window: the needle at home, outside the window', { tags: ['REQ-ARM-PRECONDITIONS', 'REQ-DEPTH-WINDOW'] }, async () => {
    pen = new VirtualPen({ seed: 1 });
    await connectedPen();
    await device.depth.home();
    await clearFittedCartridge(device);
    await expectArmRefused('depth_outside_window');
  });
});
