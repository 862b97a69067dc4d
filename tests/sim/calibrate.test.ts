// The guided calibration (src/calibration/procedure.ts) on in-process virtual pens in virtual time, read by the virtual
// gauge: pens at the tolerance corners of hardware/pen.json come out true within ±0.02 mm at every verification
// point; noisy gauges, backlash and a nonlinear screw are rejected with the criterion and the point; a pen without the
// technician's key, an abort and a reset during the store all leave the old calibration, and the outcome says so.
import { afterEach, describe, expect, it } from 'vitest';
import { pen as description } from '../../hardware/description.ts';
import { VirtualGauge, type VirtualGaugeOptions } from '../../hardware/sim/gauge.ts';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { PenDevice } from '../../hal/device.ts';
import { testKeys, type RoleKeys } from '../../hal/auth.ts';
import { RealClock } from '../../hardware/clock.ts';
import { CalibrationRefusedError } from '../../src/calibration/procedure.ts';
import { calibrationInput, runCalibration, type CalibrationEvent, type CalibrationOptions } from '../../src/calibration/procedure.ts';
import { PenStore } from '../../src/store/store.ts';
import { provisionedVirtualPen, testSerial } from './provisioned.ts';

const { homeOffsetUm, depthScalePpm } = description.tolerances;
const { acceptance } = description.calibration;

let pen: VirtualPen;
let device: PenDevice;
afterEach(async () => {
  await device.close();
  await pen.stop();
});

interface PlantErrors {
  readonly offsetMm?: number;
  readonly scaleError?: number;
  readonly backlashMm?: number;
  readonly screwNonlinearityMm?: number;
}

/** A provisioned pen with these mechanical errors, connected, and a gauge on its needle. */
async function penWith(errors: PlantErrors, gauge: VirtualGaugeOptions = {}, seed = 3): Promise<VirtualGauge> {
  pen = provisionedVirtualPen({ seed });
  Object.assign(pen.plant, errors);
  pen.start();
  device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
  return new VirtualGauge(pen.plant, { seed, ...gauge });
}

function calibrate(gauge: VirtualGauge, options: Partial<CalibrationOptions> = {}): ReturnType<typeof runCalibration> {
  return runCalibration({ device, gauge: gauge.asGauge(), ...options });
}

/** The true depth error (µm) at each verification point with the calibration the pen holds, approached from below. */
async function trueErrorsUm(): Promise<number[]> {
  const errors: number[] = [];
  for (const pointMm of description.calibration.verifyPointsMm) {
    await device.depth.moveTo(pointMm - 0.2);
    await device.depth.moveTo(pointMm);
    errors.push((pen.plant.trueDepthMm - pointMm) * 1000);
  }
  return errors;
}

const backlashMm = 0.015;  // under maxBacklashUm (25 µm)

describe('guided calibration', () => {
  const corners = [
    { offsetMm: homeOffsetUm / 1000, scaleError: depthScalePpm / 1e6 },
    { offsetMm: -homeOffsetUm / 1000, scaleError: depthScalePpm / 1e6 },
    { offsetMm: homeOffsetUm / 1000, scaleError: -depthScalePpm / 1e6 },
    { offsetMm: -homeOffsetUm / 1000, scaleError: -depthScalePpm / 1e6 },
  ];
  it.each(corners)('makes a pen at the corner %o true within ±0.02 mm at every verification point', { tags: ['REQ-CALIBRATION-PROCEDURE', 'REQ-DEPTH-ACCURACY'] }, async (corner) => {
    const gauge = await penWith({ ...corner, backlashMm });
    await device.depth.home();
    const before = await trueErrorsUm();
    const outcome = await calibrate(gauge);
    expect(outcome.reason).toBeNull();
    expect(outcome.verdict).toBe('accepted');
    expect(outcome.newValues).not.toBeNull();
    expect(await device.calibration()).toMatchObject({ ...outcome.newValues, source: 'stored' });
    const after = await trueErrorsUm();
    for (const error of after) expect(Math.abs(error)).toBeLessThanOrEqual(20);
    expect(Math.max(...before.map(Math.abs))).toBeGreaterThan(20);  // the corner was off by more before
    for (const point of outcome.verification ?? []) expect(Math.abs(point.afterErrorUm ?? Infinity)).toBeLessThanOrEqual(acceptance.maxVerifyErrorUm);
  });

  /** Runs on a pen with these errors and expects a rejection whose reason matches, the pen's calibration untouched. */
  async function expectRejected(errors: PlantErrors, gauge: VirtualGaugeOptions, reason: RegExp): Promise<void> {
    const virtualGauge = await penWith(errors, gauge);
    const old = await device.calibration();
    const outcome = await calibrate(virtualGauge);
    expect(outcome.verdict).toBe('rejected');
    expect(outcome.reason).toMatch(reason);
    expect(outcome.newValues).toBeNull();
    expect(await device.calibration()).toEqual(old);  // nothing stored: the default, storedCount 0
  }

  it('rejects the fit of a noisy gauge, naming the residual or the predicted error', { tags: ['REQ-CALIBRATION-PROCEDURE'] }, async () => {
    await expectRejected({ offsetMm: 0.01 }, { noiseMm: 0.05 }, /^(residual: fit residual -?\d+\.\d µm at \d\.\d\d mm|predicted_error: predicted error over the window \d+\.\d µm) exceeds/);
  });

  it('rejects excessive backlash at its point', { tags: ['REQ-CALIBRATION-PROCEDURE'] }, async () => {
    await expectRejected({ backlashMm: 0.04 }, {}, /^backlash: backlash 4\d\.\d µm at 1\.(00|50) mm exceeds the limit of ±25 µm$/);
  });

  it('rejects a nonlinear screw by its residual at a fit point', { tags: ['REQ-CALIBRATION-PROCEDURE'] }, async () => {
    await expectRejected({ screwNonlinearityMm: 0.012 }, {}, /^residual: fit residual -?1\d\.\d µm at (0\.50|1\.00|1\.50|2\.00) mm exceeds the limit of ±8 µm$/);
  });

  it('is refused without the technician key: by the host with none, by the firmware with a wrong one; nothing stored', { tags: ['REQ-ROLES'] }, async () => {
    const gauge = await penWith({ offsetMm: 0.02 });
    const old = await device.calibration();
    device.keys = { key: (_serial, role) => (role === 'technician' ? null : testKeys[role]), where: () => 'no technician key in this test' };
    const refused = await calibrate(gauge).then(() => null, (error: unknown) => error);
    expect(refused).toBeInstanceOf(CalibrationRefusedError);
    expect((refused as Error).message).toMatch(/technician key \(no technician key in this test\)/);
    const wrong: RoleKeys = { key: (_serial, role) => (role === 'technician' ? new Uint8Array(32).fill(7) : testKeys[role]), where: () => 'a wrong key' };
    device.keys = wrong;
    const outcome = await calibrate(gauge);
    expect(outcome.verdict).toBe('aborted');
    expect(outcome.reason).toMatch(/^stopped while storing: pen refused set_depth_calibration: .*wrong_answer.*; nothing new stored: the old calibration in force$/);
    expect(outcome.newValues).toBeNull();
    expect(await device.calibration()).toEqual(old);
  });

  it('leaves the old calibration on an abort while measuring, and restores it on one during verification; both recorded', { tags: ['REQ-CALIBRATION-PROCEDURE'] }, async () => {
    const gauge = await penWith({ offsetMm: 0.025, scaleError: 0.005, backlashMm });
    const old = await device.calibration();
    const abortWhen = (match: (event: CalibrationEvent) => boolean): Partial<CalibrationOptions> => {
      const controller = new AbortController();
      return { signal: controller.signal, onEvent: (event) => { if (match(event)) controller.abort(); } };
    };
    const measuring = await calibrate(gauge, abortWhen((e) => e.kind === 'park' && e.pointMm === 1.25));
    expect(measuring).toMatchObject({ verdict: 'aborted', stoppedBy: 'interrupt', newValues: null, fit: null });
    expect(measuring.reason).toBe('interrupted at 1.25 mm (from below); nothing new stored: the old calibration in force');
    expect(await device.calibration()).toEqual(old);

    const verifying = await calibrate(gauge, abortWhen((e) => e.kind === 'verify'));
    expect(verifying).toMatchObject({ verdict: 'aborted', stoppedBy: 'interrupt', newValues: null });
    expect(verifying.reason).toBe('interrupted during verification at 1.25 mm (from below); the old calibration restored');
    expect(await device.calibration()).toMatchObject({ stepsPerMm: old.stepsPerMm, zeroOffsetMm: old.zeroOffsetMm, source: 'stored', storedCount: 2 });

    const store = PenStore.open(':memory:', new RealClock());
    const context = { pen: { board: device.identity.boardName, buildId: device.identity.buildId, serial: testSerial }, technician: 'T. Tester',
      gaugeId: 'G-1', gaugeDue: '2027-06-30', needleSeconds: null };
    for (const outcome of [measuring, verifying]) store.calibrations.add(calibrationInput(outcome, context));
    const history = store.calibrations.history(testSerial);
    expect(history.map((r) => r.verdict)).toEqual(['aborted', 'aborted']);
    expect(history[1]?.readings.length).toBeGreaterThan(9);
    expect(store.calibrations.latest(testSerial)).toBeNull();
    store.close();
  });

  it('calibrates the depth sensor against the carriage on the engineer\'s grant, verified with the gauge', { tags: ['REQ-CALIBRATION-PROCEDURE'] }, async () => {
    const gauge = await penWith({});
    const outcome = await calibrate(gauge, { channel: 'sensor' });
    expect(outcome.reason).toBeNull();
    expect(outcome.verdict).toBe('accepted');
    const fit = outcome.fit as { sensorZeroMv: number; sensorMvPerMm: number };
    expect(Math.abs(fit.sensorZeroMv - description.sensors.depthSensorZeroMv)).toBeLessThan(5);
    expect(Math.abs(fit.sensorMvPerMm / description.sensors.depthSensorMvPerMm - 1)).toBeLessThan(0.005);
    expect(device.grantsUsed).toContainEqual({ role: 'engineer', command: 'set_sensor_calibration' });
    expect(outcome.readings.every((r) => r.approach === 'below')).toBe(true);  // the sensor reads the carriage: no backlash points
    for (const point of outcome.verification ?? []) expect(Math.abs(point.afterErrorUm ?? Infinity)).toBeLessThanOrEqual(acceptance.maxVerifyErrorUm);
  });

  it('after a reset during the store, holds the old or the whole new calibration, and says which', { tags: ['REQ-CALIBRATION-STORAGE', 'REQ-CALIBRATION-PROCEDURE'] }, async () => {
    const calibrationBytes = 64;  // two copies, at 0 and 32 (firmware/src/storage.c)
    const reasons: string[] = [];
    // The reset lands on the nth byte the pen writes into its calibration copies: inside the first copy, or the second.
    for (const resetAtByte of [4, 40]) {
      const gauge = await penWith({ offsetMm: -0.02, scaleError: -0.004 });
      const old = await device.calibration();
      const first = device;
      let written = 0;
      const outcome = await calibrate(gauge, {
        onEvent: (event) => {
          if (event.kind !== 'store') return;
          pen.eeprom.onChange = (address) => {
            if (address < calibrationBytes && ++written === resetAtByte) pen.clock.after(0, () => pen.resetMcu());
          };
        },
        reconnect: async () => {
          device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
          return device;
        },
      });
      await first.close();
      pen.eeprom.onChange = null;
      reasons.push(outcome.reason ?? '');
      expect(device).not.toBe(first);
      expect(outcome.verdict).toBe('aborted');
      expect(outcome.newValues).toBeNull();
      expect(outcome.reason).toMatch(/^stopped while storing: link lost: .*; the pen came back \(last reset: .*\) with (the old calibration in force|the whole new calibration, unverified: the old calibration restored)$/);
      expect(await device.calibration()).toMatchObject({ stepsPerMm: old.stepsPerMm, zeroOffsetMm: old.zeroOffsetMm });
      await device.close();
      await pen.stop();
    }
    expect(reasons.some((r) => r.endsWith('with the old calibration in force'))).toBe(true);
    expect(reasons.some((r) => r.endsWith('the old calibration restored'))).toBe(true);
    pen = provisionedVirtualPen();
    pen.start();
    device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
  });
});
