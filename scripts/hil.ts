// `npm run hil`: the HIL suite (tests/hil/hil.test.ts) on the virtual bench, or on a real one when PEN_PORT and
// RIG_PORT are set, then its reports: JUnit XML and a self-contained HTML report naming the bench, in --out.
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { htmlReport } from '../src/qa/html-report.ts';
import { junitXml } from '../src/qa/junit.ts';
import { requirementSet } from '../src/qa/requirements.ts';
import { readResults, type RunResults } from '../src/qa/results.ts';
import { runVitest } from './vitest-process.ts';

const help = `usage: npm run hil -- [--rig-firmware ours|standard|HEX] [--out DIR] [--json]

Runs the HIL suite against the virtual bench (a pen sim serving the pen, its rig, dial gauge and control channel), or
against a real bench when PEN_PORT and RIG_PORT name the pen's and the rig's serial ports (GAUGE_PORT optional; the
pen's role keys from PEN_KEYS_DIR or the default keys folder). Tests a real bench cannot run are reported as not
applicable, with the reason.

  --rig-firmware   the virtual rig's firmware: ours (firmware/build/rig.hex, the default), standard (stock
                   StandardFirmata, fetched by scripts/setup.sh) or an Intel HEX file; a real rig runs its own
  --out DIR        where the reports go (default reports/hil): junit.xml, report.html, results.json
  --json           print the outcome as one JSON object instead of the summary lines

Exit: 0 every test passed or was not applicable; 1 a test failed; 2 usage; 130 interrupted.`;

function usage(message: string): never {
  console.error(`npm run hil: ${message}\n\n${help}`);
  process.exit(2);
}

let flags;
try {
  flags = parseArgs({
    args: process.argv.slice(2).filter((a) => a !== '--'),
    options: { 'rig-firmware': { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  }).values;
} catch (error) {
  usage(error instanceof Error ? error.message : String(error));
}
if (flags.help === true) {
  console.log(help);
  process.exit(0);
}
const rigFirmware = flags['rig-firmware'] ?? 'ours';
if (!['ours', 'standard'].includes(rigFirmware) && !existsSync(rigFirmware)) {
  usage(`--rig-firmware ${rigFirmware}: give ours, standard or an existing Intel HEX file`);
}
const outDir = resolve(flags.out ?? 'reports/hil');
mkdirSync(outDir, { recursive: true });
const resultsFile = join(outDir, 'results.json');
rmSync(resultsFile, { force: true });

const { code, interrupted } = await runVitest(['--project', 'hil', '--reporter=default', '--reporter=./src/qa/results-reporter.ts'],
  { ...process.env, PEN_TEST_RESULTS: resultsFile, HIL_RIG_FIRMWARE: rigFirmware });
if (interrupted) {
  console.error('npm run hil: interrupted; no reports written');
  process.exit(130);
}
if (!existsSync(resultsFile)) {
  console.error(`npm run hil: the suite left no results (${resultsFile}); vitest exited ${code ?? 'on a signal'}`);
  process.exit(1);
}

const results: RunResults = readResults(resultsFile);
const benchIdentity = results.identity['bench'] as { description?: string; kind?: string } | undefined;
const benchDescription = benchIdentity?.description ?? 'the bench (not recorded)';
const junitPath = join(outDir, 'junit.xml');
const htmlPath = join(outDir, 'report.html');
writeFileSync(junitPath, junitXml(results, requirementSet, { name: 'pen HIL' }));
writeFileSync(htmlPath, htmlReport(results, requirementSet, { title: `HIL report: the ${benchIdentity?.kind ?? 'unknown'} bench`, resultsPath: resultsFile }));

const count = (outcome: string): number => results.tests.filter((t) => t.outcome === outcome).length;
const summary = {
  bench: benchDescription, passed: count('passed'), failed: count('failed'), notApplicable: count('not-applicable'),
  skipped: count('skipped'), durationS: Number((results.durationMs / 1000).toFixed(1)),
  figures: results.tests.flatMap((t) => t.figures), reports: { junit: junitPath, html: htmlPath, results: resultsFile },
};
if (flags.json === true) {
  console.log(JSON.stringify(summary, null, 2));
} else {
  console.log(`\nHIL on ${summary.bench}: ${summary.passed} passed, ${summary.failed} failed, ${summary.notApplicable} not applicable, ` +
    `${summary.skipped} skipped, in ${summary.durationS} s`);
  console.log(`measured:\n  ${summary.figures.join('\n  ')}`);
  console.log(`reports: ${htmlPath}\n         ${junitPath}`);
}
process.exitCode = summary.failed > 0 || code !== 0 ? 1 : 0;
