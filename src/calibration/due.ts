// Calibration due: the clinic's policy (config/policy.json: a calibration every calibrationIntervalDays or
// calibrationNeedleHours of needle time, whichever comes first, with a grace period), weighed against the pen's last
// calibration on record in this host's store and the needle-time counter the firmware keeps in EEPROM (get_usage).
import policyJson from '../../config/policy.json' with { type: 'json' };
import type { PenDevice } from '../../hal/device.ts';
import type { PenStore } from '../store/store.ts';
import { penRecordIdentity } from '../store/actor.ts';

export interface CalibrationPolicy {
  readonly intervalDays: number;
  readonly needleHours: number;
  /** After the due date: treatments go on, with a warning, for this long. */
  readonly graceDays: number;
  /** After the needle hours are reached: treatments go on, with a warning, for this much more needle time. */
  readonly graceNeedleHours: number;
}

/**
 * ok: neither limit reached. due: a limit reached, still inside its grace: a warning. overdue: past the grace of either
 * limit: treatments are refused. A pen with no calibration on record in this host's store is due, never overdue: the
 * host cannot tell its age (it may carry a factory calibration from elsewhere), so it warns until a `pen calibrate`
 * is recorded here, and never refuses on that alone.
 */
export type CalibrationDueState = 'ok' | 'due' | 'overdue';

export interface CalibrationDue {
  readonly state: CalibrationDueState;
  /** When the interval ends (ISO 8601); null with no calibration on record. */
  readonly dueAt: string | null;
  /** Needle time since the last calibration; null when unknown (no record, no count recorded, or the counter went back). */
  readonly needleHoursSince: number | null;
  readonly text: string;
}

const policyFile = 'config/policy.json';
const dayMs = 86_400_000;

/** Checks the policy file's calibration fields; throws naming the field at fault. */
export function checkCalibrationPolicy(raw: Record<string, unknown>): CalibrationPolicy {
  const positive = (name: string, max: number): number => {
    const value = raw[name];
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > max) throw new Error(`${policyFile}: ${name} must be a number above 0, at most ${max}`);
    return value;
  };
  return {
    intervalDays: positive('calibrationIntervalDays', 3650),
    needleHours: positive('calibrationNeedleHours', 100_000),
    graceDays: positive('calibrationGraceDays', 365),
    graceNeedleHours: positive('calibrationGraceNeedleHours', 10_000),
  };
}

export const calibrationPolicy: CalibrationPolicy = checkCalibrationPolicy(policyJson);

const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
const hours = (value: number): string => `${value.toFixed(1)} h`;

/** The calibration-due state of a pen from its last calibration on record (null: none) and its needle time now. */
export function calibrationDue(
  lastCalibration: { readonly at: string; readonly needleSeconds: number | null } | null,
  needleSecondsNow: number, nowMs: number, policy: CalibrationPolicy = calibrationPolicy,
): CalibrationDue {
  if (lastCalibration === null) {
    return {
      state: 'due', dueAt: null, needleHoursSince: null,
      text: 'no calibration of this pen is on record on this host, so its age is unknown (treatments are not refused for that alone)',
    };
  }
  const atMs = Date.parse(lastCalibration.at);
  const dueAtMs = atMs + policy.intervalDays * dayMs;
  const refusedFromMs = dueAtMs + policy.graceDays * dayMs;
  const counted = lastCalibration.needleSeconds;
  // A counter below the recorded one belongs to another count (EEPROM replaced or wiped): only the date can be judged.
  const needleHoursSince = counted === null || needleSecondsNow < counted ? null : (needleSecondsNow - counted) / 3600;
  const last = `last calibrated ${day(atMs)}`;
  const hoursText = needleHoursSince === null ? 'needle time since unknown' : `${hours(needleHoursSince)} of needle time since`;
  const byDate = nowMs >= dueAtMs;
  const byHours = needleHoursSince !== null && needleHoursSince >= policy.needleHours;
  const overdueByDate = nowMs >= refusedFromMs;
  const overdueByHours = needleHoursSince !== null && needleHoursSince >= policy.needleHours + policy.graceNeedleHours;
  const limits = `every ${policy.intervalDays} days or ${policy.needleHours} needle hours`;
  if (overdueByDate || overdueByHours) {
    const why = overdueByDate
      ? `due ${day(dueAtMs)}, and the ${policy.graceDays}-day grace ended ${day(refusedFromMs)}`
      : `${hours(needleHoursSince ?? 0)} of needle time since, past ${policy.needleHours} h and the ${policy.graceNeedleHours} h grace`;
    return { state: 'overdue', dueAt: new Date(dueAtMs).toISOString(), needleHoursSince, text: `calibration overdue (${limits}): ${last}, ${why}` };
  }
  if (byDate || byHours) {
    const why = byDate ? `due ${day(dueAtMs)}; treatments are refused from ${day(refusedFromMs)}` : `${hoursText}, past ${policy.needleHours} h; ` +
      `treatments are refused after ${policy.graceNeedleHours} h more`;
    return { state: 'due', dueAt: new Date(dueAtMs).toISOString(), needleHoursSince, text: `calibration due (${limits}): ${last}, ${why}` };
  }
  return {
    state: 'ok', dueAt: new Date(dueAtMs).toISOString(), needleHoursSince,
    text: `calibration valid until ${day(dueAtMs)} or ${policy.needleHours} needle hours: ${last}, ${hoursText}`,
  };
}

/** The pen's calibration-due state: its last accepted calibration in the store (by serial) and its needle time now. */
export async function penCalibrationDue(device: PenDevice, store: PenStore, nowMs: number): Promise<CalibrationDue & { readonly needleSeconds: number }> {
  const { needleSeconds } = await device.usage();
  const serial = penRecordIdentity(device.identity).serial;
  return { ...calibrationDue(serial === null ? null : store.calibrations.latest(serial), needleSeconds, nowMs), needleSeconds };
}

/** For pen info and pen status: the state and needle time, with a WARNING line when due or overdue. */
export function describeCalibrationDue(due: CalibrationDue & { readonly needleSeconds: number }): string {
  const needle = `needle time ${hours(due.needleSeconds / 3600)} in all`;
  if (due.state === 'ok') return `  ${due.text}; ${needle}`;
  const action = due.state === 'overdue' ? 'pen run refuses treatments until it is calibrated' : 'calibrate it soon';
  return `WARNING: ${due.text}; ${needle}: ${action} (pen calibrate --port PORT)`;
}
