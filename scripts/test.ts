// `npm test` after the firmware build: runs `vitest run` with the arguments given (CI adds its reporters), always with
// the results reporter, then checks the run's results against hardware/requirements.json (src/qa/trace-check.ts).
// Exit: vitest's failure, else 1 when a requirement or hazard control has no passing test on a full run, else 0;
// 130 on Ctrl-C or SIGTERM (passed on to vitest).
import { existsSync, rmSync } from 'node:fs'; // the results file: a stale one is removed first
import { requirementSet } from '../src/qa/requirements.ts';
import { readResults, resultsPath } from '../src/qa/results.ts';
import { checkTrace, reportLines, runVerdict, vitestArguments, type TraceCheck } from '../src/qa/trace-check.ts';
import { trace } from '../src/qa/trace.ts';
import { runVitest } from './vitest-process.ts';

const { args, partial } = vitestArguments(process.argv.slice(2), './src/qa/results-reporter.ts');
const resultsFile = resultsPath();
rmSync(resultsFile, { force: true });  // so that a run that writes none is not judged by the last one's

const { code, interrupted } = await runVitest(args).catch((error: unknown) => {
  console.error(`npm test: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
let check: TraceCheck | null = null;
if (!interrupted && existsSync(resultsFile)) {
  check = checkTrace(trace(requirementSet, readResults(resultsFile)));
  console.log(`\n${reportLines(check, partial).join('\n')}`);
}
const verdict = runVerdict({ vitestExitCode: code, interrupted, partial, check });
console.log(`npm test: ${verdict.message} (results: ${resultsFile})`);
// exitCode, not exit(): what was printed reaches a pipe whole; nothing else keeps the process alive.
process.exitCode = verdict.exitCode;
