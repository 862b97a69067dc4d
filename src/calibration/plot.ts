// A small SVG line plot of errors (µm) against depth (mm), drawn without a library for the calibration certificate:
// axes, ticks, grid, shaded and dashed symmetric limits, marked series and a legend, in a fixed viewBox so it prints.

/** Escapes text for HTML and SVG (both element content and quoted attributes). */
export const escapeMarkup = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

export type MarkerShape = 'circle' | 'square';

export interface PlotPoint {
  readonly xMm: number;
  readonly yUm: number;
}

export interface PlotSeries {
  readonly label: string;
  readonly points: readonly PlotPoint[];
  readonly color: string;
  /** Shapes differ as well as colours, so the series stay apart on a grey-scale print. */
  readonly marker: MarkerShape;
}

/** A symmetric limit ±halfWidthUm around zero: shaded (an acceptance band) or two dashed lines (a stated accuracy). */
export interface PlotLimit {
  readonly label: string;
  readonly halfWidthUm: number;
  readonly style: 'band' | 'dashed';
  readonly color: string;
}

export interface ErrorPlotOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  /** Depths the x axis must cover even without points there (the pen's depth window). */
  readonly xCoverMm: { readonly min: number; readonly max: number };
  readonly series: readonly PlotSeries[];
  readonly limits?: readonly PlotLimit[];
  /** viewBox size; the SVG scales to its container's width. */
  readonly width?: number;
  readonly height?: number;
}

const fontPx = 13;
// Ample margins so tick labels and axis titles never clip at the viewBox edge.
const margin = { left: 74, right: 20, top: 62, bottom: 54 };

/** A 1-2-5 step near span / targetCount. */
const niceStep = (span: number, targetCount: number): number => {
  const raw = span / targetCount;
  const power = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / power;
  const nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 2.5 ? 2.5 : fraction <= 5 ? 5 : 10;
  return nice * power;
};

/** Decimals enough to print every multiple of step exactly (0.25 → 2). */
const decimalsFor = (step: number): number => {
  for (let decimals = 0; decimals < 6; decimals += 1) {
    const scaled = step * 10 ** decimals;
    if (Math.abs(scaled - Math.round(scaled)) < 1e-9) return decimals;
  }
  return 6;
};

/** A number as printed on the plot and the certificate: fixed decimals, a true minus sign. */
export const formatNumber = (value: number, decimals: number): string => {
  const text = value.toFixed(decimals);
  // -0.00 would read as a negative error.
  return Number(text) === 0 ? (0).toFixed(decimals) : text.replace('-', '\u2212');
};

const ticksOver = (min: number, max: number, step: number): number[] => {
  const ticks: number[] = [];
  for (let index = Math.ceil(min / step - 1e-9); index * step <= max + step * 1e-9; index += 1) ticks.push(index * step);
  return ticks;
};

const round = (value: number): string => value.toFixed(1);

const markerSvg = (shape: MarkerShape, x: number, y: number, color: string): string =>
  shape === 'circle'
    ? `<circle class="marker" cx="${round(x)}" cy="${round(y)}" r="4.5" fill="${color}" stroke="#fff" stroke-width="1"/>`
    : `<rect class="marker" x="${round(x - 4.5)}" y="${round(y - 4.5)}" width="9" height="9" fill="#fff" stroke="${color}" stroke-width="2"/>`;

/** Estimated text width, for laying out the legend without a DOM to measure it. */
const textWidth = (text: string, sizePx: number): number => text.length * sizePx * 0.56;

/**
 * An SVG (a string, no scripts, no external references) of each series against depth, the limits behind them.
 * The y axis is symmetric around zero and covers every point and limit; non-finite points are left out.
 */
export function renderErrorPlot(options: ErrorPlotOptions): string {
  const width = options.width ?? 720;
  const height = options.height ?? 360;
  const limits = options.limits ?? [];
  const series = options.series.map((entry) => ({
    ...entry,
    points: entry.points.filter((point) => Number.isFinite(point.xMm) && Number.isFinite(point.yUm)).toSorted((a, b) => a.xMm - b.xMm),
  }));
  const plotLeft = margin.left;
  const plotRight = width - margin.right;

  // The legend runs in rows between the title and the plot, where it never covers a point; it wraps rather than clip.
  const legendEntries = [
    ...series.map((entry) => ({ label: entry.label, swatch: (x: number, y: number): string =>
      `<line x1="${round(x)}" y1="${round(y)}" x2="${round(x + 20)}" y2="${round(y)}" stroke="${entry.color}" stroke-width="2"/>` +
      markerSvg(entry.marker, x + 10, y, entry.color).replace('class="marker"', 'class="legend-marker"') })),
    ...limits.map((limit) => ({ label: limit.label, swatch: (x: number, y: number): string => (limit.style === 'band'
      ? `<rect x="${round(x)}" y="${round(y - 6)}" width="20" height="12" fill="${limit.color}" fill-opacity="0.18" stroke="${limit.color}" stroke-opacity="0.4"/>`
      : `<line x1="${round(x)}" y1="${round(y)}" x2="${round(x + 20)}" y2="${round(y)}" stroke="${limit.color}" stroke-width="1.5" stroke-dasharray="7 4"/>`) })),
  ];
  const legendRowPx = 18;
  const legendParts: string[] = [];
  let legendX = plotLeft;
  let legendY = 44;
  for (const entry of legendEntries) {
    const itemWidth = 26 + textWidth(entry.label, fontPx - 1);
    if (legendX > plotLeft && legendX + itemWidth > plotRight) {
      legendX = plotLeft;
      legendY += legendRowPx;
    }
    legendParts.push(entry.swatch(legendX, legendY),
      `<text x="${round(legendX + 26)}" y="${round(legendY + 4)}" font-size="${fontPx - 1}" fill="#222">${escapeMarkup(entry.label)}</text>`);
    legendX += itemWidth + 18;
  }
  const plotTop = margin.top + (legendY - 44);
  const plotBottom = height - margin.bottom;

  const xs = [options.xCoverMm.min, options.xCoverMm.max, ...series.flatMap((entry) => entry.points.map((point) => point.xMm))];
  const xSpanRaw = Math.max(Math.max(...xs) - Math.min(...xs), 1e-3);
  const xStep = niceStep(xSpanRaw, 6);
  // Half a step of air either side so end markers are not drawn on the frame.
  const xMin = Math.floor((Math.min(...xs) - xStep / 2) / xStep) * xStep;
  const xMax = Math.ceil((Math.max(...xs) + xStep / 2) / xStep) * xStep;

  const yNeeds = [...series.flatMap((entry) => entry.points.map((point) => Math.abs(point.yUm))),
    ...limits.map((limit) => limit.halfWidthUm).filter((value) => Number.isFinite(value))];
  const yExtent = Math.max(...yNeeds, 1) * 1.12;
  // About one tick per 32 px of height, so a short plot's labels do not crowd.
  const yStep = niceStep(2 * yExtent, Math.max(3, Math.floor((plotBottom - plotTop) / 32)));
  const yMax = Math.ceil(yExtent / yStep) * yStep;
  const yMin = -yMax;

  const px = (xMm: number): number => plotLeft + ((xMm - xMin) / (xMax - xMin)) * (plotRight - plotLeft);
  const py = (yUm: number): number => plotBottom - ((yUm - yMin) / (yMax - yMin)) * (plotBottom - plotTop);
  const xDecimals = decimalsFor(xStep);
  const yDecimals = decimalsFor(yStep);
  const parts: string[] = [];

  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>`);
  parts.push(`<text x="${plotLeft}" y="22" font-size="${fontPx + 2}" font-weight="600" fill="#111">${escapeMarkup(options.title)}</text>`);

  // Limits first, so the grid and the series draw over the shading.
  for (const limit of limits.filter((entry) => entry.style === 'band' && Number.isFinite(entry.halfWidthUm))) {
    parts.push(`<rect class="limit-band" x="${round(plotLeft)}" y="${round(py(limit.halfWidthUm))}" width="${round(plotRight - plotLeft)}" ` +
      `height="${round(py(-limit.halfWidthUm) - py(limit.halfWidthUm))}" fill="${limit.color}" fill-opacity="0.18"/>`);
  }
  for (const tick of ticksOver(yMin, yMax, yStep)) {
    const y = py(tick);
    parts.push(`<line x1="${round(plotLeft)}" y1="${round(y)}" x2="${round(plotRight)}" y2="${round(y)}" stroke="${tick === 0 ? '#555' : '#ddd'}" stroke-width="1"/>`);
    parts.push(`<text x="${round(plotLeft - 8)}" y="${round(y + 4)}" font-size="${fontPx - 1}" text-anchor="end" fill="#333">${formatNumber(tick, yDecimals)}</text>`);
  }
  for (const tick of ticksOver(xMin, xMax, xStep)) {
    const x = px(tick);
    parts.push(`<line x1="${round(x)}" y1="${round(plotTop)}" x2="${round(x)}" y2="${round(plotBottom)}" stroke="#ddd" stroke-width="1"/>`);
    parts.push(`<line x1="${round(x)}" y1="${round(plotBottom)}" x2="${round(x)}" y2="${round(plotBottom + 5)}" stroke="#333" stroke-width="1"/>`);
    parts.push(`<text x="${round(x)}" y="${round(plotBottom + 19)}" font-size="${fontPx - 1}" text-anchor="middle" fill="#333">${formatNumber(tick, xDecimals)}</text>`);
  }
  for (const limit of limits.filter((entry) => entry.style === 'dashed' && Number.isFinite(entry.halfWidthUm))) {
    for (const yUm of [limit.halfWidthUm, -limit.halfWidthUm]) {
      parts.push(`<line class="limit-line" x1="${round(plotLeft)}" y1="${round(py(yUm))}" x2="${round(plotRight)}" y2="${round(py(yUm))}" ` +
        `stroke="${limit.color}" stroke-width="1.5" stroke-dasharray="7 4"/>`);
    }
  }
  parts.push(`<rect x="${round(plotLeft)}" y="${round(plotTop)}" width="${round(plotRight - plotLeft)}" height="${round(plotBottom - plotTop)}" ` +
    'fill="none" stroke="#333" stroke-width="1"/>');
  parts.push(`<text x="${round((plotLeft + plotRight) / 2)}" y="${round(height - 12)}" font-size="${fontPx}" text-anchor="middle" fill="#111">` +
    `${escapeMarkup(options.xLabel)}</text>`);
  const yLabelX = 18;
  const yLabelY = (plotTop + plotBottom) / 2;
  parts.push(`<text x="${yLabelX}" y="${round(yLabelY)}" font-size="${fontPx}" text-anchor="middle" fill="#111" ` +
    `transform="rotate(-90 ${yLabelX} ${round(yLabelY)})">${escapeMarkup(options.yLabel)}</text>`);

  for (const entry of series) {
    const marks = entry.points.map((point) => ({ x: px(point.xMm), y: py(point.yUm) }));
    const d = marks.map((mark, index) => `${index === 0 ? 'M' : 'L'}${round(mark.x)} ${round(mark.y)}`).join(' ');
    parts.push(`<g class="series" data-series="${escapeMarkup(entry.label)}">`);
    if (marks.length > 1) parts.push(`<path class="series-line" d="${d}" fill="none" stroke="${entry.color}" stroke-width="2"/>`);
    for (const mark of marks) parts.push(markerSvg(entry.marker, mark.x, mark.y, entry.color));
    parts.push('</g>');
  }
  parts.push(`<g class="legend">${legendParts.join('')}</g>`);


  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="100%" role="img" ` +
    `aria-label="${escapeMarkup(options.title)}" font-family="Helvetica, Arial, sans-serif">${parts.join('')}</svg>`;
}
