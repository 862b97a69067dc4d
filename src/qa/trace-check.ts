// The traceability check after a test run (scripts/test.ts, scripts/trace.ts): the summary it prints, the requirements
// and hazard controls it names for having no passing test, and whether that fails the run.
import type { ControlTrace, RequirementTrace, Trace, Verdict } from './trace.ts';
import type { TestRecord } from './results.ts';

/** One requirement, hazard control or tag that needs attention. */
export interface Finding {
  /** unknown-tag: a test names an id that is no requirement (reported, not failing: the test verifies nothing). */
  readonly kind: 'failed' | 'untested' | 'unknown-tag';
  /** The requirement id, `HAZ-n control k`, or the tag. */
  readonly id: string;
  readonly line: string;
}

export interface TraceCheck {
  /** Counts of requirements, hazards and controls by verdict, in a line. */
  readonly summary: string;
  readonly findings: readonly Finding[];
  /** Requirements and hazard controls without a passing test (failed or untested), by id. */
  readonly unverified: readonly string[];
  /** True when every requirement and every hazard control is verified. */
  readonly complete: boolean;
}

function counts(verdicts: readonly Verdict[]): string {
  const n = (verdict: Verdict): number => verdicts.filter((v) => v === verdict).length;
  return `${n('verified')} of ${verdicts.length} verified, ${n('failed')} failed, ${n('untested')} untested`;
}

function testName(test: TestRecord): string {
  return [test.file, ...test.suites, test.name].join(' › ');
}

function firstLine(text: string): string {
  const line = text.split('\n')[0] ?? '';
  return line.length > 160 ? `${line.slice(0, 157)}...` : line;
}

/** Why a requirement has no passing test, in a clause. */
function whyNot(requirement: RequirementTrace): string {
  if (requirement.verdict === 'failed') {
    const failed = requirement.tests.filter((t) => t.outcome === 'failed');
    return `failed: ${failed.map((t) => `${testName(t)}${t.error === null ? '' : ` (${firstLine(t.error)})`}`).join('; ')}`;
  }
  if (requirement.tests.length === 0) return 'untested: no test in this run carries it';
  const skipped = requirement.tests.map((t) => `${testName(t)} ${t.outcome === 'not-applicable' ? 'not applicable' : 'skipped'}${t.reason === null ? '' : ` (${firstLine(t.reason)})`}`);
  return `untested: none of its tests passed: ${skipped.join('; ')}`;
}

function controlWhyNot(control: ControlTrace): string {
  return control.requirements.filter((r) => r.verdict !== 'verified').map((r) => `${r.requirement.id} ${r.verdict}`).join(', ');
}

/** Judges a trace: a summary, then every requirement and hazard control without a passing test, named. */
export function checkTrace(trace: Trace): TraceCheck {
  const findings: Finding[] = [];
  const controls = trace.hazards.flatMap((h) => h.controls);
  const summary = `traceability: requirements ${counts(trace.requirements.map((r) => r.verdict))}; hazards ${counts(trace.hazards.map((h) => h.verdict))}; hazard controls ${counts(controls.map((c) => c.verdict))}`;
  for (const requirement of trace.requirements) {
    if (requirement.verdict === 'verified') continue;
    findings.push({ kind: requirement.verdict, id: requirement.requirement.id, line: `${requirement.requirement.id} ${whyNot(requirement)}` });
  }
  for (const hazard of trace.hazards) {
    hazard.controls.forEach((control, index) => {
      if (control.verdict === 'verified') return;
      const id = `${hazard.hazard.id} control ${index + 1}`;
      findings.push({ kind: control.verdict === 'failed' ? 'failed' : 'untested', id, line: `${id} ("${control.control.text}", against: ${hazard.hazard.hazard}) has no passing test: ${controlWhyNot(control)}` });
    });
  }
  for (const { test, tag } of trace.unknownTags) findings.push({ kind: 'unknown-tag', id: tag, line: `unknown tag ${tag} (no such requirement) on ${testName(test)}` });
  const unverified = findings.filter((f) => f.kind !== 'unknown-tag').map((f) => f.id);
  return { summary, findings, unverified, complete: unverified.length === 0 };
}

/** What to print: the summary and the findings; on a partial run the untested ones are expected and only counted. */
export function reportLines(check: TraceCheck, partial: boolean): string[] {
  const shown = partial ? check.findings.filter((f) => f.kind !== 'untested') : check.findings;
  return [check.summary, ...shown.map((f) => `  ${f.line}`)];
}

function unverifiedCount(check: TraceCheck): string {
  const controls = check.unverified.filter((id) => id.startsWith('HAZ-')).length;
  const requirements = check.unverified.length - controls;
  return `${requirements} requirement${requirements === 1 ? '' : 's'} and ${controls} hazard control${controls === 1 ? '' : 's'}`;
}

/** How the run went, as scripts/test.ts saw it. */
export interface RunVerdictInput {
  /** vitest's exit code (null when it ended by a signal). */
  readonly vitestExitCode: number | null;
  /** The user interrupted the run (Ctrl-C, SIGTERM). */
  readonly interrupted: boolean;
  /** The run was narrowed (files, -t, --project ...): untested requirements are expected and do not fail it. */
  readonly partial: boolean;
  /** The check of the results file, or null when there was none to read. */
  readonly check: TraceCheck | null;
}

export interface RunVerdict {
  readonly exitCode: number;
  /** What decided it, in a line. */
  readonly message: string;
}

/** The exit code of `npm test`: 130 interrupted; vitest's failure; else 1 when a requirement or control has no passing
 * test on a full run (on a partial run only a failed one counts, and that failed vitest already); else 0. */
export function runVerdict(input: RunVerdictInput): RunVerdict {
  if (input.interrupted) return { exitCode: 130, message: 'interrupted: the traceability check was not made' };
  const vitestFailed = input.vitestExitCode !== 0;
  if (input.check === null) {
    return { exitCode: vitestFailed ? input.vitestExitCode ?? 1 : 1, message: 'no results file was written, so the traceability check could not be made' };
  }
  if (vitestFailed) return { exitCode: input.vitestExitCode ?? 1, message: 'tests failed' };
  if (input.check.complete) return { exitCode: 0, message: 'every requirement and hazard control has a passing test' };
  if (input.partial) {
    return { exitCode: 0, message: `partial run (files, -t, --project or similar given): ${unverifiedCount(input.check)} without a passing test do not fail it` };
  }
  return { exitCode: 1, message: `traceability failed: ${unverifiedCount(input.check)} without a passing test (named above)` };
}

/** Options of `vitest run` that narrow it to part of the suite. */
const narrowingOptions = new Set(['-t', '--testNamePattern', '--project', '--changed', '--related', '--shard', '--tagsFilter', '--tags-filter', '--exclude', '--dir', '--bail']);
/** Options of `vitest run` that take their value as the next argument (when not given as --name=value). */
const valueOptions = new Set([
  ...narrowingOptions, '--reporter', '--outputFile', '-c', '--config', '-r', '--root', '--pool', '--maxWorkers', '--environment',
  '--mode', '--retry', '--testTimeout', '--hookTimeout', '--teardownTimeout', '--maxConcurrency',
]);

export interface VitestArguments {
  /** What to pass to `vitest run`. */
  readonly args: readonly string[];
  /** Whether the arguments narrow the run to part of the suite. */
  readonly partial: boolean;
}

/** The arguments for `vitest run`: the user's, `--reporter=default` unless they name a reporter, and always the
 * results reporter (reporters on the command line replace the configuration's). */
export function vitestArguments(given: readonly string[], resultsReporter: string): VitestArguments {
  let partial = false;
  let reporterGiven = false;
  for (let i = 0; i < given.length; i++) {
    const arg = given[i] ?? '';
    if (arg === '--') continue;
    if (!arg.startsWith('-')) {
      partial = true;  // a file filter
      continue;
    }
    const name = arg.includes('=') ? arg.slice(0, arg.indexOf('=')) : arg;
    if (name === '--reporter') reporterGiven = true;
    if (narrowingOptions.has(name) || name.startsWith('--project.')) partial = true;
    const base = name.split('.')[0] ?? name;
    if (!arg.includes('=') && (valueOptions.has(name) || valueOptions.has(base))) i++;
  }
  return { args: [...given.filter((a) => a !== '--'), ...(reporterGiven ? [] : ['--reporter=default']), `--reporter=${resultsReporter}`], partial };
}
