// Host-side limits: the first safety layer refuses out-of-window values before anything reaches the wire.
import { pen } from '../hardware/description.ts';

/** The host refused a request itself; nothing was sent. */
export class HostRefusedError extends Error {}

const mm = (value: number): string => value.toFixed(2);

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

/** A depth calibration: steps per mm of true needle depth, true depth at home, and the depth sensor's scaling. */
export interface CalibrationValues {
  readonly stepsPerMm: number;
  readonly zeroOffsetMm: number;
  readonly sensorZeroMv: number;
  readonly sensorMvPerMm: number;
}

/** Throws naming the first value outside the pen description's bounds around nominal. */
export function checkCalibration(calibration: CalibrationValues): void {
  const bounds = pen.calibrationBounds;
  const nominalSteps = (pen.mechanics.fullStepsPerRev * pen.mechanics.microsteps) / pen.mechanics.leadScrewPitchMm;
  const within = (name: string, value: number, nominal: number, percent: number, unit: string): void => {
    const margin = (nominal * percent) / 100;
    if (!Number.isFinite(value) || value < nominal - margin || value > nominal + margin) {
      throw new HostRefusedError(`${name} ${String(value)} ${unit} is outside ${nominal - margin}–${nominal + margin} ${unit} (nominal ±${percent} %)`);
    }
  };
  within('steps per mm', calibration.stepsPerMm, nominalSteps, bounds.stepsPerMmTolerancePercent, 'steps/mm');
  const maxOffsetMm = bounds.zeroOffsetMaxUm / 1000;
  if (!Number.isFinite(calibration.zeroOffsetMm) || Math.abs(calibration.zeroOffsetMm) > maxOffsetMm) {
    throw new HostRefusedError(`zero offset ${String(calibration.zeroOffsetMm)} mm is outside ±${maxOffsetMm} mm`);
  }
  within('sensor zero', calibration.sensorZeroMv, pen.sensors.depthSensorZeroMv, bounds.sensorTolerancePercent, 'mV');
  within('sensor slope', calibration.sensorMvPerMm, pen.sensors.depthSensorMvPerMm, bounds.sensorTolerancePercent, 'mV/mm');
}
