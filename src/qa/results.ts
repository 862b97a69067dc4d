// What a test run found, in one file the traceability check and the HIL reports read: every test with its requirement
// tags, its outcome and the figures it measured. Written by ResultsReporter (src/qa/results-reporter.ts) whatever
// other reporters the run uses, so that `npm test` under CI's reporters still leaves it behind.
import { readFileSync } from 'node:fs';

/** `not-applicable`: skipped on purpose because this bench cannot do it (a real bench has no plant to jam), with why. */
export type Outcome = 'passed' | 'failed' | 'skipped' | 'not-applicable';

export interface TestRecord {
  /** The test file, relative to the project. */
  readonly file: string;
  /** The describe blocks around the test, outermost first. */
  readonly suites: readonly string[];
  readonly name: string;
  /** Requirement ids (hardware/requirements.json) the test verifies. */
  readonly tags: readonly string[];
  readonly outcome: Outcome;
  readonly durationMs: number;
  /** What it measured, as it said so (`annotate(text, 'figure')`). */
  readonly figures: readonly string[];
  /** Why it does not apply to this bench, or why it was skipped; null when it ran. */
  readonly reason: string | null;
  /** The first error of a failed test. */
  readonly error: string | null;
}

export interface RunResults {
  readonly startedAt: string;
  readonly durationMs: number;
  readonly tests: readonly TestRecord[];
  /** Identity records the tests annotated (`annotate(JSON, 'identity:NAME')`), by NAME: the bench's pen, rig, gauge. */
  readonly identity: Readonly<Record<string, unknown>>;
}

/** Annotation types the tests use. */
export const annotationType = {
  figure: 'figure',
  notApplicable: 'not-applicable',
  identityPrefix: 'identity:',
} as const;

/** Where a run leaves its results unless PEN_TEST_RESULTS says otherwise. */
export const defaultResultsPath = 'reports/test-results.json';

export function resultsPath(): string {
  return process.env['PEN_TEST_RESULTS'] ?? defaultResultsPath;
}

export function readResults(path: string): RunResults {
  return JSON.parse(readFileSync(path, 'utf8')) as RunResults;
}
