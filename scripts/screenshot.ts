// Screenshots any HTML file with headless Chromium, and prints it to PDF when asked, to check a document's look by eye:
// npx tsx scripts/screenshot.ts FILE.html [OUT.png] [--pdf OUT.pdf] [--height PX]. Skips, saying so, without Chromium.
import { resolve } from 'node:path'; // paths given relative to the working directory
import { chromiumMissing, findChromium, renderHtml } from './chromium.ts';

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const index = args.indexOf(name);
  if (index < 0) return undefined;
  const [value] = args.splice(index, 2).slice(1);
  return value;
};
const pdf = option('--pdf');
const height = option('--height');
const [html, png] = args;
if (html === undefined || (height !== undefined && !/^\d+$/.test(height))) {
  console.error('usage: npx tsx scripts/screenshot.ts FILE.html [OUT.png] [--pdf OUT.pdf] [--height PX]  (PNG defaults to FILE.png)');
  process.exit(2);
}
const chromium = findChromium();
if (chromium === null) {
  console.log(`skipped the screenshot: ${chromiumMissing}`);
  process.exit(0);
}
const pngPath = resolve(png ?? html.replace(/\.html?$/i, '') + '.png');
try {
  renderHtml(chromium, resolve(html), { pngPath, ...(pdf === undefined ? {} : { pdfPath: resolve(pdf) }), ...(height === undefined ? {} : { heightPx: Number(height) }) });
} catch (error) {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
}
console.log(`wrote ${pngPath}${pdf === undefined ? '' : ` and ${resolve(pdf)}`}`);
