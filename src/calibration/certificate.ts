// The calibration certificate: one stored depth calibration (src/store/calibrations.ts) as a self-contained, printable
// HTML document (inline CSS, A4, no scripts, no external resources) with its readings, fit, verification, verdict and plot.
import { pen } from '../../hardware/description.ts'; // calibration procedure and acceptance limits, tolerances, depth window
import type { CalibrationRecord, CalibrationValues } from '../store/calibrations.ts';
import { escapeMarkup as esc, formatNumber, renderErrorPlot } from './plot.ts';
import type { CriterionResult, FitResult, GaugeReadingRecord, VerificationPoint } from './types.ts';

export interface CertificateOptions {
  /** When the document was generated (ISO 8601); defaults to now. */
  readonly generatedAt?: string;
}

const notAvailable = '<span class="na">not available</span>';

// The record's JSON parts come from the store as unknown: each is checked against its shape, and what fails the check
// is shown as not available rather than trusted.
const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const isFiniteNumber = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);
const isNumberOrNull = (value: unknown): value is number | null => value === null || isFiniteNumber(value);

const isReading = (value: unknown): value is GaugeReadingRecord =>
  isRecord(value) && isFiniteNumber(value['pointMm']) && (value['approach'] === 'below' || value['approach'] === 'above') &&
  isFiniteNumber(value['steps']) && isNumberOrNull(value['sensorMv']) && Array.isArray(value['gaugeMm']) &&
  value['gaugeMm'].every(isFiniteNumber) && isFiniteNumber(value['meanMm']) &&
  ['fit', 'backlash', 'verify-before', 'verify-after'].includes(value['use'] as string);

const isFit = (value: unknown): value is FitResult =>
  isRecord(value) && isFiniteNumber(value['stepsPerMm']) && isFiniteNumber(value['zeroOffsetMm']) &&
  Array.isArray(value['residuals']) && value['residuals'].every((entry) => isRecord(entry) && isFiniteNumber(entry['pointMm']) && isFiniteNumber(entry['residualUm'])) &&
  Array.isArray(value['backlash']) && value['backlash'].every((entry) => isRecord(entry) && isFiniteNumber(entry['pointMm']) && isFiniteNumber(entry['backlashUm'])) &&
  isFiniteNumber(value['predictedErrorUm']);

const isCriterion = (value: unknown): value is CriterionResult =>
  isRecord(value) && ['residual', 'backlash', 'predicted_error', 'verification'].includes(value['name'] as string) &&
  isFiniteNumber(value['limitUm']) && isNumberOrNull(value['worstUm']) && isNumberOrNull(value['atMm']) && typeof value['passed'] === 'boolean';

const isVerificationPoint = (value: unknown): value is VerificationPoint =>
  isRecord(value) && isFiniteNumber(value['pointMm']) && isFiniteNumber(value['beforeErrorUm']) && isNumberOrNull(value['afterErrorUm']);

const isValues = (value: unknown): value is CalibrationValues =>
  isRecord(value) && isFiniteNumber(value['stepsPerMm']) && isFiniteNumber(value['zeroOffsetMm']);

/** The parts of a record that passed their checks, and how many entries of each list did not. */
interface CertificateData {
  readonly readings: readonly GaugeReadingRecord[];
  readonly unreadableReadings: number;
  readonly fit: FitResult | null;
  readonly criteria: readonly CriterionResult[] | null;
  readonly verification: readonly VerificationPoint[] | null;
  readonly unreadableVerification: number;
}

const dataOf = (record: CalibrationRecord): CertificateData => {
  const rawReadings: readonly unknown[] = Array.isArray(record.readings) ? record.readings : [];
  const readings = rawReadings.filter(isReading);
  const fitPart = isRecord(record.fit) ? record.fit : null;
  const criteria = fitPart !== null && Array.isArray(fitPart['criteria']) && fitPart['criteria'].every(isCriterion) ? fitPart['criteria'] : null;
  const rawVerification = Array.isArray(record.verification) ? record.verification as unknown[] : null;
  const verification = rawVerification?.filter(isVerificationPoint) ?? null;
  return {
    readings, unreadableReadings: rawReadings.length - readings.length,
    fit: fitPart !== null && isFit(fitPart['fit']) ? fitPart['fit'] : null, criteria,
    verification, unreadableVerification: (rawVerification?.length ?? 0) - (verification?.length ?? 0),
  };
};

const um = (value: number | null | undefined): string => (value === null || value === undefined || !Number.isFinite(value) ? notAvailable : formatNumber(value, 1));
const mm = (value: number | null | undefined, decimals = 3): string =>
  (value === null || value === undefined || !Number.isFinite(value) ? notAvailable : formatNumber(value, decimals));
const text = (value: string | null | undefined): string => (value === null || value === undefined || value === '' ? notAvailable : esc(value));
const passFail = (passed: boolean): string => (passed ? '<span class="pass">PASS</span>' : '<span class="fail">FAIL</span>');

/** "2026-11-26 01:45 UTC" from an ISO time; the raw text if it is not one. */
const dateTime = (iso: string): string => {
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? esc(iso) : `${at.toISOString().slice(0, 10)} ${at.toISOString().slice(11, 16)} UTC`;
};

const criterionNames: Record<CriterionResult['name'], string> = {
  residual: 'Fit residual, each fit point',
  backlash: 'Backlash (from above − from below)',
  predicted_error: 'Predicted error over the window (2σ)',
  verification: 'Verification error after storing',
};

const useNames: Record<GaugeReadingRecord['use'], string> = {
  'fit': 'fit', 'backlash': 'backlash', 'verify-before': 'verify (before)', 'verify-after': 'verify (after)',
};

/** Record id and pen serial, so the number names both the record and the pen it is about. */
export const certificateNumber = (record: CalibrationRecord): string =>
  `CAL-${String(record.id).padStart(6, '0')}-${record.pen.serial ?? 'NO-SERIAL'}`;

const distinct = (values: readonly number[]): number[] => [...new Set(values)].toSorted((a, b) => a - b);
const mmList = (values: readonly number[]): string => (values.length === 0 ? notAvailable : values.map((value) => formatNumber(value, 2)).join(', ') + ' mm');

function procedureSection(data: CertificateData): string {
  const calibration = pen.calibration;
  // The record's own readings say what was done; pen.json only fills in what a reading does not carry.
  const pointsOf = (use: GaugeReadingRecord['use']): number[] => distinct(data.readings.filter((reading) => reading.use === use).map((reading) => reading.pointMm));
  const perPoint = distinct(data.readings.map((reading) => reading.gaugeMm.length));
  const fitPoints = data.readings.length > 0 ? pointsOf('fit') : [...calibration.fitPointsMm];
  const backlashPoints = data.readings.length > 0 ? pointsOf('backlash') : [...calibration.backlashPointsMm];
  const verifyPoints = data.readings.length > 0 ? distinct([...pointsOf('verify-before'), ...pointsOf('verify-after')]) : [...calibration.verifyPointsMm];
  return `<section><h2>Procedure</h2><table class="kv">
    <tr><th>Method</th><td>Needle parked at each point with the needle motor off; protrusion read with a dial gauge; least-squares line of gauge depth against motor steps.</td></tr>
    <tr><th>Fit points</th><td>${mmList(fitPoints)}</td></tr>
    <tr><th>Backlash points</th><td>${mmList(backlashPoints)}</td></tr>
    <tr><th>Verification points (not in the fit)</th><td>${mmList(verifyPoints)}</td></tr>
    <tr><th>Approach</th><td>From shallower (moving deeper, as in treatment); at backlash points also from ${formatNumber(calibration.approachMm, 2)} mm deeper</td></tr>
    <tr><th>Readings per point</th><td>${perPoint.length === 0 ? String(calibration.readingsPerPoint) : perPoint.join(', ')}, averaged; settle ${calibration.settleMs} ms after each move</td></tr>
    <tr><th>Depth window</th><td>${formatNumber(pen.depthWindowMm.min, 2)} – ${formatNumber(pen.depthWindowMm.max, 2)} mm</td></tr>
  </table></section>`;
}

function readingsSection(data: CertificateData): string {
  const rows = data.readings.map((reading, index) => `<tr><td>${index + 1}</td><td>${mm(reading.pointMm, 2)}</td><td>${reading.approach}</td>
    <td>${useNames[reading.use]}</td><td class="num">${reading.steps}</td><td class="num">${reading.gaugeMm.map((value) => formatNumber(value, 3)).join(' · ')}</td>
    <td class="num">${mm(reading.meanMm)}</td><td class="num">${um((reading.meanMm - reading.pointMm) * 1000)}</td>
    <td class="num">${reading.sensorMv === null ? '—' : formatNumber(reading.sensorMv, 0)}</td></tr>`).join('');
  const unreadable = data.unreadableReadings > 0 ? `<p class="note">${data.unreadableReadings} stored reading(s) were not in the expected form and are not shown.</p>` : '';
  return `<section class="breakable annex"><h2>Annex: every reading</h2>${data.readings.length === 0 ? `<p>${notAvailable}</p>` : `<table class="grid compact">
    <thead><tr><th>#</th><th>Point (mm)</th><th>From</th><th>Use</th><th>Steps</th><th>Gauge readings (mm)</th><th>Mean (mm)</th><th>Mean − point (µm)</th><th>Sensor (mV)</th></tr></thead>
    <tbody>${rows}</tbody></table>`}${unreadable}</section>`;
}

function fitSection(record: CalibrationRecord, data: CertificateData): string {
  const old = isValues(record.oldValues) ? record.oldValues : null;
  const stored = isValues(record.newValues) ? record.newValues : null;
  const storedCell = (value: number | undefined, decimals: number): string => (stored === null ? '<span class="na">not stored</span>' : mm(value, decimals));
  const fit = data.fit;
  const residuals = fit === null ? `<p>${notAvailable}</p>` : fit.residuals.length === 0 ? '<p>none</p>' : `<table class="grid narrow">
    <thead><tr><th>Point (mm)</th><th>Residual (µm)</th></tr></thead>
    <tbody>${fit.residuals.map((entry) => `<tr><td>${mm(entry.pointMm, 2)}</td><td class="num">${um(entry.residualUm)}</td></tr>`).join('')}</tbody></table>`;
  const backlash = fit === null ? `<p>${notAvailable}</p>` : fit.backlash.length === 0 ? '<p>none measured</p>' : `<table class="grid narrow">
    <thead><tr><th>Point (mm)</th><th>Backlash (µm)</th></tr></thead>
    <tbody>${fit.backlash.map((entry) => `<tr><td>${mm(entry.pointMm, 2)}</td><td class="num">${um(entry.backlashUm)}</td></tr>`).join('')}</tbody></table>`;
  return `<section><h2>Fit</h2><table class="grid">
    <thead><tr><th>Quantity</th><th>In force before</th><th>Fitted</th><th>In force after</th></tr></thead>
    <tbody>
      <tr><td>Steps per mm</td><td class="num">${mm(old?.stepsPerMm, 1)}</td><td class="num">${mm(fit?.stepsPerMm, 1)}</td><td class="num">${storedCell(stored?.stepsPerMm, 1)}</td></tr>
      <tr><td>Zero offset (mm)</td><td class="num">${mm(old?.zeroOffsetMm)}</td><td class="num">${mm(fit?.zeroOffsetMm)}</td><td class="num">${storedCell(stored?.zeroOffsetMm, 3)}</td></tr>
      <tr><td>Predicted error over the window, 2σ (µm)</td><td></td><td class="num">${um(fit?.predictedErrorUm)}</td><td></td></tr>
    </tbody></table>
    <div class="pair"><div><h3>Residuals per fit point</h3>${residuals}</div><div><h3>Backlash</h3>${backlash}</div></div></section>`;
}

function criteriaSection(data: CertificateData): string {
  if (data.criteria === null) return `<section><h2>Acceptance criteria</h2><p>${notAvailable}</p></section>`;
  const rows = data.criteria.map((criterion) => `<tr><td>${criterionNames[criterion.name]}</td><td class="num">± ${um(criterion.limitUm)}</td>
    <td class="num">${criterion.worstUm === null ? '<span class="na">not reached</span>' : um(criterion.worstUm)}</td>
    <td class="num">${criterion.atMm === null ? '—' : mm(criterion.atMm, 2)}</td><td>${passFail(criterion.passed)}</td></tr>`).join('');
  return `<section><h2>Acceptance criteria</h2><table class="grid">
    <thead><tr><th>Criterion</th><th>Limit (µm)</th><th>Worst (µm)</th><th>At (mm)</th><th>Result</th></tr></thead><tbody>${rows}</tbody></table></section>`;
}

/** The verification limit the record was judged by; pen.json's when the record does not carry it. */
const verifyLimitUm = (data: CertificateData): number =>
  data.criteria?.find((criterion) => criterion.name === 'verification')?.limitUm ?? pen.calibration.acceptance.maxVerifyErrorUm;

function verificationSection(data: CertificateData): string {
  if (data.verification === null || data.verification.length === 0) return `<section><h2>Verification</h2><p>${notAvailable}</p></section>`;
  const limit = verifyLimitUm(data);
  const rows = data.verification.map((point) => `<tr><td>${mm(point.pointMm, 2)}</td><td class="num">${um(point.beforeErrorUm)}</td>
    <td class="num">${point.afterErrorUm === null ? '<span class="na">not measured</span>' : um(point.afterErrorUm)}</td>
    <td>${point.afterErrorUm === null ? '—' : passFail(Math.abs(point.afterErrorUm) <= limit)}</td></tr>`).join('');
  const unreadable = data.unreadableVerification > 0 ? `<p class="note">${data.unreadableVerification} verification point(s) were not in the expected form and are not shown.</p>` : '';
  return `<section><h2>Verification at points not used in the fit</h2><p class="note">Error = gauge − commanded depth, µm; limit ± ${formatNumber(limit, 0)} µm after storing.</p>
    <table class="grid"><thead><tr><th>Point (mm)</th><th>Before (old calibration)</th><th>After (new calibration)</th><th>After within limit</th></tr></thead>
    <tbody>${rows}</tbody></table>${unreadable}</section>`;
}

function plotSection(data: CertificateData): string {
  const accuracyUm = pen.tolerances.depthAccuracyUm;
  const limitUm = verifyLimitUm(data);
  const verification = data.verification ?? [];
  const errorPlot = verification.length === 0 ? `<p>Error plot: ${notAvailable}</p>` : renderErrorPlot({
    title: 'Depth error vs depth, before and after calibration',
    xLabel: 'Commanded depth (mm)', yLabel: 'Error: gauge − commanded (µm)', xCoverMm: pen.depthWindowMm,
    series: [
      { label: 'Before (old calibration)', color: '#c2410c', marker: 'square', points: verification.map((point) => ({ xMm: point.pointMm, yUm: point.beforeErrorUm })) },
      { label: verification.some((point) => point.afterErrorUm !== null) ? 'After (new calibration)' : 'After: not measured', color: '#1d4ed8', marker: 'circle',
        points: verification.flatMap((point) => (point.afterErrorUm === null ? [] : [{ xMm: point.pointMm, yUm: point.afterErrorUm }])) },
    ],
    limits: [
      { label: `Acceptance ±${formatNumber(limitUm, 0)} µm`, halfWidthUm: limitUm, style: 'band', color: '#16a34a' },
      { label: `Stated accuracy ±${formatNumber(accuracyUm, 0)} µm`, halfWidthUm: accuracyUm, style: 'dashed', color: '#7c3aed' },
    ],
  });
  const residualLimitUm = data.criteria?.find((criterion) => criterion.name === 'residual')?.limitUm ?? pen.calibration.acceptance.maxResidualUm;
  const residualPlot = data.fit === null || data.fit.residuals.length === 0 ? '' : renderErrorPlot({
    title: 'Fit residuals', xLabel: 'Depth (mm)', yLabel: 'Residual (µm)', xCoverMm: pen.depthWindowMm, height: 200,
    series: [{ label: 'Residual (gauge − fitted line)', color: '#0f766e', marker: 'circle',
      points: data.fit.residuals.map((entry) => ({ xMm: entry.pointMm, yUm: entry.residualUm })) }],
    limits: [{ label: `Acceptance ±${formatNumber(residualLimitUm, 0)} µm`, halfWidthUm: residualLimitUm, style: 'band', color: '#16a34a' }],
  });
  return `<section class="plots"><h2>Error vs depth</h2><div class="plot">${errorPlot}</div>${residualPlot === '' ? '' : `<div class="plot small">${residualPlot}</div>`}</section>`;
}

function verdictBlock(record: CalibrationRecord): string {
  // Escaped rather than mapped: a verdict the store holds is shown as it is, never silently as another.
  const verdict = esc(record.verdict.toUpperCase());
  const explanation = record.verdict === 'accepted'
    ? 'The new calibration met every acceptance criterion, was stored in the pen and verified.'
    : record.verdict === 'rejected'
      ? 'The calibration failed its acceptance criteria. The pen keeps (or was restored to) its previous calibration. This document is not a certificate of conformity.'
      : 'The procedure stopped before a new calibration was stored. The previous calibration remains in force. This document is not a certificate of conformity.';
  const reason = record.reason === null || record.reason === '' ? '' : `<p class="reason"><strong>Reason:</strong> ${esc(record.reason)}</p>`;
  return `<section class="verdict verdict-${record.verdict === 'accepted' ? 'accepted' : 'failed'}"><div class="verdict-word">${verdict}</div>
    <div><p>${explanation}</p>${reason}</div></section>`;
}

const css = `
  @page { size: A4; margin: 14mm 13mm 16mm 13mm; }
  * { box-sizing: border-box; }
  html { background: #e5e7eb; }
  body { font: 10pt/1.38 Helvetica, Arial, sans-serif; color: #111; margin: 0 auto; padding: 14mm 13mm; max-width: 210mm; background: #fff; }
  h1 { font-size: 19pt; margin: 0; }
  h2 { font-size: 12pt; margin: 14px 0 6px; padding-bottom: 2px; border-bottom: 1.5px solid #333; }
  h3 { font-size: 10pt; margin: 8px 0 4px; }
  header { display: flex; justify-content: space-between; align-items: flex-end; gap: 12px; border-bottom: 3px solid #111; padding-bottom: 6px; }
  header .number { text-align: right; font-size: 9.5pt; }
  header .number strong { font-size: 11pt; font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; }
  .subtitle { margin: 2px 0 0; color: #444; }
  table { border-collapse: collapse; width: 100%; }
  .kv th { text-align: left; font-weight: 600; width: 34%; padding: 2px 8px 2px 0; vertical-align: top; }
  .kv td { padding: 2px 0; }
  .grid th, .grid td { border: 1px solid #9ca3af; padding: 3px 6px; text-align: left; vertical-align: top; }
  .grid thead th { background: #f3f4f6; font-weight: 600; }
  .grid td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  .grid.narrow { width: auto; min-width: 60%; }
  .grid.compact { font-size: 9pt; }
  .grid.compact td { white-space: nowrap; }
  .identity { display: grid; grid-template-columns: 1fr 1fr; gap: 0 20px; }
  .pair { display: grid; grid-template-columns: 1fr 1fr; gap: 20px; }
  .na { color: #6b7280; font-style: italic; }
  .note { color: #374151; font-size: 9pt; margin: 4px 0; }
  .pass { color: #15803d; font-weight: 700; }
  .fail { color: #b91c1c; font-weight: 700; }
  .warn { color: #b91c1c; font-weight: 600; }
  .verdict { display: flex; align-items: center; gap: 18px; margin: 14px 0 4px; padding: 10px 14px; border: 3px solid; border-radius: 4px; }
  .verdict p { margin: 2px 0; }
  .verdict-word { font-size: 24pt; font-weight: 800; letter-spacing: 0.06em; }
  .verdict-accepted { border-color: #15803d; background: #f0fdf4; }
  .verdict-accepted .verdict-word { color: #15803d; }
  .verdict-failed { border-color: #b91c1c; background: #fef2f2; }
  .verdict-failed .verdict-word { color: #b91c1c; }
  .plot svg { display: block; width: 100%; height: auto; }
  .plot.small { margin-top: 10px; }
  .signatures { display: grid; grid-template-columns: 1fr 1fr; gap: 36px; margin-top: 18px; }
  .signature .line { border-bottom: 1px solid #111; height: 30px; }
  .signature p { margin: 3px 0 0; font-size: 9pt; }
  footer { margin-top: 18px; font-size: 8pt; color: #4b5563; border-top: 1px solid #d1d5db; padding-top: 4px; }
  /* Fixed, so a printed report carries it on every page: no page of it can pass for a certificate. */
  .watermark { position: fixed; top: 42%; left: 0; right: 0; text-align: center; font-size: 72pt; font-weight: 800; letter-spacing: 0.08em;
    color: rgba(185, 28, 28, 0.09); transform: rotate(-32deg); pointer-events: none; z-index: 10; }
  section { break-inside: avoid; }
  section.breakable { break-inside: auto; }
  thead { display: table-header-group; }
  tr { break-inside: avoid; }
  .plots { break-inside: auto; }
  .plot { break-inside: avoid; }
  .annex { margin-top: 24px; }
  @media print {
    html { background: none; }
    body { padding: 0; max-width: none; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  }
`;

/**
 * The certificate of one calibration record as a complete HTML document. Every string from the record is escaped;
 * parts of the record that are missing or not in the shape src/calibration/types.ts describes read "not available".
 * A record that was not accepted is titled a report and says it is not a certificate of conformity.
 */
export function renderCertificate(record: CalibrationRecord, options: CertificateOptions = {}): string {
  const data = dataOf(record);
  const accepted = record.verdict === 'accepted' && record.kind === 'depth';
  const title = accepted ? 'Depth calibration certificate' : 'Depth calibration report';
  const subtitle = accepted ? 'Guided depth calibration against a dial gauge'
    : `<span class="warn">Not a certificate of conformity: calibration ${esc(record.verdict.toUpperCase())}</span>`;
  const kindNote = record.kind === 'depth' ? ''
    : `<p class="warn">This record is a ${esc(record.kind)} calibration; this document describes depth calibrations, so parts of it do not apply.</p>`;
  const gaugeOverdue = record.gaugeDue !== null && /^\d{4}-\d{2}-\d{2}$/.test(record.gaugeDue) && record.gaugeDue < record.at.slice(0, 10)
    ? ' <span class="warn">(overdue at the time of calibration)</span>' : '';
  const needleTime = record.needleSeconds === null || !Number.isFinite(record.needleSeconds) ? notAvailable
    : `${formatNumber(record.needleSeconds / 3600, 1)} h`;
  const generatedAt = options.generatedAt ?? new Date().toISOString();
  const number = certificateNumber(record);

  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} ${esc(number)}</title>
<style>${css}</style></head>
<body>
${accepted ? '' : `<div class="watermark" aria-hidden="true">${esc(record.verdict.toUpperCase())}</div>`}
<header><div><h1>${title}</h1><p class="subtitle">${subtitle}</p></div>
  <div class="number">Certificate no.<br><strong>${esc(number)}</strong></div></header>
${kindNote}
${verdictBlock(record)}
<section class="identity">
  <div><h2>Pen</h2><table class="kv">
    <tr><th>Serial</th><td>${text(record.pen.serial)}</td></tr>
    <tr><th>Board</th><td>${text(record.pen.board)}</td></tr>
    <tr><th>Firmware build</th><td>${text(record.pen.buildId)}</td></tr>
    <tr><th>Needle time</th><td>${needleTime}</td></tr>
  </table></div>
  <div><h2>Calibration</h2><table class="kv">
    <tr><th>Date</th><td>${dateTime(record.at)}</td></tr>
    <tr><th>Technician</th><td>${text(record.technician)}</td></tr>
    <tr><th>Gauge</th><td>${text(record.gaugeId)}</td></tr>
    <tr><th>Gauge calibration due</th><td>${text(record.gaugeDue)}${gaugeOverdue}</td></tr>
  </table></div>
</section>
${procedureSection(data)}
${fitSection(record, data)}
${criteriaSection(data)}
${verificationSection(data)}
${plotSection(data)}
<section class="signatures">
  <div class="signature"><div class="line"></div><p>Technician: ${text(record.technician)} — signature and date</p></div>
  <div class="signature"><div class="line"></div><p>Reviewed by — name, signature and date</p></div>
</section>
${readingsSection(data)}
<footer>${esc(number)} · record ${record.id} · generated ${dateTime(generatedAt)} by the pen host (pen calibration). Errors are gauge reading minus commanded depth.
Acceptance limits: hardware/pen.json calibration.acceptance; stated accuracy ±${formatNumber(pen.tolerances.depthAccuracyUm, 0)} µm (tolerances.depthAccuracyUm).</footer>
</body></html>
`;
}
