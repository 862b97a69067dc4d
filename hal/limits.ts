// Host-side limits: the first safety layer refuses out-of-window values before anything reaches the wire.
import { pen } from '../hardware/description.ts';
import { calibrationBounds } from '../hardware/depth-bounds.ts';

/** The host refused a request itself; nothing was sent. */
export class HostRefusedError extends Error {}

/** Millimetres with two decimals, or as many as the value has: never rounded, so 2.001 is not shown as 2.00. */
const mm = (value: number): string => (Number(value.toFixed(2)) === value ? value.toFixed(2) : String(value));

/** Returns depth in whole micrometres, or throws naming the value and the window. */
export function checkDepthMm(depthMm: number): number {
  const { min, max } = pen.depthWindowMm;
  if (!Number.isFinite(depthMm)) throw new HostRefusedError(`depth ${String(depthMm)} is not a number; allowed ${mm(min)}–${mm(max)} mm`);
  const depthUm = Math.round(depthMm * 1000);
  if (depthUm < min * 1000 || depthUm > max * 1000) {
    throw new HostRefusedError(`depth ${mm(depthMm)} mm is outside ${mm(min)}–${mm(max)} mm`);
  }
  return depthUm;
}

/** Returns the speed as whole strokes per second, or throws naming the value and the range. */
export function checkStrokesPerSecond(strokesPerSecond: number): number {
  const { minStrokesPerSecond: min, maxStrokesPerSecond: max } = pen.needleDrive;
  if (!Number.isInteger(strokesPerSecond) || strokesPerSecond < min || strokesPerSecond > max) {
    throw new HostRefusedError(`speed ${String(strokesPerSecond)} strokes/s is outside ${min}–${max} strokes/s (whole numbers)`);
  }
  return strokesPerSecond;
}

/** The step channel's calibration (technician): steps per mm of true needle depth, and the true depth at home. */
export interface DepthCalibrationValues {
  readonly stepsPerMm: number;
  readonly zeroOffsetMm: number;
}

/** The depth sensor's calibration (engineer): its output at carriage 0 and its slope per mm of carriage travel. */
export interface SensorCalibrationValues {
  readonly sensorZeroMv: number;
  readonly sensorMvPerMm: number;
}

/** Throws naming the value, as given, and the range, when value (converted to the wire's integer) is outside it. */
function checkWithin(name: string, given: number, wire: number, range: { min: number; max: number }, scale: number, unit: string): void {
  if (!Number.isFinite(given) || wire < range.min || wire > range.max) {
    throw new HostRefusedError(
      `${name} ${String(given)} ${unit} is outside ${String(range.min / scale)}–${String(range.max / scale)} ${unit} (the pen's tolerances)`,
    );
  }
}

/** Returns the wire fields of a step calibration, or throws naming the first value outside its bounds. */
export function checkDepthCalibration(calibration: DepthCalibrationValues): { stepsPerMmX100: number; zeroOffsetUm: number } {
  const stepsPerMmX100 = Math.round(calibration.stepsPerMm * 100);
  const zeroOffsetUm = Math.round(calibration.zeroOffsetMm * 1000);
  checkWithin('steps per mm', calibration.stepsPerMm, stepsPerMmX100, calibrationBounds.stepsPerMmX100, 100, 'steps/mm');
  checkWithin('zero offset', calibration.zeroOffsetMm, zeroOffsetUm, calibrationBounds.zeroOffsetUm, 1000, 'mm');
  return { stepsPerMmX100, zeroOffsetUm };
}

/** Returns the wire fields of a depth sensor calibration, or throws naming the first value outside its bounds. */
export function checkSensorCalibration(calibration: SensorCalibrationValues): { sensorZeroMv: number; sensorMvPerMm: number } {
  const sensorZeroMv = Math.round(calibration.sensorZeroMv);
  const sensorMvPerMm = Math.round(calibration.sensorMvPerMm);
  checkWithin('sensor zero', calibration.sensorZeroMv, sensorZeroMv, calibrationBounds.sensorZeroMv, 1, 'mV');
  checkWithin('sensor slope', calibration.sensorMvPerMm, sensorMvPerMm, calibrationBounds.sensorMvPerMm, 1, 'mV/mm');
  return { sensorZeroMv, sensorMvPerMm };
}
