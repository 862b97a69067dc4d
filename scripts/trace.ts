// Checks an existing results file against hardware/requirements.json: which requirements and hazard controls have a
// passing test. npx tsx scripts/trace.ts [--results FILE] [--json]; exit 0 all verified, 1 a requirement or control
// untested or failed, 2 usage (a bad flag, a results file that cannot be read).
import { parseArgs } from 'node:util'; // the flags
import { requirementSet } from '../src/qa/requirements.ts';
import { readResults, resultsPath, type RunResults, type TestRecord } from '../src/qa/results.ts';
import { checkTrace, reportLines } from '../src/qa/trace-check.ts';
import { trace } from '../src/qa/trace.ts';

const usage = `usage: npx tsx scripts/trace.ts [--results FILE] [--json]

Checks a test run's results file (written by every npm test; default $PEN_TEST_RESULTS, else reports/test-results.json)
against hardware/requirements.json: each requirement is verified when a test tagged with it passed and none failed, and
each hazard control when all of its requirements are. Prints a summary and names every requirement and control without
a passing test.

  --results FILE  the results file to check
  --json          print the verdicts as JSON: requirements (id, verdict, tests), hazards (id, verdict, controls),
                  unknown tags
  --help          this text

exit: 0 every requirement and control verified, 1 one untested or failed, 2 usage or an unreadable results file`;

function fail(message: string): never {
  console.error(`trace: ${message}\n\n${usage}`);
  process.exit(2);
}

let values: { results?: string | undefined; json?: boolean | undefined; help?: boolean | undefined };
try {
  ({ values } = parseArgs({
    options: { results: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
    allowPositionals: false,
  }));
} catch (error) {
  fail((error as Error).message);
}
if (values.help === true) {
  console.log(usage);
  process.exit(0);
}

const file = values.results ?? resultsPath();
let results: RunResults;
try {
  results = readResults(file);
  if (!Array.isArray(results.tests)) throw new Error('it has no list of tests');
} catch (error) {
  console.error(`trace: cannot read the results file ${file}: ${(error as Error).message} (npm test writes it)`);
  process.exit(2);
}

const traced = trace(requirementSet, results);
const check = checkTrace(traced);
if (values.json === true) {
  const test = (t: TestRecord): object => ({ file: t.file, suites: t.suites, name: t.name, outcome: t.outcome });
  console.log(JSON.stringify({
    results: file,
    complete: check.complete,
    summary: check.summary,
    unverified: check.unverified,
    requirements: traced.requirements.map((r) => ({ id: r.requirement.id, verdict: r.verdict, tests: r.tests.map(test) })),
    hazards: traced.hazards.map((h) => ({
      id: h.hazard.id,
      hazard: h.hazard.hazard,
      verdict: h.verdict,
      controls: h.controls.map((c) => ({ text: c.control.text, verdict: c.verdict, requirements: c.control.requirements })),
    })),
    unknownTags: traced.unknownTags.map((u) => ({ tag: u.tag, test: test(u.test) })),
  }, null, 1));
} else {
  console.log(reportLines(check, false).join('\n'));
}
// exitCode, not exit(): a long --json output to a pipe is written out before the process ends.
process.exitCode = check.complete ? 0 : 1;
