// The guided calibration with a gauge (pen calibrate): preconditions, the needle parked at each point of hardware/pen.json
// `calibration` (from below, and at the backlash points from above too), the gauge read there, the fit and its
// acceptance, the store on the role's grant, the verification at points not in the fit, and the record of it all. Nothing
// is stored before the fit is accepted; an abort, a fault or a lost link after storing puts the old calibration back.
import { pen, stepsPerMm as carriageStepsPerMm } from '../../hardware/description.ts';
import { calibrationBounds, stepsForUm } from '../../hardware/depth-bounds.ts';
import type { Gauge } from '../../hal/gauge.ts';
import type { KeyedRole } from '../../hal/auth.ts';
import { PenRefusedError, type DepthCalibration, type PenDevice } from '../../hal/device.ts';
import { LinkLostError } from '../../hal/link/reliable-link.ts';
import { checkDepthCalibration, checkSensorCalibration, HostRefusedError } from '../../hal/limits.ts';
import type { CalibrationInput, CalibrationValues, CalibrationVerdict } from '../store/calibrations.ts';
import type { PenRecordIdentity } from '../store/store.ts';
import { evaluateDepthFit, evaluateSensorFit, evaluateVerification, failureReason, fitDepth, fitSensor } from './fit.ts';
import type { Approach, CriterionResult, FitResult, GaugeReadingRecord, SensorFitResult, VerificationPoint } from './types.ts';

const plan = pen.calibration;
const { acceptance } = plan;
const window = pen.depthWindowMm;
/** How long an EEPROM write (two copies) or a stop of the stepper may take before the pen counts as stuck. */
const settleLimitMs = 3000;
const pollMs = 20;
/** The longest role-check lockout a store waits out rather than giving up. */
const lockoutWaitLimitMs = 5000;

/** depth: the step calibration (technician); sensor: the depth sensor's against the carriage (engineer). */
export type CalibrationChannel = 'depth' | 'sensor';
export const channelRole: Readonly<Record<CalibrationChannel, KeyedRole>> = { depth: 'technician', sensor: 'engineer' };

/** What the procedure tells whoever runs it, in order; text is the line to show. */
export type CalibrationEvent =
  | { readonly kind: 'precondition'; readonly name: string; readonly ok: boolean; readonly text: string }
  | { readonly kind: 'park'; readonly pointMm: number; readonly approach: Approach; readonly text: string }
  /** Before each gauge reading: what a person typing the readings is asked for. */
  | { readonly kind: 'read'; readonly pointMm: number; readonly approach: Approach; readonly index: number; readonly count: number; readonly text: string }
  | { readonly kind: 'point'; readonly reading: GaugeReadingRecord; readonly text: string }
  | { readonly kind: 'fit'; readonly criteria: readonly CriterionResult[]; readonly text: string }
  | { readonly kind: 'store' | 'restore'; readonly values: CalibrationValues; readonly text: string }
  | { readonly kind: 'verify'; readonly point: VerificationPoint; readonly text: string };

export interface CalibrationOptions {
  readonly device: PenDevice;
  readonly gauge: Gauge;
  readonly channel?: CalibrationChannel;
  /** Aborting leaves the old calibration in force (restored, if the new one was stored already). */
  readonly signal?: AbortSignal;
  readonly onEvent?: (event: CalibrationEvent) => void;
  /**
   * Connects to the pen again after the link was lost (a reset ends the link: hal/link), to find which calibration it
   * came back with and put the old one back if need be. The caller closes what it returns.
   */
  readonly reconnect?: () => Promise<PenDevice>;
}

export interface CalibrationOutcome {
  readonly channel: CalibrationChannel;
  readonly verdict: CalibrationVerdict;
  /** Which criterion failed and where, or why it stopped; null when accepted. */
  readonly reason: string | null;
  readonly readings: readonly GaugeReadingRecord[];
  readonly fit: FitResult | SensorFitResult | null;
  readonly criteria: readonly CriterionResult[];
  readonly verification: readonly VerificationPoint[] | null;
  readonly oldValues: CalibrationValues;
  /** What the pen holds at the end when it differs from the old values; null when the old ones are in force. */
  readonly newValues: CalibrationValues | null;
  /** Why it stopped early: 'interrupt' (the signal), or the error (a fault, the link, a refusal); null when it ran through. */
  readonly stoppedBy: 'interrupt' | Error | null;
  /** From the first precondition to the outcome, on the device's clock. */
  readonly durationMs: number;
}

/** The preconditions were not met: nothing was measured. */
export class CalibrationRefusedError extends HostRefusedError {}

class Interrupted extends Error {}

const valuesOf = (c: DepthCalibration): CalibrationValues =>
  ({ stepsPerMm: c.stepsPerMm, zeroOffsetMm: c.zeroOffsetMm, sensorZeroMv: c.sensorZeroMv, sensorMvPerMm: c.sensorMvPerMm });
const sameValues = (a: CalibrationValues, b: CalibrationValues): boolean =>
  a.stepsPerMm === b.stepsPerMm && a.zeroOffsetMm === b.zeroOffsetMm && a.sensorZeroMv === b.sensorZeroMv && a.sensorMvPerMm === b.sensorMvPerMm;
const mean = (values: readonly number[]): number => values.reduce((sum, v) => sum + v, 0) / values.length;
const mm = (value: number): string => value.toFixed(3);
export const describeValues = (v: CalibrationValues): string =>
  `${v.stepsPerMm.toFixed(2)} steps/mm, zero offset ${mm(v.zeroOffsetMm)} mm; sensor ${v.sensorZeroMv} mV + ${v.sensorMvPerMm} mV/mm`;

/** The microsteps the firmware parks at for depthMm under a calibration (its own conversion, hardware/depth-bounds.ts). */
const stepsAt = (depthMm: number, c: CalibrationValues): number =>
  stepsForUm(Math.round(depthMm * 1000), Math.round(c.stepsPerMm * 100), Math.round(c.zeroOffsetMm * 1000));

/**
 * The sensor's output behind a sensed depth in telemetry, undoing the firmware's conversion (mV → carriage microsteps at
 * the sensor calibration, → depth at the step calibration): the pen reports depth, not millivolts.
 */
const sensorMvFor = (sensedMm: number, c: CalibrationValues): number =>
  c.sensorZeroMv + ((sensedMm - c.zeroOffsetMm) * c.stepsPerMm * c.sensorMvPerMm) / carriageStepsPerMm;

/** The nearest calibration inside the bounds the pen's tolerances allow (hardware/depth-bounds.ts). */
function clampToBounds(values: CalibrationValues): CalibrationValues {
  const { stepsPerMmX100: k, zeroOffsetUm: z } = calibrationBounds;
  const within = (value: number, range: { min: number; max: number }): number => Math.min(range.max, Math.max(range.min, value));
  return { ...values, stepsPerMm: within(Math.round(values.stepsPerMm * 100), k) / 100, zeroOffsetMm: within(Math.round(values.zeroOffsetMm * 1000), z) / 1000 };
}

/** A reading, and the depth the pen's sensor reported meanwhile (for the sensor's verification). */
interface Measured {
  readonly record: GaugeReadingRecord;
  readonly sensedMm: number;
}

/** Runs the guided calibration; throws CalibrationRefusedError when a precondition fails, else returns the outcome. */
export async function runCalibration(options: CalibrationOptions): Promise<CalibrationOutcome> {
  return new CalibrationRun(options, valuesOf(await options.device.calibration())).run();
}

class CalibrationRun {
  private device: PenDevice;
  private readonly reconnect: (() => Promise<PenDevice>) | null;
  private readonly gauge: Gauge;
  private readonly channel: CalibrationChannel;
  private readonly signal: AbortSignal;
  private readonly emit: (event: CalibrationEvent) => void;
  private readonly startMs: number;
  private readonly readings: GaugeReadingRecord[] = [];
  private readonly criteria: CriterionResult[] = [];
  private fit: FitResult | SensorFitResult | null = null;
  private verification: VerificationPoint[] | null = null;
  /** The calibration the pen converts with now: the old one, then the new one once stored. */
  private inForce: CalibrationValues;
  /** Where the run is, for a reason that says where it stopped. */
  private stage = 'while homing';

  constructor(options: CalibrationOptions, private readonly oldValues: CalibrationValues) {
    this.device = options.device;
    this.reconnect = options.reconnect ?? null;
    this.gauge = options.gauge;
    this.channel = options.channel ?? 'depth';
    this.signal = options.signal ?? new AbortController().signal;
    this.emit = options.onEvent ?? (() => {});
    this.startMs = this.device.clock.nowMs();
    this.inForce = oldValues;
  }

  async run(): Promise<CalibrationOutcome> {
    await this.checkPreconditions();
    try {
      return await this.measureFitStoreVerify();
    } catch (error) {
      return this.stopped(error instanceof Interrupted || this.signal.aborted ? 'interrupt' : error instanceof Error ? error : new Error(String(error)));
    }
  }

  private async checkPreconditions(): Promise<void> {
    const role = channelRole[this.channel];
    const { serial } = this.device.identity;
    const status = await this.device.status();
    const checks: { name: string; ok: boolean; text: string }[] = [
      { name: 'no fault', ok: status.state !== 'fault', text: status.state === 'fault' ? `FAULT ${status.fault}: ${status.faultText}; clear it first (pen clear-fault)` : 'none latched' },
      { name: 'needle motor off', ok: status.state !== 'armed' && status.state !== 'running', text: `state ${status.state.replace('_', ' ')}` },
      { name: 'cartridge or calibration tip fitted', ok: status.cartridgePresent, text: status.cartridgePresent ? 'the switch sees one' : 'fit the calibration tip (or a cartridge)' },
      { name: `${role} key`, ok: serial !== '' && this.device.keys.key(serial, role) !== null,
        text: serial === '' ? 'the pen is not provisioned' : this.device.keys.where(serial, role) },
    ];
    for (const check of checks) this.emit({ kind: 'precondition', ...check, text: `${check.ok ? 'ok  ' : 'FAIL'} ${check.name}: ${check.text}` });
    const failed = checks.filter((check) => !check.ok);
    if (failed.length > 0) {
      throw new CalibrationRefusedError(`calibration refused before measuring: ${failed.map((check) => `${check.name} (${check.text})`).join('; ')}`);
    }
  }

  private async measureFitStoreVerify(): Promise<CalibrationOutcome> {
    const { oldValues } = this;
    // Homed afresh every time: the zero offset found is relative to where the switch puts home.
    await this.abortable(this.device.depth.home());
    const homed = await this.device.status();
    this.emit({ kind: 'precondition', name: 'homed', ok: homed.homed, text: `ok   homed: needle at ${mm(homed.depthMm)} mm` });
    const fitPoints = new Set<number>(plan.fitPointsMm);
    const backlashPoints = new Set<number>(this.channel === 'depth' ? plan.backlashPointsMm : []);
    const points = [...new Set<number>([...plan.fitPointsMm, ...plan.verifyPointsMm])].sort((a, b) => a - b);
    const before = new Map<number, number>();
    const fitReadings: Measured[] = [];
    for (const pointMm of points) {
      const measured = await this.measure(pointMm, 'below', fitPoints.has(pointMm) ? 'fit' : 'verify-before');
      if (fitPoints.has(pointMm)) fitReadings.push(measured);
      else before.set(pointMm, this.errorUm(measured));
      if (backlashPoints.has(pointMm)) await this.measure(pointMm, 'above', 'backlash');
    }

    this.stage = 'at the fit';
    const candidate = this.channel === 'depth' ? this.fitSteps(fitReadings) : this.fitSensorOutput(fitReadings);
    const rejected = failureReason(this.criteria);
    if (rejected !== null) return this.outcome('rejected', rejected, null);
    if (candidate instanceof Error) return this.outcome('rejected', candidate.message, null);

    this.check();
    this.stage = 'while storing';
    this.emit({ kind: 'store', values: candidate, text: `storing ${describeValues(candidate)}` });
    await this.store(candidate);
    const held = valuesOf(await this.device.calibration());
    if (!sameValues(held, candidate)) {
      // A reset during the EEPROM write: the pen started again with the copy that was whole, the old one or the new.
      const which = sameValues(held, oldValues) ? 'the old calibration is in force' : `it holds ${describeValues(held)}`;
      return this.outcome('aborted', `the pen does not hold the new calibration after storing it (a reset during the write?): ${which}`, null);
    }
    this.inForce = held;

    this.stage = 'during verification';
    const status = await this.device.status();
    if (!status.homed) await this.device.depth.home();  // the pen was reset since: position lost
    this.verification = [];
    for (const pointMm of plan.verifyPointsMm) {
      const afterErrorUm = this.errorUm(await this.measure(pointMm, 'below', 'verify-after'));
      const point = { pointMm, beforeErrorUm: before.get(pointMm) ?? Number.NaN, afterErrorUm };
      this.verification.push(point);
      this.emit({ kind: 'verify', point, text: `verify ${pointMm.toFixed(2)} mm: error ${point.beforeErrorUm.toFixed(1)} µm before, ${afterErrorUm.toFixed(1)} µm after` });
    }
    const verified = evaluateVerification(this.verification);
    this.criteria.push(verified);
    const failed = failureReason([verified]);
    if (failed !== null) {
      this.stage = 'restoring after a failed verification';
      await this.restore(oldValues);
      return this.outcome('rejected', `${failed}; the old calibration restored`, null);
    }
    // Accepted only if the pen reports the new values now, at the end.
    const final = valuesOf(await this.device.calibration());
    if (!sameValues(final, candidate)) return this.outcome('aborted', `the pen holds ${describeValues(final)} at the end, not the new calibration`, null);
    return this.outcome('accepted', null, null);
  }

  /** The step fit and its criteria; the candidate, or an Error when the fit lies outside the pen's tolerances. */
  private fitSteps(fitReadings: readonly Measured[]): CalibrationValues | Error {
    const belowAt = new Map(this.readings.filter((r) => r.use === 'fit' || r.use === 'verify-before').map((r) => [r.pointMm, r.meanMm]));
    const backlash = this.readings.filter((r) => r.use === 'backlash').map((r) => ({ pointMm: r.pointMm, belowMm: belowAt.get(r.pointMm) ?? r.meanMm, aboveMm: r.meanMm }));
    const fit = fitDepth(fitReadings.map(({ record }) => ({ pointMm: record.pointMm, steps: record.steps, gaugeMm: record.meanMm })), backlash);
    this.fit = fit;
    this.criteria.push(...evaluateDepthFit(fit));
    const worstResidual = Math.max(...fit.residuals.map((r) => Math.abs(r.residualUm)));
    const worstBacklash = fit.backlash.length === 0 ? 0 : Math.max(...fit.backlash.map((b) => Math.abs(b.backlashUm)));
    this.emit({ kind: 'fit', criteria: this.criteria, text: `fit: ${fit.stepsPerMm.toFixed(2)} steps/mm, zero offset ${mm(fit.zeroOffsetMm)} mm; ` +
      `worst residual ${worstResidual.toFixed(1)} µm, backlash ${worstBacklash.toFixed(1)} µm, predicted error ±${fit.predictedErrorUm.toFixed(1)} µm` });
    const candidate = { ...this.oldValues, stepsPerMm: Math.round(fit.stepsPerMm * 100) / 100, zeroOffsetMm: Math.round(fit.zeroOffsetMm * 1000) / 1000 };
    try {
      checkDepthCalibration(candidate);
      return candidate;
    } catch (error) {
      // A pen at its tolerance corner fits outside the bounds half the time, by its gauge's noise: the bound itself is
      // then taken, if that line still meets every reading within the residual limit (and the verification judges it).
      const clamped = clampToBounds(candidate);
      const fitsAll = fitReadings.every(({ record }) =>
        Math.abs(record.meanMm - (record.steps / clamped.stepsPerMm + clamped.zeroOffsetMm)) * 1000 <= acceptance.maxResidualUm);
      if (!fitsAll) return new Error(`tolerances: the fit is not the calibration of a pen built within its tolerances: ${(error as Error).message}`);
      this.emit({ kind: 'fit', criteria: this.criteria, text: `fit outside the pen's tolerances by less than the gauge can tell: taking the bound, ${describeValues(clamped)}` });
      return clamped;
    }
  }

  /** The sensor's fit against the carriage position and its criteria; the candidate, or an Error outside the tolerances. */
  private fitSensorOutput(fitReadings: readonly Measured[]): CalibrationValues | Error {
    const fit = fitSensor(fitReadings.map(({ record }) => ({ pointMm: record.pointMm, carriageMm: record.steps / carriageStepsPerMm, sensorMv: record.sensorMv ?? Number.NaN })));
    this.fit = fit;
    this.criteria.push(...evaluateSensorFit(fit));
    const worstResidual = Math.max(...fit.residuals.map((r) => Math.abs(r.residualMv)));
    this.emit({ kind: 'fit', criteria: this.criteria, text: `sensor fit: ${fit.sensorZeroMv.toFixed(1)} mV + ${fit.sensorMvPerMm.toFixed(1)} mV/mm; worst residual ${worstResidual.toFixed(1)} mV` });
    const candidate = { ...this.oldValues, sensorZeroMv: Math.round(fit.sensorZeroMv), sensorMvPerMm: Math.round(fit.sensorMvPerMm) };
    try {
      checkSensorCalibration(candidate);
    } catch (error) {
      return new Error(`tolerances: the sensor fit is outside the sensor's tolerances: ${(error as Error).message}`);
    }
    return candidate;
  }

  /** Gauge minus what the channel says the depth is: the commanded depth (steps), or the sensed depth (sensor). µm. */
  private errorUm({ record, sensedMm }: Measured): number {
    return (record.meanMm - (this.channel === 'depth' ? record.pointMm : sensedMm)) * 1000;
  }

  /** Parks at pointMm from the side asked, lets it settle, reads the gauge readingsPerPoint times. */
  private async measure(pointMm: number, approach: Approach, use: GaugeReadingRecord['use']): Promise<Measured> {
    this.stage = `${this.verification === null ? '' : 'during verification '}at ${pointMm.toFixed(2)} mm (from ${approach})`;
    this.check();
    this.emit({ kind: 'park', pointMm, approach, text: `parking at ${pointMm.toFixed(2)} mm from ${approach}` });
    await this.park(pointMm, approach);
    await this.abortable(this.device.clock.sleep(plan.settleMs));
    const calibration = this.inForce;
    const gaugeMm: number[] = [];
    const sensed: number[] = [];
    for (let index = 1; index <= plan.readingsPerPoint; index++) {
      this.emit({ kind: 'read', pointMm, approach, index, count: plan.readingsPerPoint,
        text: `read the gauge at ${pointMm.toFixed(2)} mm from ${approach} (${index}/${plan.readingsPerPoint})` });
      gaugeMm.push(await this.abortable(this.gauge.read()));
      sensed.push((await this.device.status()).sensedDepthMm);
      this.check();
    }
    const sensedMm = mean(sensed);
    const record: GaugeReadingRecord = {
      pointMm, approach, steps: stepsAt(pointMm, calibration), sensorMv: sensorMvFor(sensedMm, calibration), gaugeMm, meanMm: mean(gaugeMm), use,
    };
    this.readings.push(record);
    this.emit({ kind: 'point', reading: record, text: `${pointMm.toFixed(2)} mm from ${approach}: gauge ${gaugeMm.map(mm).join(', ')} mm ` +
      `(mean ${mm(record.meanMm)}), ${record.steps} steps, sensor ${sensedMm.toFixed(3)} mm` });
    return { record, sensedMm };
  }

  /**
   * From below: through approachMm shallower (or home, when that is outside the window), as a treatment comes to its
   * depth; from above: through approachMm deeper. Either way the last move takes up the screw's slack one way.
   */
  private async park(pointMm: number, approach: Approach): Promise<void> {
    const viaMm = approach === 'below' ? pointMm - plan.approachMm : pointMm + plan.approachMm;
    if (viaMm > window.max) throw new Error(`backlash point ${pointMm} mm: approaching from ${viaMm} mm leaves the depth window (pen.json calibration)`);
    await this.abortable(viaMm < window.min ? this.device.depth.home() : this.device.depth.moveTo(viaMm));
    await this.abortable(this.device.depth.moveTo(pointMm));
  }

  /** Stores values on the channel's grant, then waits for the pen's EEPROM write (two copies) to end. */
  private async store(values: CalibrationValues): Promise<void> {
    const set = (): Promise<void> => (this.channel === 'depth' ? this.device.setDepthCalibration(values) : this.device.setSensorCalibration(values));
    try {
      await set();
    } catch (error) {
      // A reset during a grant counts as a failed answer, and the lockout after it is short: wait it out, once.
      if (!(error instanceof PenRefusedError && error.code === 'locked_out' && error.detail <= lockoutWaitLimitMs)) throw error;
      await this.device.clock.sleep(error.detail + pollMs);
      await set();
    }
    await this.eepromWritten();
  }

  private async eepromWritten(): Promise<void> {
    const deadline = this.device.clock.nowMs() + settleLimitMs;
    while ((await this.device.authStatus()).writePending) {
      if (this.device.clock.nowMs() > deadline) throw new Error(`the pen's EEPROM write did not end within ${settleLimitMs} ms`);
      await this.device.clock.sleep(pollMs);
    }
  }

  /** Puts the old values back once the stepper is still (the pen refuses a calibration while it moves). */
  private async restore(oldValues: CalibrationValues): Promise<void> {
    const deadline = this.device.clock.nowMs() + settleLimitMs;
    while ((await this.device.status()).moving) {
      if (this.device.clock.nowMs() > deadline) throw new Error(`the stepper was still moving after ${settleLimitMs} ms`);
      await this.device.clock.sleep(pollMs);
    }
    await this.eepromWritten();
    this.emit({ kind: 'restore', values: oldValues, text: `restoring the old calibration: ${describeValues(oldValues)}` });
    await this.store(oldValues);
    this.inForce = oldValues;
  }

  /** Ends an interrupted or failed run: the old calibration put back if the pen holds another, and said so. */
  private async stopped(cause: 'interrupt' | Error): Promise<CalibrationOutcome> {
    const { oldValues } = this;
    const why = cause === 'interrupt' ? `interrupted ${this.stage}` : `stopped ${this.stage}: ${cause.message}`;
    let after: string;
    try {
      let cameBack = '';
      if (cause instanceof LinkLostError && this.reconnect !== null) {
        this.device = await this.reconnect();
        cameBack = `the pen came back (last reset: ${this.device.identity.resetCauseText}) `;
      }
      const held = valuesOf(await this.device.calibration());
      if (sameValues(held, oldValues)) after = `${cameBack}${cameBack === '' ? 'nothing new stored: ' : 'with '}the old calibration in force`;
      else {
        await this.restore(oldValues);
        after = `${cameBack}${cameBack === '' ? '' : 'with the whole new calibration, unverified: '}the old calibration restored`;
      }
    } catch (error) {
      after = `the old calibration could not be confirmed or restored (${(error as Error).message}): check it with pen calibration`;
    }
    return this.outcome('aborted', `${why}; ${after}`, cause);
  }

  private async outcome(verdict: CalibrationVerdict, reason: string | null, stoppedBy: 'interrupt' | Error | null): Promise<CalibrationOutcome> {
    const { oldValues } = this;
    let held: CalibrationValues | null = null;
    try {
      held = valuesOf(await this.device.calibration());
    } catch {
      held = null;  // the link is gone: what the pen holds is unknown, and the reason says so
    }
    return {
      channel: this.channel, verdict, reason, readings: this.readings, fit: this.fit, criteria: this.criteria, verification: this.verification,
      oldValues, newValues: held === null || sameValues(held, oldValues) ? null : held, stoppedBy, durationMs: this.device.clock.nowMs() - this.startMs,
    };
  }

  private check(): void {
    if (this.signal.aborted) throw new Interrupted('interrupted');
  }

  /** The promise, or an Interrupted rejection as soon as the signal aborts (the step under way still finishes on its own). */
  private abortable<T>(promise: Promise<T>): Promise<T> {
    this.check();
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => reject(new Interrupted('interrupted'));
      this.signal.addEventListener('abort', onAbort, { once: true });
      promise.then(resolve, reject).finally(() => this.signal.removeEventListener('abort', onAbort));
    });
  }
}

export interface CalibrationRecordContext {
  readonly pen: PenRecordIdentity;
  readonly technician: string;
  readonly gaugeId: string;
  readonly gaugeDue: string;
  readonly needleSeconds: number | null;
}

/** The store's record of an outcome (src/store/calibrations.ts). */
export function calibrationInput(outcome: CalibrationOutcome, context: CalibrationRecordContext): CalibrationInput {
  return {
    kind: outcome.channel, pen: context.pen, technician: context.technician, gaugeId: context.gaugeId, gaugeDue: context.gaugeDue,
    verdict: outcome.verdict, reason: outcome.reason, readings: outcome.readings,
    fit: outcome.fit === null ? null : { fit: outcome.fit, criteria: outcome.criteria },
    verification: outcome.verification, oldValues: outcome.oldValues, newValues: outcome.newValues, needleSeconds: context.needleSeconds,
  };
}
