// Headless Chromium for the scripts that check a document's look by eye: finds it on PATH, screenshots an HTML file
// (PNG) and prints it (PDF, A4 as the document's @page says).
import { spawnSync } from 'node:child_process'; // running Chromium
import { accessSync, constants } from 'node:fs'; // finding Chromium on PATH
import { delimiter, join } from 'node:path'; // PATH entries
import { pathToFileURL } from 'node:url'; // the file:// address Chromium opens

/** The full path of an executable on PATH, or null. */
const onPath = (command: string): string | null => {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return join(dir, command);
    } catch { /* not in this directory */ }
  }
  return null;
};

/** Chromium (or Chrome) on PATH, or null. */
export const findChromium = (): string | null =>
  ['chromium', 'chromium-browser', 'google-chrome'].map(onPath).find((path) => path !== null) ?? null;

export const chromiumMissing = 'no chromium on PATH (Debian: apt-get install chromium)';

export interface RenderOptions {
  /** Where to write the screenshot. */
  readonly pngPath?: string;
  /** Where to print the document. */
  readonly pdfPath?: string;
  /** The window, in CSS pixels; the screenshot shows this much of the page. 1240 px is A4's width at 150 dpi. */
  readonly widthPx?: number;
  readonly heightPx?: number;
}

/** Renders the HTML file with Chromium; throws saying what failed, with Chromium's own words. */
export function renderHtml(chromium: string, htmlPath: string, options: RenderOptions): void {
  const url = pathToFileURL(htmlPath).href;
  const common = ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--no-pdf-header-footer'];
  const jobs: [flag: string, path: string, extra: string[]][] = [];
  if (options.pngPath !== undefined) jobs.push(['--screenshot', options.pngPath, [`--window-size=${options.widthPx ?? 1240},${options.heightPx ?? 3000}`]]);
  if (options.pdfPath !== undefined) jobs.push(['--print-to-pdf', options.pdfPath, []]);
  for (const [flag, path, extra] of jobs) {
    const result = spawnSync(chromium, [...common, ...extra, `${flag}=${path}`, url], { encoding: 'utf8', timeout: 60_000 });
    if (result.status !== 0) {
      throw new Error(`${chromium} ${flag} failed (exit ${result.status ?? result.signal ?? 'unknown'}): ${result.stderr.trim()}`);
    }
  }
}
