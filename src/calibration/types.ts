// The shapes a guided calibration produces (src/calibration/procedure.ts) and the records and the certificate keep
// (src/store/calibrations.ts keeps them as JSON; src/calibration/certificate.ts renders them).

/** below: approached from shallower (moving deeper), as treatment approaches its depth; above: from deeper. */
export type Approach = 'below' | 'above';

/** One gauge reading at a parked point. */
export interface GaugeReadingRecord {
  /** The point asked for, in mm of depth by the calibration in force when it was read. */
  readonly pointMm: number;
  readonly approach: Approach;
  /** The step count the needle parked at (microsteps from home). */
  readonly steps: number;
  /** The depth sensor's output there, in mV (for the sensor calibration); null when not read. */
  readonly sensorMv: number | null;
  /** What the gauge showed (mm), each reading taken there, and their mean. */
  readonly gaugeMm: readonly number[];
  readonly meanMm: number;
  /** fit: used in the fit; backlash: the from-above reading; verify-before / verify-after: verification points. */
  readonly use: 'fit' | 'backlash' | 'verify-before' | 'verify-after';
}

export interface FitResult {
  /** Microsteps per mm of true depth (the inverse of the fitted slope). */
  readonly stepsPerMm: number;
  /** True depth at home (the fitted intercept), mm. */
  readonly zeroOffsetMm: number;
  /** Per fit point: gauge mean minus the line, µm. */
  readonly residuals: readonly { readonly pointMm: number; readonly residualUm: number }[];
  /** Per backlash point: the reading from above minus the one from below, µm. */
  readonly backlash: readonly { readonly pointMm: number; readonly backlashUm: number }[];
  /** Twice the fit's standard error of prediction, at its worst over the depth window, µm. */
  readonly predictedErrorUm: number;
}

/** The sensor's fit: its output against the carriage position the steps give. */
export interface SensorFitResult {
  readonly sensorZeroMv: number;
  readonly sensorMvPerMm: number;
  readonly residuals: readonly { readonly pointMm: number; readonly residualMv: number }[];
}

export interface VerificationPoint {
  readonly pointMm: number;
  /** Gauge minus commanded depth with the old calibration (read before the fit), and with the new one, µm. */
  readonly beforeErrorUm: number;
  readonly afterErrorUm: number | null;
}

/** One acceptance criterion (pen.json calibration.acceptance) and how the calibration met it. */
export interface CriterionResult {
  readonly name: 'residual' | 'backlash' | 'predicted_error' | 'verification';
  readonly limitUm: number;
  /** The worst value found, µm, and where (mm), when the criterion applied. */
  readonly worstUm: number | null;
  readonly atMm: number | null;
  readonly passed: boolean;
}
