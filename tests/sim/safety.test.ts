// The firmware's safety core through the wire: every interlock and plant fault, host silence, STOP, watchdog.
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { pen as description, stepsPerMm } from '../../hardware/description.ts';
import { HostRefusedError, PenDevice } from '../../hal/device.ts';
import { refusal } from '../refusal.ts';
import { runningVirtualPen, clearFittedCartridge, armingDateMs } from './virtual-session.ts';
import { FRAME_STOP, type FaultName } from '../../hardware/generated/protocol.ts';

let pen: VirtualPen;
let device: PenDevice;

afterEach(async () => {
  await (device as PenDevice | undefined)?.close();  // a test may not connect one
  await pen.stop();
});

async function runningPen(seed = 1): Promise<void> {
  ({ pen, device } = await runningVirtualPen(seed));
}

/** Home: within one microstep of where the home switch opens (0 mm). */
const carriageSteps = (): number => Math.round(pen.plant.carriageMm * stepsPerMm);
async function waitForNeedleHome(): Promise<void> {
  for (let ms = 0; ms < 1000 && carriageSteps() > 1; ms += 10) await pen.clock.sleep(10);
  expect(carriageSteps()).toBeLessThanOrEqual(1);
}

interface Hazard {
  readonly fault: FaultName;
  readonly inject: () => void;
  /** Undoes the cause; absent when the cause is gone once the pen is safe (motor off). */
  readonly remove?: () => void;
}

const hazards: Record<string, Hazard> = {
  'e-stop tripped': { fault: 'estop', inject: () => pen.setInput('estop', true), remove: () => pen.setInput('estop', false) },
  'cartridge pulled': {
    fault: 'cartridge_removed', inject: () => pen.setInput('cartridgePresent', false), remove: () => pen.setInput('cartridgePresent', true),
  },
  'over-temperature': {
    fault: 'over_temperature', inject: () => { pen.plant.forcedTemperatureC = 60; }, remove: () => { pen.plant.forcedTemperatureC = null; },
  },
  'NTC open': { fault: 'temperature_sensor', inject: () => { pen.plant.ntcFault = 'open'; }, remove: () => { pen.plant.ntcFault = null; } },
  'NTC shorted': { fault: 'temperature_sensor', inject: () => { pen.plant.ntcFault = 'short'; }, remove: () => { pen.plant.ntcFault = null; } },
  'supply sagging to 9 V': { fault: 'supply_out_of_range', inject: () => { pen.plant.supplyVolts = 9; }, remove: () => { pen.plant.supplyVolts = 12; } },
  'supply at 15 V': { fault: 'supply_out_of_range', inject: () => { pen.plant.supplyVolts = 15; }, remove: () => { pen.plant.supplyVolts = 12; } },
  'depth sensor open': {
    fault: 'depth_sensor', inject: () => { pen.plant.depthSensorFault = 'open'; }, remove: () => { pen.plant.depthSensorFault = null; },
  },
  'tach lost (stall)': { fault: 'motor_stall', inject: () => { pen.plant.tachBroken = true; } },
  'needle jammed': { fault: 'motor_overcurrent', inject: () => pen.plant.setLoad('jam') },
  'carriage slipped 0.3 mm': { fault: 'depth_mismatch', inject: () => pen.plant.slip(0.3) },
  'home switch stuck pressed': { fault: 'home_switch_stuck', inject: () => pen.plant.setHomeSwitchStuck(true), remove: () => pen.plant.setHomeSwitchStuck(false) },
};

/** The requirement (hardware/requirements.json) each injected fault verifies, besides the fault latch itself. */
const requirementOf: Partial<Record<FaultName, string>> = {
  estop: 'REQ-ESTOP', cartridge_removed: 'REQ-CARTRIDGE-INTERLOCK', over_temperature: 'REQ-OVERTEMP', temperature_sensor: 'REQ-OVERTEMP',
  supply_out_of_range: 'REQ-SUPPLY', depth_sensor: 'REQ-SENSOR-PLAUSIBILITY', motor_stall: 'REQ-JAM', motor_overcurrent: 'REQ-JAM',
  depth_mismatch: 'REQ-SENSOR-PLAUSIBILITY', home_switch_stuck: 'REQ-SENSOR-PLAUSIBILITY',
};

describe('every interlock and plant fault, injected while the needle runs', () => {
  for (const [name, hazard] of Object.entries(hazards)) {
    it(`${name}: motor off, needle home, ${hazard.fault} reported, arming refused until cleared`, { tags: ['REQ-FAULT-LATCH', requirementOf[hazard.fault]].filter((tag) => tag !== undefined) }, async () => {
      await runningPen();
      hazard.inject();
      const faulted = await device.waitFor((t) => t.state === 'fault', 500, name).catch((e: unknown) => e);
      expect(faulted).toMatchObject({ fault: hazard.fault });
      expect(pen.plant.motorDrive()).toBe(0);
      await waitForNeedleHome();
      expect(device.telemetry?.fault).toBe(hazard.fault);
      expect(await refusal(device.arm(armingDateMs))).toBe('not_allowed_in_fault');
      await expect(device.needle.start(100)).rejects.toThrow(HostRefusedError);
      expect(await refusal(device.command('start_needle', { strokesPerSecond: 100 }))).toBe('not_allowed_in_fault');
      if (hazard.remove !== undefined) {
        if (hazard.fault !== 'home_switch_stuck') expect(await refusal(device.clearFault())).toBe('fault_cause_present');
        hazard.remove();
        await pen.clock.sleep(20);
      }
      await device.clearFault();
      const status = await device.status();
      const mustRehome = ['estop', 'depth_mismatch', 'depth_sensor', 'home_switch_stuck'].includes(hazard.fault);
      expect(status.state).toBe(mustRehome ? 'homing_required' : 'idle');
      expect(pen.plant.motorDrive()).toBe(0);
    });
  }
});

describe('host silence', () => {
  it('goes safe within the heartbeat timeout + 1 ms of the last heartbeat, in simulated time', { tags: ['REQ-HEARTBEAT'] }, async () => {
    await runningPen();
    device.setHeartbeat(false);
    await device.heartbeat();
    const lastHeartbeatAnsweredMs = pen.simTimeMs;
    await pen.stop();  // from here the MCU runs alone, instruction by instruction
    const cycles = pen.runUntil(() => pen.plant.motorDrive() === 0, 400);
    expect(cycles).not.toBeNull();
    const silenceMs = pen.simTimeMs - lastHeartbeatAnsweredMs;
    const timeoutMs = description.timing.heartbeatTimeoutMs;
    expect(silenceMs).toBeGreaterThan(timeoutMs - 1);
    expect(silenceMs).toBeLessThanOrEqual(timeoutMs + 1);
    pen.start();
    const status = await device.status();
    expect(status).toMatchObject({ state: 'fault', fault: 'heartbeat_lost' });
  });

  it('refuses to arm without a fresh heartbeat', { tags: ['REQ-HEARTBEAT', 'REQ-ARM-PRECONDITIONS'] }, async () => {
    pen = new VirtualPen();
    pen.start();
    device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
    await device.depth.home();
    await device.depth.moveTo(1.0);
    await clearFittedCartridge(device);
    device.setHeartbeat(false);
    await pen.clock.sleep(description.timing.heartbeatTimeoutMs + 20);
    expect(await refusal(device.arm(armingDateMs))).toBe('heartbeat_stale');
    device.setHeartbeat(true);
    await device.arm(armingDateMs);
    expect(device.telemetry?.state).toBe('armed');
  });
});

describe('STOP', () => {
  it('turns the motor off, disarms and retracts the needle, without latching a fault', { tags: ['REQ-STOP'] }, async () => {
    await runningPen();
    await device.stop();
    expect(pen.plant.motorDrive()).toBe(0);
    await waitForNeedleHome();
    expect(await device.status()).toMatchObject({ state: 'idle', fault: 'none' });
  });
});

describe('arming preconditions', () => {
  it('names each missing precondition', { tags: ['REQ-ARM-PRECONDITIONS', 'REQ-CARTRIDGE-INTERLOCK'] }, async () => {
    pen = new VirtualPen();
    pen.start();
    device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
    expect(await refusal(device.arm(armingDateMs))).toBe('not_homed');
    await device.depth.home();
    expect(await refusal(device.arm(armingDateMs))).toBe('cartridge_not_cleared');
    const { rom } = (await device.settledParts()).cartridge;
    pen.setInput('cartridgePresent', false);
    await pen.clock.sleep(5);
    expect(await refusal(device.arm(armingDateMs))).toBe('cartridge_missing');
    expect(await refusal(device.clearCartridge(rom))).toBe('cartridge_missing');
    pen.setInput('cartridgePresent', true);
    await clearFittedCartridge(device);
    expect(await refusal(device.arm(armingDateMs))).toBe('depth_outside_window');
    await device.depth.moveTo(1.0);
    await device.arm(armingDateMs);
    // Pulling the cartridge while armed is a fault; refitting it needs a new clearance.
    pen.setInput('cartridgePresent', false);
    await device.waitFor((t) => t.state === 'fault', 100, 'cartridge fault').catch(() => {});
    pen.setInput('cartridgePresent', true);
    await pen.clock.sleep(5);
    await device.clearFault();
    expect((await device.status()).cartridgeCleared).toBe(false);
    expect(await refusal(device.arm(armingDateMs))).toBe('cartridge_not_cleared');
  });
});

describe('watchdog bite', () => {
  it('reboots into the safe state with the cause reported', { tags: ['REQ-WATCHDOG'] }, async () => {
    await runningPen();
    pen.resetMcu('watchdog');
    expect(pen.plant.motorDrive()).toBe(0);
    const again = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
    try {
      expect(again.identity.resetCause).toBe('watchdog');
      expect(await again.status()).toMatchObject({ state: 'fault', fault: 'watchdog_reset', homed: false });
      await waitForNeedleHome();
      await again.clearFault();
      expect((await again.status()).state).toBe('homing_required');
    } finally {
      await again.close();
    }
  });
});

describe('STOP in the receive interrupt', () => {
  it('stops the motor on the STOP byte alone, with no frame and no handshake, within a millisecond', { tags: ['REQ-STOP'] }, async () => {
    await runningPen();
    const port = pen.openPort();  // a second client: the firmware does not care who sends STOP
    port.write(Uint8Array.of(FRAME_STOP));
    await pen.clock.sleep(1);
    expect(pen.plant.motorDrive()).toBe(0);
    await waitForNeedleHome();
  });
});

describe('outputs from the first instructions', () => {
  it('drives every output to its safe level within the first microseconds after any reset, before main runs', { tags: ['REQ-RESET-SAFE'] }, () => {
    pen = new VirtualPen();
    for (const reset of ['power-on', 'external', 'watchdog'] as const) {
      if (reset !== 'power-on') pen.resetMcu(reset);
      const mcu = pen.mcu;
      const driven = (): boolean => {
        const portB = mcu.data[0x25] ?? 0, ddrB = mcu.data[0x24] ?? 0, portD = mcu.data[0x2b] ?? 0, ddrD = mcu.data[0x2a] ?? 0;
        const enableOff = (ddrB & 0x04) !== 0 && (portB & 0x04) !== 0;  // stepper enable, active low: high
        const motorOff = (ddrD & 0xc0) === 0xc0 && (portD & 0xc0) === 0;  // motor PWM and enable: low
        return enableOff && motorOff;
      };
      const cycles = pen.runUntil(driven, 1);
      expect(cycles).not.toBeNull();
      expect(cycles ?? Infinity).toBeLessThan(100);  // .init3 runs before .data/.bss setup and main
    }
  });
});
