// Renders the HIL report and JUnit XML of a sample run (tests/fixtures/qa-results.ts) and has headless Chromium
// screenshot (PNG) and print (PDF) the report, so its look can be checked by eye:
// npx tsx scripts/screenshot-hil-report.ts [--out DIR] [--results FILE]. Skips the pictures, saying so, without Chromium.
import { writeFileSync } from 'node:fs'; // writing the report and the XML
import { join, resolve } from 'node:path'; // output paths
import { htmlReport } from '../src/qa/html-report.ts';
import { junitXml } from '../src/qa/junit.ts';
import { requirementSet } from '../src/qa/requirements.ts'; // the project's requirements, for --results
import { readResults } from '../src/qa/results.ts';
import { sampleResults, sampleSet } from '../tests/fixtures/qa-results.ts';
import { chromiumMissing, findChromium, renderHtml } from './chromium.ts'; // headless Chromium: PNG and PDF

const args = process.argv.slice(2);
const valueOf = (flag: string): string | undefined => {
  const index = args.indexOf(flag);
  return index >= 0 ? args[index + 1] : undefined;
};
const outDir = resolve(valueOf('--out') ?? '/tmp');
// A real results file is read against the project's requirements; the sample against its own set.
const resultsFile = valueOf('--results');
const [results, set] = resultsFile === undefined ? [sampleResults, sampleSet] : [readResults(resultsFile), requirementSet];

const htmlPath = join(outDir, 'hil-report.html');
const xmlPath = join(outDir, 'hil-junit.xml');
writeFileSync(htmlPath, htmlReport(results, set, { ...(resultsFile === undefined ? {} : { resultsPath: resultsFile }) }));
writeFileSync(xmlPath, junitXml(results, set, { name: 'pen HIL' }));
console.log(`wrote ${htmlPath}\nwrote ${xmlPath}`);

const chromium = findChromium();
if (chromium === null) {
  console.log(`skipped the screenshot: ${chromiumMissing}`);
  process.exit(0);
}
const pngPath = join(outDir, 'hil-report.png');
const pdfPath = join(outDir, 'hil-report.pdf');
try {
  renderHtml(chromium, htmlPath, { pngPath, pdfPath, heightPx: 3600 });
} catch (error) {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
}
console.log(`wrote ${pngPath}\nwrote ${pdfPath}`);
