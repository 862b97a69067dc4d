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
