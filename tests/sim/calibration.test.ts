// Depth calibration through the wire (on pens provisioned with the test keys: each write runs on a grant): the window
// holds in true depth once a calibration is stored, the calibration survives resets in EEPROM (two copies), a reset
// mid-write loses nothing, corruption is refused.
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { HostRefusedError, PenDevice } from '../../hal/device.ts';
import { refusal } from '../refusal.ts';
import { provisionedVirtualPen } from './provisioned.ts';
import { clearFittedCartridge, armingDateMs } from './virtual-session.ts';

let pen: VirtualPen;
let device: PenDevice;
afterEach(async () => {
  await device.close();
  await pen.stop();
});

async function connect(): Promise<PenDevice> {
  device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
  return device;
}

/** A pen whose mechanics are off, inside its tolerances: needles 0.025 mm out at home, travel 0.6 % long. */
async function skewedPen(): Promise<void> {
  pen = provisionedVirtualPen({ seed: 4 });
  pen.plant.offsetMm = 0.025;
  pen.plant.scaleError = 0.006;
  pen.start();
  await connect();
}

// What a technician measures on that pen: 1600 / 1.006 steps per true mm and 0.025 mm at home. The depth sensor reads
// the carriage, so the step calibration does not change it.
const measured = { stepsPerMm: 1600 / 1.006, zeroOffsetMm: 0.025 };

async function reconnectAfterReset(cause: 'external' | 'watchdog' = 'external'): Promise<PenDevice> {
  await device.close();
  pen.resetMcu(cause);
  return connect();
}

describe('depth calibration', () => {
  it('starts from the nominal calibration of the pen description', { tags: ['REQ-CALIBRATION-STORAGE'] }, async () => {
    pen = provisionedVirtualPen();
    pen.start();
    expect(await (await connect()).calibration()).toMatchObject({
      stepsPerMm: 1600, zeroOffsetMm: 0, sensorZeroMv: 500, sensorMvPerMm: 1600, source: 'default', storedCount: 0,
    });
  });

  it('makes the depth true once stored, and holds the window in true depth', { tags: ['REQ-DEPTH-ACCURACY', 'REQ-DEPTH-WINDOW'] }, async () => {
    await skewedPen();
    await device.depth.home();
    await device.depth.moveTo(1.0);
    expect(pen.plant.trueDepthMm).toBeGreaterThan(1.029);  // uncalibrated: 31 um too deep
    await device.depth.moveTo(0.5);
    await device.setDepthCalibration(measured);
    await device.depth.moveTo(1.0);
    expect(pen.plant.trueDepthMm).toBeCloseTo(1.0, 2);
    expect(Math.abs(pen.plant.trueDepthMm - 1.0)).toBeLessThan(0.002);
    expect(device.telemetry?.sensedDepthMm).toBeCloseTo(1.0, 1);
    pen.plant.resetDeepest();
    await device.depth.moveTo(2.0);
    expect(pen.plant.deepestCarriageMm * 1.006 + 0.025).toBeLessThanOrEqual(2.0 + 0.001);
    expect(device.telemetry?.state).toBe('idle');  // the sensor agrees with the steps: no mismatch fault
  });

  it('survives resets and a watchdog bite, from EEPROM', { tags: ['REQ-CALIBRATION-STORAGE'] }, async () => {
    await skewedPen();
    await device.setDepthCalibration(measured);
    await pen.clock.sleep(200);  // two copies of 15 bytes at 3.6 ms a byte
    await device.setSensorCalibration({ sensorZeroMv: 510, sensorMvPerMm: 1590 });
    await pen.clock.sleep(200);
    const stored = await (await reconnectAfterReset()).calibration();
    expect(stored).toMatchObject({ source: 'stored', storedCount: 2, zeroOffsetMm: 0.025, sensorZeroMv: 510, sensorMvPerMm: 1590 });
    expect(stored.stepsPerMm).toBeCloseTo(1590.46, 2);
    expect((await (await reconnectAfterReset('watchdog')).calibration()).source).toBe('stored');
  });

  it('loses nothing to a reset in the middle of writing: the old or the new calibration, never neither', { tags: ['REQ-CALIBRATION-STORAGE'] }, async () => {
    const outcomes = new Set<string>();
    for (const resetAfterMs of [5, 30, 60, 80, 110, 150]) {
      await skewedPen();
      await device.setDepthCalibration({ ...measured, zeroOffsetMm: 0.02 });
      await pen.clock.sleep(200);
      await device.setDepthCalibration(measured);
      await pen.clock.sleep(resetAfterMs);
      const after = await (await reconnectAfterReset()).calibration();
      expect(after.source).toBe('stored');
      expect([0.02, 0.025]).toContain(after.zeroOffsetMm);
      outcomes.add(String(after.zeroOffsetMm));
      await device.close();
      await pen.stop();
    }
    expect([...outcomes].sort()).toEqual(['0.02', '0.025']);  // resets landed both before and after the switch-over
    pen = provisionedVirtualPen();
    pen.start();
    await connect();
  });

  it('uses the other copy when one is corrupt, and refuses to arm when both are', { tags: ['REQ-CALIBRATION-STORAGE', 'REQ-ARM-PRECONDITIONS'] }, async () => {
    await skewedPen();
    await device.setDepthCalibration(measured);
    await pen.clock.sleep(200);
    pen.eeprom.memory[3] = (pen.eeprom.memory[3] ?? 0) ^ 0x10;  // a flipped bit in the first copy
    expect((await (await reconnectAfterReset()).calibration()).source).toBe('stored');
    pen.eeprom.memory[32 + 3] = (pen.eeprom.memory[32 + 3] ?? 0) ^ 0x10;  // and in the second
    const broken = await reconnectAfterReset();
    expect((await broken.calibration()).source).toBe('invalid');
    await broken.depth.home();
    await clearFittedCartridge(broken);
    expect(await refusal(broken.arm(armingDateMs))).toBe('calibration_invalid');
  });

  it('refuses values outside the tolerances on the host and in the firmware, and while armed', { tags: ['REQ-CALIBRATION-BOUNDS'] }, async () => {
    pen = provisionedVirtualPen();
    pen.start();
    await connect();
    await expect(device.setDepthCalibration({ ...measured, stepsPerMm: 2000 })).rejects.toThrow(
      new HostRefusedError("steps per mm 2000 steps/mm is outside 1588.09–1612.09 steps/mm (the pen's tolerances)"),
    );
    await expect(device.setDepthCalibration({ ...measured, zeroOffsetMm: 0.5 })).rejects.toThrow(
      "zero offset 0.5 mm is outside -0.03–0.03 mm (the pen's tolerances)",
    );
    await expect(device.setSensorCalibration({ sensorZeroMv: 600, sensorMvPerMm: 1600 })).rejects.toThrow('sensor zero 600 mV is outside 460–540 mV');
    expect(await refusal(device.serviceCommand('set_depth_calibration', { stepsPerMmX100: 200000, zeroOffsetUm: 0 }))).toBe('out_of_range');
    expect(await refusal(device.serviceCommand('set_sensor_calibration', { sensorZeroMv: 500, sensorMvPerMm: 2000 }))).toBe('out_of_range');
    await device.depth.home();
    await device.depth.moveTo(1.0);
    await clearFittedCartridge(device);
    await device.arm(armingDateMs);
    expect(await refusal(device.serviceCommand('set_depth_calibration', { stepsPerMmX100: 160000, zeroOffsetUm: 0 }))).toBe('not_allowed_in_state');
    expect(await refusal(device.serviceCommand('set_sensor_calibration', { sensorZeroMv: 500, sensorMvPerMm: 1600 }))).toBe('not_allowed_in_state');
  });
});
