// The calibration-due policy at its edges: the interval reached by date or by needle hours, inside and past each
// grace period, no calibration on record, no needle count on record, a counter below the recorded one; and the policy
// file's checks.
import { describe, expect, it } from 'vitest';
import { calibrationDue, checkCalibrationPolicy, type CalibrationPolicy } from '../../src/calibration/due.ts';

const dayMs = 86_400_000;
const policy: CalibrationPolicy = { intervalDays: 365, needleHours: 200, graceDays: 14, graceNeedleHours: 10 };
const calibratedMs = Date.UTC(2026, 0, 10, 9);
const last = { at: new Date(calibratedMs).toISOString(), needleSeconds: 1000 };
const hours = (h: number): number => last.needleSeconds + h * 3600;
const day = (d: number): number => calibratedMs + d * dayMs;

describe('calibrationDue', () => {
  it('is ok inside the interval, with the due date and the needle hours since', { tags: ['REQ-CALIBRATION-DUE'] }, () => {
    const due = calibrationDue(last, hours(12.5), day(100), policy);
    expect(due).toMatchObject({ state: 'ok', dueAt: new Date(day(365)).toISOString(), needleHoursSince: 12.5 });
    expect(due.text).toBe('calibration valid until 2027-01-10 or 200 needle hours: last calibrated 2026-01-10, 12.5 h of needle time since');
  });

  it('is due from the interval\'s last day, by date, until the grace period ends, then overdue', { tags: ['REQ-CALIBRATION-DUE'] }, () => {
    expect(calibrationDue(last, hours(1), day(365) - 1, policy).state).toBe('ok');
    const due = calibrationDue(last, hours(1), day(365), policy);
    expect(due.state).toBe('due');
    expect(due.text).toMatch(/due 2027-01-10; treatments are refused from 2027-01-24$/);
    expect(calibrationDue(last, hours(1), day(365 + 14) - 1, policy).state).toBe('due');
    const overdue = calibrationDue(last, hours(1), day(365 + 14), policy);
    expect(overdue.state).toBe('overdue');
    expect(overdue.text).toMatch(/due 2027-01-10, and the 14-day grace ended 2027-01-24$/);
  });

  it('is due from the needle hours, whatever the date, until the grace hours are used, then overdue', { tags: ['REQ-CALIBRATION-DUE'] }, () => {
    expect(calibrationDue(last, hours(200) - 1, day(10), policy).state).toBe('ok');
    const due = calibrationDue(last, hours(200), day(10), policy);
    expect(due).toMatchObject({ state: 'due', needleHoursSince: 200 });
    expect(due.text).toMatch(/200\.0 h of needle time since, past 200 h; treatments are refused after 10 h more$/);
    expect(calibrationDue(last, hours(210) - 1, day(10), policy).state).toBe('due');
    const overdue = calibrationDue(last, hours(210), day(10), policy);
    expect(overdue.state).toBe('overdue');
    expect(overdue.text).toMatch(/210\.0 h of needle time since, past 200 h and the 10 h grace$/);
  });

  it('with no calibration on record: due, never overdue, whatever the needle time', { tags: ['REQ-CALIBRATION-DUE'] }, () => {
    const due = calibrationDue(null, 1e9, day(10_000), policy);
    expect(due).toMatchObject({ state: 'due', dueAt: null, needleHoursSince: null });
    expect(due.text).toMatch(/no calibration of this pen is on record on this host/);
  });

  it('judges by date alone when the needle count is unknown or went back', { tags: ['REQ-CALIBRATION-DUE'] }, () => {
    for (const record of [{ ...last, needleSeconds: null }, last]) {
      const now = record.needleSeconds === null ? 1e9 : last.needleSeconds - 1;
      expect(calibrationDue(record, now, day(10), policy)).toMatchObject({ state: 'ok', needleHoursSince: null });
      expect(calibrationDue(record, now, day(365 + 14), policy).state).toBe('overdue');
    }
  });
});

describe('checkCalibrationPolicy', () => {
  const raw = { calibrationIntervalDays: 365, calibrationNeedleHours: 200, calibrationGraceDays: 14, calibrationGraceNeedleHours: 10 };
  it('reads the four fields', () => {
    expect(checkCalibrationPolicy(raw)).toEqual(policy);
  });
  it('refuses a missing or non-positive field, naming it', () => {
    expect(() => checkCalibrationPolicy({ ...raw, calibrationGraceDays: 0 })).toThrow(/calibrationGraceDays must be a number above 0/);
    const missing: Record<string, unknown> = { ...raw };
    delete missing['calibrationNeedleHours'];
    expect(() => checkCalibrationPolicy(missing)).toThrow(/calibrationNeedleHours/);
  });
});
