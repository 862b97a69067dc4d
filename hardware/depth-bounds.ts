// Depth bounded by construction: the calibration bounds and the absolute step limit, derived from the tolerances the
// pen is built to (hardware/pen.json `tolerances`), and the worst true depth they allow, checked against the promise.
import { pen, stepsPerMm } from './description.ts';

const t = pen.tolerances;
const nominalStepsX100 = stepsPerMm * 100;

/** The firmware's conversion, to the microstep: steps = round((depth - zero offset) * steps per mm). */
export function stepsForUm(depthUm: number, stepsPerMmX100: number, zeroOffsetUm: number): number {
  const scaled = (depthUm - zeroOffsetUm) * stepsPerMmX100;
  return Math.trunc((scaled + (scaled >= 0 ? 50000 : -50000)) / 100000);
}

/**
 * A calibration is accepted only when it is the true calibration of some pen inside the tolerances: home offset within
 * ±homeOffsetUm, and steps per mm of true depth for a needle travel scale within ±depthScalePpm.
 */
export const calibrationBounds = {
  stepsPerMmX100: {
    min: Math.ceil(nominalStepsX100 / (1 + t.depthScalePpm / 1e6)),
    max: Math.floor(nominalStepsX100 / (1 - t.depthScalePpm / 1e6)),
  },
  zeroOffsetUm: { min: -t.homeOffsetUm, max: t.homeOffsetUm },
  sensorZeroMv: { min: pen.sensors.depthSensorZeroMv - t.depthSensorZeroMv, max: pen.sensors.depthSensorZeroMv + t.depthSensorZeroMv },
  sensorMvPerMm: {
    min: Math.ceil(pen.sensors.depthSensorMvPerMm * (1 - t.depthSensorSlopePpm / 1e6)),
    max: Math.floor(pen.sensors.depthSensorMvPerMm * (1 + t.depthSensorSlopePpm / 1e6)),
  },
} as const;

const windowUm = { min: Math.round(pen.depthWindowMm.min * 1000), max: Math.round(pen.depthWindowMm.max * 1000) };
const { stepsPerMmX100: k, zeroOffsetUm: z } = calibrationBounds;

/** The most steps any accepted calibration commands for the window's deep end: the step interrupt never passes it. */
export const depthLimitSteps = stepsForUm(windowUm.max, k.max, z.min);
/** The fewest steps any accepted calibration commands for the window's shallow end. */
const shallowestSteps = stepsForUm(windowUm.min, k.min, z.max);

/** True depth (um) of a pen at a tolerance corner, the carriage at `steps`. */
const trueDepthUm = (steps: number, scale: number, offsetUm: number): number => (steps / stepsPerMm) * 1000 * scale + offsetUm;

/** The worst true depths any accepted calibration can give on any pen inside the tolerances. */
export const worstTrueDepthUm = {
  deepest: trueDepthUm(depthLimitSteps, 1 + t.depthScalePpm / 1e6, t.homeOffsetUm),
  shallowestRunning: trueDepthUm(shallowestSteps, 1 - t.depthScalePpm / 1e6, -t.homeOffsetUm),
};

/** Throws when the tolerances cannot keep the promised accuracy: the build stops there. */
export function checkDepthPromise(): void {
  const { deepest, shallowestRunning } = worstTrueDepthUm;
  if (deepest > windowUm.max + t.depthAccuracyUm || shallowestRunning < windowUm.min - t.depthAccuracyUm) {
    throw new Error(
      `pen.json tolerances break the depth promise of ±${t.depthAccuracyUm} um: worst true depth ` +
        `${deepest.toFixed(1)} um deep, ${shallowestRunning.toFixed(1)} um shallow`,
    );
  }
}
