// The calibration certificate: a realistic record renders with its values, self-contained, with a sound plot; hostile
// strings come out escaped; rejected and malformed records say so.
import { describe, expect, it } from 'vitest';
import { certificateNumber, renderCertificate } from '../../src/calibration/certificate.ts';
import { escapeMarkup, renderErrorPlot } from '../../src/calibration/plot.ts';
import type { CriterionResult, FitResult, GaugeReadingRecord, VerificationPoint } from '../../src/calibration/types.ts';
import type { CalibrationRecord } from '../../src/store/calibrations.ts';

const reading = (pointMm: number, use: GaugeReadingRecord['use'], gaugeMm: number[], approach: GaugeReadingRecord['approach'] = 'below'): GaugeReadingRecord => ({
  pointMm, approach, steps: Math.round(pointMm * 1600), sensorMv: null, gaugeMm,
  meanMm: gaugeMm.reduce((sum, value) => sum + value, 0) / gaugeMm.length, use,
});

const fit: FitResult = {
  stepsPerMm: 1612.3, zeroOffsetMm: -0.0412,
  residuals: [{ pointMm: 0.5, residualUm: 2.1 }, { pointMm: 1.0, residualUm: -3.4 }, { pointMm: 1.5, residualUm: 1.8 }, { pointMm: 2.0, residualUm: -0.5 }],
  backlash: [{ pointMm: 1.0, backlashUm: 11.2 }, { pointMm: 1.5, backlashUm: 9.7 }],
  predictedErrorUm: 6.3,
};
const criteria: CriterionResult[] = [
  { name: 'residual', limitUm: 8, worstUm: 3.4, atMm: 1.0, passed: true },
  { name: 'backlash', limitUm: 25, worstUm: 11.2, atMm: 1.0, passed: true },
  { name: 'predicted_error', limitUm: 20, worstUm: 6.3, atMm: 2.0, passed: true },
  { name: 'verification', limitUm: 20, worstUm: 7.8, atMm: 0.75, passed: true },
];
const verification: VerificationPoint[] = [
  { pointMm: 0.75, beforeErrorUm: -58.6, afterErrorUm: -7.8 },
  { pointMm: 1.25, beforeErrorUm: 11.9, afterErrorUm: 3.1 },
  { pointMm: 1.75, beforeErrorUm: 59.4, afterErrorUm: 6.4 },
];

const acceptedRecord: CalibrationRecord = {
  id: 17, at: '2026-11-26T09:14:03.000Z', kind: 'depth',
  pen: { board: 'pen-r1a', buildId: '0.1.0+g3f9c2a1', serial: 'MNP-0042' },
  technician: 'Dana Okafor', gaugeId: 'SYLVAC-S229-0815', gaugeDue: '2027-03-31', verdict: 'accepted', reason: null,
  readings: [
    reading(0.5, 'fit', [0.439, 0.440, 0.440]), reading(1.0, 'fit', [0.951, 0.952, 0.951]),
    reading(1.0, 'backlash', [0.962, 0.963, 0.962], 'above'), reading(1.5, 'fit', [1.468, 1.467, 1.468]),
    reading(1.5, 'backlash', [1.477, 1.477, 1.478], 'above'), reading(2.0, 'fit', [1.981, 1.982, 1.982]),
    reading(0.75, 'verify-before', [0.691, 0.692, 0.691]), reading(1.25, 'verify-before', [1.262, 1.262, 1.261]),
    reading(1.75, 'verify-before', [1.809, 1.810, 1.809]),
    reading(0.75, 'verify-after', [0.742, 0.742, 0.743]), reading(1.25, 'verify-after', [1.253, 1.253, 1.253]),
    reading(1.75, 'verify-after', [1.756, 1.757, 1.756]),
  ],
  fit: { fit, criteria }, verification,
  oldValues: { stepsPerMm: 1600, zeroOffsetMm: 0, sensorZeroMv: 500, sensorMvPerMm: 1600 },
  newValues: { stepsPerMm: 1612.3, zeroOffsetMm: -0.0412, sensorZeroMv: 500, sensorMvPerMm: 1600 },
  needleSeconds: 48_600,
};

/** The numbers inside an SVG element's attribute, for every element matching the pattern. */
const attributeValues = (svg: string, element: RegExp, attribute: string): number[] =>
  [...svg.matchAll(element)].map((match) => Number(new RegExp(`${attribute}="([^"]+)"`).exec(match[0])?.[1]));

const render = (record: CalibrationRecord): string => renderCertificate(record, { generatedAt: '2026-11-26T10:00:00.000Z' });

describe('the calibration certificate', () => {
  it('shows the pen, the people, the gauge, the fit, every verification error and the verdict', { tags: ['REQ-CALIBRATION-PROCEDURE'] }, () => {
    const html = render(acceptedRecord);
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).toContain('Depth calibration certificate');
    expect(html).toContain(certificateNumber(acceptedRecord));
    expect(certificateNumber(acceptedRecord)).toBe('CAL-000017-MNP-0042');
    for (const value of ['MNP-0042', 'pen-r1a', '0.1.0+g3f9c2a1', 'Dana Okafor', 'SYLVAC-S229-0815', '2027-03-31', '2026-11-26 09:14 UTC']) {
      expect(html).toContain(value);
    }
    expect(html).toContain('1612.3');
    expect(html).toContain('1600.0');
    expect(html).toContain('\u22120.041'); // the zero offset, with a true minus sign
    for (const point of verification) {
      expect(html).toContain(`<td class="num">${point.beforeErrorUm.toFixed(1).replace('-', '\u2212')}</td>`);
      expect(html).toContain(`<td class="num">${(point.afterErrorUm ?? 0).toFixed(1).replace('-', '\u2212')}</td>`);
    }
    for (const residual of fit.residuals) expect(html).toContain(residual.residualUm.toFixed(1).replace('-', '\u2212'));
    expect(html).toContain('11.2'); // backlash
    expect(html).toMatch(/class="verdict-word">ACCEPTED</);
    expect(html).not.toContain('REJECTED');
    expect(html.match(/<span class="pass">PASS<\/span>/g)?.length).toBe(criteria.length + verification.length);
    expect(html).not.toContain('not available');
  });

  it('is self-contained and printable: no scripts, no external references, an A4 print style', () => {
    const html = render(acceptedRecord);
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/\b(?:src|href)\s*=/i);
    expect(html).not.toMatch(/url\(|@import|<link/i);
    expect(html).toMatch(/@page\s*{\s*size:\s*A4/);
    expect(html).toContain('@media print');
  });

  it('plots one line and one marker per verification point for each series, inside the viewBox', () => {
    const html = render(acceptedRecord);
    const svgs = [...html.matchAll(/<svg[\s\S]*?<\/svg>/g)].map((match) => match[0]);
    expect(svgs).toHaveLength(2); // error vs depth, and the fit residuals
    const errorPlot = svgs[0] ?? '';
    const [, , , width, height] = /viewBox="(\S+) (\S+) (\S+) (\S+)"/.exec(errorPlot)?.map(Number) ?? [];
    expect(width).toBe(720);
    const groups = [...errorPlot.matchAll(/<g class="series" data-series="([^"]*)">([\s\S]*?)<\/g>/g)];
    expect(groups.map((group) => group[1])).toEqual(['Before (old calibration)', 'After (new calibration)']);
    for (const [, , body = ''] of groups) {
      expect(body.match(/<path class="series-line" d="M[^"]*"/g)).toHaveLength(1);
      expect(body.match(/class="marker"/g)).toHaveLength(verification.length);
      const xs = [...attributeValues(body, /<circle class="marker"[^>]*>/g, 'cx'), ...attributeValues(body, /<rect class="marker"[^>]*>/g, 'x')];
      const ys = [...attributeValues(body, /<circle class="marker"[^>]*>/g, 'cy'), ...attributeValues(body, /<rect class="marker"[^>]*>/g, 'y')];
      expect(xs).toHaveLength(verification.length);
      for (const x of xs) { expect(x).toBeGreaterThan(0); expect(x).toBeLessThan(width ?? 0); }
      for (const y of ys) { expect(y).toBeGreaterThan(0); expect(y).toBeLessThan(height ?? 0); }
      // Depth increases to the right.
      expect(xs).toEqual(xs.toSorted((a, b) => a - b));
    }
    // Before: -58.6 is below zero and 59.4 above, so the first marker is lower on the page than the last.
    const beforeYs = attributeValues(groups[0]?.[2] ?? '', /<rect class="marker"[^>]*>/g, 'y');
    expect(beforeYs[0]).toBeGreaterThan(beforeYs[2] ?? Infinity);
    expect(errorPlot).toContain('class="limit-band"');
    expect(errorPlot.match(/class="limit-line"/g)).toHaveLength(2);
    expect(errorPlot).toContain('Acceptance ±20 µm');
    expect(errorPlot).toContain('Stated accuracy ±100 µm');
  });

  it('escapes hostile strings from the record', () => {
    const html = render({
      ...acceptedRecord, technician: '<script>alert("x")</script> & O\'Neil', gaugeId: 'G"1\' onmouseover="x" & <b>',
      pen: { ...acceptedRecord.pen, serial: '<img src=x onerror=alert(1)>' },
    });
    expect(html).not.toContain('<script>');
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<b>');
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; O&#39;Neil');
    expect(html).toContain('G&quot;1&#39; onmouseover=&quot;x&quot; &amp; &lt;b&gt;');
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;'); // harmless text, not an element
  });

  it('says REJECTED with the reason for a rejected record, and is not a certificate of conformity', { tags: ['REQ-CALIBRATION-PROCEDURE'] }, () => {
    const html = render({
      ...acceptedRecord, verdict: 'rejected', reason: 'backlash 31.5 µm at 1.50 mm exceeds 25 µm', newValues: null,
      fit: { fit, criteria: criteria.map((criterion) => (criterion.name === 'backlash' ? { ...criterion, worstUm: 31.5, atMm: 1.5, passed: false } : criterion)) },
      verification: verification.map((point) => ({ ...point, afterErrorUm: null })),
    });
    expect(html).toMatch(/class="verdict-word">REJECTED</);
    expect(html).toContain('backlash 31.5 µm at 1.50 mm exceeds 25 µm');
    expect(html).toContain('Not a certificate of conformity');
    expect(html).not.toContain('Depth calibration certificate');
    expect(html).toContain('<span class="fail">FAIL</span>');
    expect(html).toContain('not stored');
    expect(html).toContain('<div class="watermark" aria-hidden="true">REJECTED</div>');
    expect(render(acceptedRecord)).not.toContain('class="watermark"');
  });

  it('renders an aborted record with missing or malformed parts as not available', () => {
    const html = render({
      ...acceptedRecord, verdict: 'aborted', reason: 'stopped by the technician (Ctrl-C) at 1.00 mm', newValues: null,
      readings: [reading(0.5, 'fit', [0.44]), { pointMm: 'x' }], fit: { fit: { stepsPerMm: 'lots' }, criteria: 'none' }, verification: null,
      gaugeDue: null,
    });
    expect(html).toMatch(/class="verdict-word">ABORTED</);
    expect(html).toContain('stopped by the technician (Ctrl-C) at 1.00 mm');
    expect(html).toContain('not available');
    expect(html).toContain('1 stored reading(s) were not in the expected form');
    expect(html).not.toContain('<svg');
  });
});

describe('the error plot', () => {
  it('keeps every marker inside the plot whatever the values, and drops non-finite points', () => {
    const svg = renderErrorPlot({
      title: 'T', xLabel: 'x', yLabel: 'y', xCoverMm: { min: 0.5, max: 2 },
      series: [{ label: 'a & b', color: '#000', marker: 'circle', points: [{ xMm: 0.1, yUm: -900 }, { xMm: 3, yUm: 4000 }, { xMm: 1, yUm: Number.NaN }] }],
      limits: [{ label: 'L', halfWidthUm: 20, style: 'dashed', color: '#f00' }],
    });
    expect(svg).toContain('data-series="a &amp; b"');
    const xs = attributeValues(svg, /<circle class="marker"[^>]*>/g, 'cx');
    const ys = attributeValues(svg, /<circle class="marker"[^>]*>/g, 'cy');
    expect(xs).toHaveLength(2);
    for (const x of xs) { expect(x).toBeGreaterThan(74); expect(x).toBeLessThan(700); }
    for (const y of ys) { expect(y).toBeGreaterThan(62); expect(y).toBeLessThan(306); }
    expect(escapeMarkup('<"&\'>')).toBe('&lt;&quot;&amp;&#39;&gt;');
  });

  it('wraps a long legend onto more rows instead of running off the right edge, and moves the plot down for it', () => {
    const labels = ['A rather long series label, number one', 'Another long series label, number two', 'And a third long label'];
    const svg = renderErrorPlot({
      title: 'T', xLabel: 'x', yLabel: 'y', xCoverMm: { min: 0.5, max: 2 },
      series: labels.map((label) => ({ label, color: '#000', marker: 'square' as const, points: [{ xMm: 1, yUm: 1 }] })),
    });
    const legend = /<g class="legend">([\s\S]*?)<\/g>/.exec(svg)?.[1] ?? '';
    const rows = new Set(attributeValues(legend, /<text [^>]*>/g, 'y'));
    expect(rows.size).toBeGreaterThan(1);
    for (const x of attributeValues(legend, /<text [^>]*>/g, 'x')) expect(x).toBeLessThan(720 - 20);
    const frameTop = Number(/<rect x="74.0" y="([^"]+)"[^>]*fill="none"/.exec(svg)?.[1]);
    expect(frameTop).toBeGreaterThan(Math.max(...rows) + 8);
  });
});
