// Renders a sample calibration certificate and has headless Chromium screenshot it (PNG) and print it (PDF), so its look
// can be checked by eye: npx tsx scripts/screenshot-certificate.ts [--rejected] [--out DIR]. Skips, saying so, without Chromium.
import { writeFileSync } from 'node:fs'; // writing the HTML
import { join, resolve } from 'node:path'; // output paths
import { pen } from '../hardware/description.ts'; // the procedure's points and acceptance limits
import { renderCertificate } from '../src/calibration/certificate.ts';
import type { CriterionResult, GaugeReadingRecord } from '../src/calibration/types.ts';
import type { CalibrationRecord } from '../src/store/calibrations.ts';
import { chromiumMissing, findChromium, renderHtml } from './chromium.ts'; // headless Chromium: PNG and PDF

const args = process.argv.slice(2);
const rejected = args.includes('--rejected');
const outIndex = args.indexOf('--out');
const outDir = resolve(outIndex >= 0 ? args[outIndex + 1] ?? '/tmp' : '/tmp');
const name = rejected ? 'cert-rejected' : 'cert';

// A plausible pen, so the sample's numbers agree with each other: 0.8 % more steps per mm than nominal, a 45 µm zero
// offset, a slight screw wobble (the residuals), 11 µm of backlash (31 µm for --rejected), read with a 1 µm gauge.
const nominal = { stepsPerMm: 1600, zeroOffsetMm: 0, sensorZeroMv: 500, sensorMvPerMm: 1600 };
const backlashMm = rejected ? 0.0315 : 0.011;
const trueDepthMm = (steps: number): number => steps / 1612.3 + 0.045 + 0.003 * Math.sin((steps / 1612.3) * 4.8);
const noiseMm = [0.0008, -0.0004, 0.0002];
const reading = (pointMm: number, use: GaugeReadingRecord['use'], approach: GaugeReadingRecord['approach'], values: typeof nominal): GaugeReadingRecord => {
  const steps = Math.round((pointMm - values.zeroOffsetMm) * values.stepsPerMm);
  const gaugeMm = noiseMm.map((noise) => Math.round((trueDepthMm(steps) + (approach === 'above' ? backlashMm : 0) + noise) * 1000) / 1000);
  return { pointMm, approach, steps, sensorMv: null, gaugeMm, meanMm: gaugeMm.reduce((sum, value) => sum + value, 0) / gaugeMm.length, use };
};
const { fitPointsMm, backlashPointsMm, verifyPointsMm, acceptance } = pen.calibration;
const fitReadings = fitPointsMm.map((pointMm) => reading(pointMm, 'fit', 'below', nominal));
const backlashReadings = backlashPointsMm.map((pointMm) => reading(pointMm, 'backlash', 'above', nominal));
const beforeReadings = verifyPointsMm.map((pointMm) => reading(pointMm, 'verify-before', 'below', nominal));

// Least squares of gauge depth against steps, as the procedure fits it.
const n = fitReadings.length;
const meanSteps = fitReadings.reduce((sum, entry) => sum + entry.steps, 0) / n;
const meanGauge = fitReadings.reduce((sum, entry) => sum + entry.meanMm, 0) / n;
const sxx = fitReadings.reduce((sum, entry) => sum + (entry.steps - meanSteps) ** 2, 0);
const slope = fitReadings.reduce((sum, entry) => sum + (entry.steps - meanSteps) * (entry.meanMm - meanGauge), 0) / sxx;
const intercept = meanGauge - slope * meanSteps;
const residuals = fitReadings.map((entry) => ({ pointMm: entry.pointMm, residualUm: (entry.meanMm - (intercept + slope * entry.steps)) * 1000 }));
const sigmaMm = Math.sqrt(residuals.reduce((sum, entry) => sum + (entry.residualUm / 1000) ** 2, 0) / (n - 2));
const predictedErrorUm = Math.max(...[pen.depthWindowMm.min, pen.depthWindowMm.max].map((depthMm) =>
  2 * sigmaMm * Math.sqrt(1 / n + ((depthMm - intercept) / slope - meanSteps) ** 2 / sxx) * 1000));
const fitted = { ...nominal, stepsPerMm: Math.round(10 / slope) / 10, zeroOffsetMm: Math.round(intercept * 10000) / 10000 };
const backlash = backlashReadings.map((above) => ({
  pointMm: above.pointMm, backlashUm: (above.meanMm - (fitReadings.find((below) => below.pointMm === above.pointMm)?.meanMm ?? Number.NaN)) * 1000,
}));
const afterReadings = rejected ? [] : verifyPointsMm.map((pointMm) => reading(pointMm, 'verify-after', 'below', fitted));
const verification = beforeReadings.map((before, index) => ({
  pointMm: before.pointMm, beforeErrorUm: (before.meanMm - before.pointMm) * 1000,
  afterErrorUm: afterReadings[index] === undefined ? null : (afterReadings[index].meanMm - afterReadings[index].pointMm) * 1000,
}));
const worst = <T>(entries: readonly T[], valueOf: (entry: T) => number | null, at: (entry: T) => number): { worstUm: number | null; atMm: number | null } => {
  const found = entries.filter((entry) => valueOf(entry) !== null).toSorted((a, b) => Math.abs(valueOf(b) ?? 0) - Math.abs(valueOf(a) ?? 0))[0];
  return found === undefined ? { worstUm: null, atMm: null } : { worstUm: Math.abs(valueOf(found) ?? 0), atMm: at(found) };
};
const criterion = (name: CriterionResult['name'], limitUm: number, found: { worstUm: number | null; atMm: number | null }): CriterionResult =>
  ({ name, limitUm, ...found, passed: found.worstUm !== null && found.worstUm <= limitUm });
const criteria = [
  criterion('residual', acceptance.maxResidualUm, worst(residuals, (entry) => entry.residualUm, (entry) => entry.pointMm)),
  criterion('backlash', acceptance.maxBacklashUm, worst(backlash, (entry) => entry.backlashUm, (entry) => entry.pointMm)),
  criterion('predicted_error', acceptance.maxPredictedErrorUm, { worstUm: predictedErrorUm, atMm: pen.depthWindowMm.max }),
  criterion('verification', acceptance.maxVerifyErrorUm, worst(verification, (entry) => entry.afterErrorUm, (entry) => entry.pointMm)),
];
const failedBacklash = backlash.toSorted((a, b) => b.backlashUm - a.backlashUm).find((entry) => entry.backlashUm > acceptance.maxBacklashUm);

const record: CalibrationRecord = {
  id: 17, at: '2026-11-26T09:14:03.000Z', kind: 'depth',
  pen: { board: 'pen-r1a', buildId: '0.1.0+g3f9c2a1', serial: 'MNP-0042' },
  technician: 'Dana Okafor', gaugeId: 'SYLVAC-S229-0815', gaugeDue: '2027-03-31',
  verdict: rejected ? 'rejected' : 'accepted',
  reason: rejected && failedBacklash !== undefined
    ? `backlash ${failedBacklash.backlashUm.toFixed(1)} µm at ${failedBacklash.pointMm.toFixed(2)} mm exceeds the limit of ${acceptance.maxBacklashUm} µm (calibration.acceptance.maxBacklashUm)`
    : null,
  readings: [...fitReadings, ...backlashReadings, ...beforeReadings, ...afterReadings],
  fit: { fit: { stepsPerMm: fitted.stepsPerMm, zeroOffsetMm: fitted.zeroOffsetMm, residuals, backlash, predictedErrorUm }, criteria },
  verification, oldValues: nominal, newValues: rejected ? null : fitted, needleSeconds: 48_600,
};

const htmlPath = join(outDir, `${name}.html`);
writeFileSync(htmlPath, renderCertificate(record));
console.log(`wrote ${htmlPath}`);

const chromium = findChromium();
if (chromium === null) {
  console.log(`skipped the screenshot: ${chromiumMissing}`);
  process.exit(0);
}
// A taller window than A4 shows the whole document in one picture.
const pngPath = join(outDir, `${name}.png`);
const pdfPath = join(outDir, `${name}.pdf`);
try {
  renderHtml(chromium, htmlPath, { pngPath, pdfPath, heightPx: 3000 });
} catch (error) {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
}
console.log(`wrote ${pngPath}`);
console.log(`wrote ${pdfPath}`);
