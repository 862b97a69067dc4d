// The calibration's arithmetic (src/calibration/fit.ts): exact lines come back exactly, residuals and the standard error
// match a hand calculation, backlash is above minus below, and each acceptance criterion fails at its point.
import { describe, expect, it } from 'vitest';
import { pen } from '../../hardware/description.ts';
import {
  evaluateDepthFit, evaluateSensorFit, evaluateVerification, failureReason, fitDepth, fitLine, fitSensor, type StepReading,
} from '../../src/calibration/fit.ts';

const fitPointsMm = pen.calibration.fitPointsMm;
/** Readings of a pen whose true depth is steps / stepsPerMm + zeroOffsetMm, plus an error per point (mm). */
function readingsOf(stepsPerMm: number, zeroOffsetMm: number, errorMm: (pointMm: number) => number = () => 0): StepReading[] {
  return fitPointsMm.map((pointMm) => {
    const steps = Math.round(pointMm * 1600);
    return { pointMm, steps, gaugeMm: steps / stepsPerMm + zeroOffsetMm + errorMm(pointMm) };
  });
}

describe('calibration fit', () => {
  it('recovers an exact line: steps per mm, zero offset, no residual, no predicted error', { tags: ['REQ-CALIBRATION-PROCEDURE'] }, () => {
    const fit = fitDepth(readingsOf(1590.46, 0.025), []);
    expect(fit.stepsPerMm).toBeCloseTo(1590.46, 6);
    expect(fit.zeroOffsetMm).toBeCloseTo(0.025, 9);
    for (const r of fit.residuals) expect(Math.abs(r.residualUm)).toBeLessThan(1e-6);
    expect(fit.predictedErrorUm).toBeLessThan(1e-6);
    expect(evaluateDepthFit(fit).every((c) => c.passed)).toBe(true);
    expect(failureReason(evaluateDepthFit(fit))).toBeNull();
  });

  it('gives residuals and the standard error a hand calculation gives', { tags: ['REQ-CALIBRATION-PROCEDURE'] }, () => {
    // y = x with +1, -1, -1, +1 added at x = 0, 1, 2, 3: the best line is y = x (the errors have no trend), s² = 4 / 2.
    const line = fitLine([1, -1, -1, 1].map((error, x) => ({ pointMm: x, x, y: x + error })));
    expect(line.slope).toBeCloseTo(1, 12);
    expect(line.intercept).toBeCloseTo(0, 12);
    expect(line.residuals.map((r) => Number(r.toFixed(9)))).toEqual([1, -1, -1, 1]);
    // SE at the mean: s / sqrt(n) = sqrt(2) / 2; at x = 0: s * sqrt(1/4 + 2.25 / 5).
    expect(line.standardErrorAt(1.5)).toBeCloseTo(Math.SQRT2 / 2, 12);
    expect(line.standardErrorAt(0)).toBeCloseTo(Math.SQRT2 * Math.sqrt(0.25 + 2.25 / 5), 12);
    expect(() => fitLine([{ pointMm: 1, x: 1, y: 1 }, { pointMm: 2, x: 2, y: 2 }])).toThrow(/at least 3 points/);
  });

  it('doubles the worst standard error over the window for the predicted error', { tags: ['REQ-CALIBRATION-PROCEDURE'] }, () => {
    const fit = fitDepth(readingsOf(1600, 0, (p) => (p === 1.0 || p === 1.5 ? -0.002 : 0.002)), []);
    const line = fitLine(readingsOf(1600, 0, (p) => (p === 1.0 || p === 1.5 ? -0.002 : 0.002)).map((r) => ({ pointMm: r.pointMm, x: r.steps, y: r.gaugeMm })));
    const atEnds = [pen.depthWindowMm.min, pen.depthWindowMm.max].map((d) => line.standardErrorAt((d - line.intercept) / line.slope));
    expect(fit.predictedErrorUm).toBeCloseTo(2000 * Math.max(...atEnds), 9);
    expect(fit.residuals.map((r) => Math.round(r.residualUm))).toEqual([2, -2, -2, 2]);
  });

  it('fails the residual criterion at the point off the line', { tags: ['REQ-CALIBRATION-PROCEDURE'] }, () => {
    const fit = fitDepth(readingsOf(1600, 0, (p) => (p === 1.5 ? 0.03 : 0)), []);
    const criteria = evaluateDepthFit(fit);
    expect(criteria.find((c) => c.name === 'residual')).toMatchObject({ passed: false, atMm: 1.5, limitUm: pen.calibration.acceptance.maxResidualUm });
    expect(failureReason(criteria)).toMatch(/^residual: fit residual 21\.0 µm at 1\.50 mm exceeds the limit of ±8 µm$/);
  });

  it('measures backlash as above minus below and fails it at its point', { tags: ['REQ-CALIBRATION-PROCEDURE'] }, () => {
    const fit = fitDepth(readingsOf(1600, 0), [{ pointMm: 1.0, belowMm: 1.0, aboveMm: 1.012 }, { pointMm: 1.5, belowMm: 1.5, aboveMm: 1.54 }]);
    expect(fit.backlash.map((b) => Math.round(b.backlashUm))).toEqual([12, 40]);
    const criteria = evaluateDepthFit(fit);
    expect(criteria.find((c) => c.name === 'backlash')).toMatchObject({ passed: false, atMm: 1.5 });
    expect(failureReason(criteria)).toMatch(/^backlash: backlash 40\.0 µm at 1\.50 mm exceeds the limit of ±25 µm$/);
  });

  it('fails the predicted error when the points scatter about the line', { tags: ['REQ-CALIBRATION-PROCEDURE'] }, () => {
    // ±e at the four fit points, alternating with no trend: the line stays, its standard error at the window's ends is
    // e·√2·√(1/4 + 0.75²/1.25) = 1.18 e, doubled 2.37 e. With residuals within 8 µm it stays under 20 µm, so four points
    // whose residuals pass can never fail it alone; at ±10 µm both fail.
    const scattered = (e: number) => fitDepth(readingsOf(1600, 0, (p) => (p === 1.0 || p === 1.5 ? -e : e)), []);
    expect(scattered(0.008).predictedErrorUm).toBeCloseTo(2 * 8 * Math.SQRT2 * Math.sqrt(0.25 + 0.5625 / 1.25), 6);
    const criteria = evaluateDepthFit(scattered(0.010));
    expect(criteria.find((c) => c.name === 'predicted_error')).toMatchObject({ passed: false, atMm: null });
    expect(failureReason(criteria.filter((c) => c.name === 'predicted_error'))).toMatch(
      /^predicted_error: predicted error over the window 23\.7 µm exceeds the limit of ±20 µm$/);
  });

  it('fails the verification at the worst point, and ignores points not verified', { tags: ['REQ-CALIBRATION-PROCEDURE'] }, () => {
    const result = evaluateVerification([
      { pointMm: 0.75, beforeErrorUm: 30, afterErrorUm: 3 },
      { pointMm: 1.25, beforeErrorUm: 35, afterErrorUm: -24 },
      { pointMm: 1.75, beforeErrorUm: 40, afterErrorUm: null },
    ]);
    expect(result).toMatchObject({ name: 'verification', passed: false, worstUm: -24, atMm: 1.25 });
    expect(failureReason([result])).toBe('verification: verification error -24.0 µm at 1.25 mm exceeds the limit of ±20 µm');
    expect(evaluateVerification([])).toMatchObject({ passed: true, worstUm: null });
  });

  it('fits the depth sensor and judges its residuals in µm of travel', { tags: ['REQ-CALIBRATION-PROCEDURE'] }, () => {
    const readings = fitPointsMm.map((carriageMm) => ({ pointMm: carriageMm, carriageMm, sensorMv: 510 + 1590 * carriageMm + (carriageMm === 1.0 ? 30 : 0) }));
    const fit = fitSensor(readings);
    const criteria = evaluateSensorFit(fit);
    expect(criteria[0]).toMatchObject({ name: 'residual', passed: false, atMm: 1.0 });
    const exact = fitSensor(readings.map((r) => ({ ...r, sensorMv: 510 + 1590 * r.carriageMm })));
    expect(exact.sensorZeroMv).toBeCloseTo(510, 9);
    expect(exact.sensorMvPerMm).toBeCloseTo(1590, 9);
    expect(evaluateSensorFit(exact)[0]?.passed).toBe(true);
  });
});
