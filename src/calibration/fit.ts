// The calibration's arithmetic, pure: least-squares lines (gauge depth against microsteps; the depth sensor's output
// against the carriage position), residuals, backlash, the fit's predicted error over the depth window, and the
// acceptance criteria of hardware/pen.json `calibration.acceptance` with the first one failed, named with its point.
import { pen } from '../../hardware/description.ts';
import type { CriterionResult, FitResult, SensorFitResult, VerificationPoint } from './types.ts';

export type Acceptance = typeof pen.calibration.acceptance;

export interface LinePoint {
  /** Where the point was asked for (mm), to name it in residuals and reasons. */
  readonly pointMm: number;
  readonly x: number;
  readonly y: number;
}

export interface Line {
  readonly slope: number;
  readonly intercept: number;
  /** y minus the line, per point, in y's unit. */
  readonly residuals: readonly number[];
  /** The standard error of the fitted line at x (the uncertainty of its prediction of the mean), in y's unit. */
  standardErrorAt(x: number): number;
}

/** Ordinary least squares of y on x; needs three points or more at two x values or more (one degree of freedom left). */
export function fitLine(points: readonly LinePoint[]): Line {
  const n = points.length;
  if (n < 3) throw new Error(`a calibration line needs at least 3 points, got ${n}`);
  const meanX = points.reduce((sum, p) => sum + p.x, 0) / n;
  const meanY = points.reduce((sum, p) => sum + p.y, 0) / n;
  const sxx = points.reduce((sum, p) => sum + (p.x - meanX) ** 2, 0);
  if (sxx === 0) throw new Error('a calibration line needs points at two positions or more');
  const slope = points.reduce((sum, p) => sum + (p.x - meanX) * (p.y - meanY), 0) / sxx;
  const intercept = meanY - slope * meanX;
  const residuals = points.map((p) => p.y - (intercept + slope * p.x));
  const residualSd = Math.sqrt(residuals.reduce((sum, r) => sum + r * r, 0) / (n - 2));
  return { slope, intercept, residuals, standardErrorAt: (x) => residualSd * Math.sqrt(1 / n + (x - meanX) ** 2 / sxx) };
}

export interface StepReading {
  readonly pointMm: number;
  /** Microsteps from home where the needle parked. */
  readonly steps: number;
  /** The gauge's mean there, mm. */
  readonly gaugeMm: number;
}

/** A backlash point: the gauge's mean approached from below (deeper-going) and from above. */
export interface BacklashPair {
  readonly pointMm: number;
  readonly belowMm: number;
  readonly aboveMm: number;
}

const um = (mm: number): number => mm * 1000;

/**
 * The step calibration from gauge readings: the line of gauge depth (mm) against microsteps, whose slope is mm per
 * microstep (stepsPerMm is its inverse) and intercept the true depth at home. The predicted error is twice the line's
 * standard error at its worst over the depth window, which is at one of the window's ends.
 */
export function fitDepth(readings: readonly StepReading[], backlash: readonly BacklashPair[]): FitResult {
  const line = fitLine(readings.map((r) => ({ pointMm: r.pointMm, x: r.steps, y: r.gaugeMm })));
  const { min, max } = pen.depthWindowMm;
  const stepsAt = (depthMm: number): number => (depthMm - line.intercept) / line.slope;
  return {
    stepsPerMm: 1 / line.slope,
    zeroOffsetMm: line.intercept,
    residuals: readings.map((r, i) => ({ pointMm: r.pointMm, residualUm: um(line.residuals[i] ?? 0) })),
    backlash: backlash.map((b) => ({ pointMm: b.pointMm, backlashUm: um(b.aboveMm - b.belowMm) })),
    predictedErrorUm: 2 * um(Math.max(line.standardErrorAt(stepsAt(min)), line.standardErrorAt(stepsAt(max)))),
  };
}

export interface SensorReading {
  readonly pointMm: number;
  /** Carriage position (mm): microsteps over the lead screw's nominal steps per mm, which the sensor reads. */
  readonly carriageMm: number;
  readonly sensorMv: number;
}

/** The depth sensor's calibration: its output (mV) against the carriage position; zero is the output at carriage 0. */
export function fitSensor(readings: readonly SensorReading[]): SensorFitResult {
  const line = fitLine(readings.map((r) => ({ pointMm: r.pointMm, x: r.carriageMm, y: r.sensorMv })));
  return {
    sensorZeroMv: line.intercept,
    sensorMvPerMm: line.slope,
    residuals: readings.map((r, i) => ({ pointMm: r.pointMm, residualMv: line.residuals[i] ?? 0 })),
  };
}

/** The worst of some values by magnitude, with where it was; null when there are none. */
function worst(values: readonly { readonly atMm: number; readonly um: number }[]): { worstUm: number; atMm: number } | null {
  let found: { worstUm: number; atMm: number } | null = null;
  for (const v of values) if (found === null || Math.abs(v.um) > Math.abs(found.worstUm)) found = { worstUm: v.um, atMm: v.atMm };
  return found;
}

function criterion(name: CriterionResult['name'], limitUm: number, values: readonly { readonly atMm: number; readonly um: number }[]): CriterionResult {
  const found = worst(values);
  return { name, limitUm, worstUm: found?.worstUm ?? null, atMm: found?.atMm ?? null, passed: found === null || Math.abs(found.worstUm) <= limitUm };
}

/** The criteria a step fit must meet before it is stored: residuals, backlash, predicted error. */
export function evaluateDepthFit(fit: FitResult, acceptance: Acceptance = pen.calibration.acceptance): CriterionResult[] {
  return [
    criterion('residual', acceptance.maxResidualUm, fit.residuals.map((r) => ({ atMm: r.pointMm, um: r.residualUm }))),
    criterion('backlash', acceptance.maxBacklashUm, fit.backlash.map((b) => ({ atMm: b.pointMm, um: b.backlashUm }))),
    // A property of the whole line over the window, not of one point.
    { name: 'predicted_error', limitUm: acceptance.maxPredictedErrorUm, worstUm: fit.predictedErrorUm, atMm: null,
      passed: fit.predictedErrorUm <= acceptance.maxPredictedErrorUm },
  ];
}

/** A sensor fit's residuals, in µm of carriage travel at its fitted slope, against the same residual limit. */
export function evaluateSensorFit(fit: SensorFitResult, acceptance: Acceptance = pen.calibration.acceptance): CriterionResult[] {
  return [criterion('residual', acceptance.maxResidualUm, fit.residuals.map((r) => ({ atMm: r.pointMm, um: (r.residualMv / fit.sensorMvPerMm) * 1000 })))];
}

/** The verification after storing: every error with the new calibration within maxVerifyErrorUm. */
export function evaluateVerification(points: readonly VerificationPoint[], acceptance: Acceptance = pen.calibration.acceptance): CriterionResult {
  return criterion('verification', acceptance.maxVerifyErrorUm,
    points.flatMap((p) => (p.afterErrorUm === null ? [] : [{ atMm: p.pointMm, um: p.afterErrorUm }])));
}

const criterionText: Readonly<Record<CriterionResult['name'], string>> = {
  residual: 'fit residual', backlash: 'backlash', predicted_error: 'predicted error over the window', verification: 'verification error',
};

/** The first criterion failed, as a reason a technician can act on; null when all passed. */
export function failureReason(criteria: readonly CriterionResult[]): string | null {
  const failed = criteria.find((c) => !c.passed);
  if (failed === undefined) return null;
  const where = failed.atMm === null ? '' : ` at ${failed.atMm.toFixed(2)} mm`;
  return `${failed.name}: ${criterionText[failed.name]} ${(failed.worstUm ?? 0).toFixed(1)} µm${where} exceeds the limit of ±${failed.limitUm} µm`;
}
