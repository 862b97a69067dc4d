// A run's results (src/qa/results.ts) as JUnit XML for CI: one <testsuite> per test file carrying the bench's identity
// (pen serial, firmware build, protocol version, calibration, rig) as properties, and per test case its requirement tags,
// its measured figures, and why it failed, was skipped or does not apply to this bench.
import type { RequirementSet } from './requirements.ts';
import type { RunResults, TestRecord } from './results.ts';
import { trace } from './trace.ts';

export interface JunitOptions {
  /** The <testsuites> name; defaults to "pen tests". */
  readonly name?: string;
}

// XML 1.0 allows tab, newline, carriage return and the code points below; anything else (NUL, ESC, lone surrogates,
// U+FFFE) makes the document ill-formed even when escaped, so it is dropped.
const notXmlChar = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/** Text content: control characters dropped, markup escaped. */
export const xmlText = (text: string): string =>
  text.replace(notXmlChar, '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** An attribute value in double quotes: as text, plus quotes, and whitespace kept as references (a parser would
 * otherwise turn a newline in an attribute into a space). */
export const xmlAttribute = (text: string): string =>
  xmlText(text).replace(/"/g, '&quot;').replace(/'/g, '&apos;').replace(/\t/g, '&#9;').replace(/\n/g, '&#10;').replace(/\r/g, '&#13;');

/** What a missing identity record reads as. */
export const notRecorded = 'not recorded';

/** The identity records every report names, in this order, each said to be "not recorded" when a run lacks it. */
export const identityRecords = ['bench', 'pen', 'rig', 'gauge'] as const;

const isPlainRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** A primitive as a property value; null reads "none" (a gauge port the bench does not have). */
export const primitiveText = (value: unknown): string => {
  if (value === null) return 'none';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value === undefined) return notRecorded;
  return JSON.stringify(value);
};

/**
 * An identity record as dotted name → text pairs (`pen.calibration.stepsPerMm`). Nested records are followed a few
 * levels deep, then written as JSON; arrays of primitives are joined with ", ". Whatever the shape, nothing is lost
 * and nothing throws.
 */
export function flattenIdentity(identity: Readonly<Record<string, unknown>>): [name: string, value: string][] {
  const pairs: [string, string][] = [];
  const visit = (name: string, value: unknown, depth: number): void => {
    if (isPlainRecord(value) && depth < 4) {
      const entries = Object.entries(value);
      if (entries.length === 0) pairs.push([name, '(empty)']);
      for (const [key, inner] of entries) visit(`${name}.${key}`, inner, depth + 1);
    } else if (Array.isArray(value) && value.every((item) => !isPlainRecord(item) && !Array.isArray(item))) {
      pairs.push([name, value.map(primitiveText).join(', ')]);
    } else {
      pairs.push([name, primitiveText(value)]);
    }
  };
  const names = [...identityRecords, ...Object.keys(identity).filter((name) => !(identityRecords as readonly string[]).includes(name)).toSorted()];
  for (const name of names) {
    if (identity[name] === undefined) pairs.push([name, notRecorded]);
    else visit(name, identity[name], 1);
  }
  return pairs;
}

const seconds = (ms: number): string => (Number.isFinite(ms) && ms > 0 ? ms / 1000 : 0).toFixed(3);

const property = (name: string, value: string): string => `<property name="${xmlAttribute(name)}" value="${xmlAttribute(value)}"/>`;

/** The first line of an error, short enough for an attribute CI shows in a list; the whole error is the element's text. */
const headline = (text: string): string => {
  const first = text.split('\n', 1)[0] ?? '';
  return first.length > 300 ? `${first.slice(0, 299)}…` : first;
};

function testcase(test: TestRecord): string {
  const classname = [test.file, ...test.suites].join(' > ');
  const properties = [...test.tags.map((tag) => property('requirement', tag)), ...test.figures.map((figure) => property('figure', figure))];
  const body: string[] = properties.length === 0 ? [] : [`      <properties>${properties.map((p) => `\n        ${p}`).join('')}\n      </properties>`];
  if (test.outcome === 'failed') {
    const error = test.error ?? 'failed';
    body.push(`      <failure message="${xmlAttribute(headline(error))}">${xmlText(error)}</failure>`);
  } else if (test.outcome === 'skipped') {
    body.push(`      <skipped message="${xmlAttribute(test.reason ?? 'skipped')}"/>`);
  } else if (test.outcome === 'not-applicable') {
    body.push(`      <skipped message="${xmlAttribute(`not applicable: ${test.reason ?? 'no reason given'}`)}"/>`);
  }
  const open = `    <testcase classname="${xmlAttribute(classname)}" name="${xmlAttribute(test.name)}" file="${xmlAttribute(test.file)}" time="${seconds(test.durationMs)}"`;
  return body.length === 0 ? `${open}/>` : `${open}>\n${body.join('\n')}\n    </testcase>`;
}

const counts = (tests: readonly TestRecord[]): string => {
  const failures = tests.filter((t) => t.outcome === 'failed').length;
  const skipped = tests.filter((t) => t.outcome === 'skipped' || t.outcome === 'not-applicable').length;
  return `tests="${tests.length}" failures="${failures}" errors="0" skipped="${skipped}"`;
};

/**
 * The run as one JUnit XML document. Not-applicable tests are <skipped> with the message "not applicable: REASON".
 * Every suite carries the same run properties: the bench identity flattened (`pen.serial`, `rig.port`, …) and the
 * requirement verdicts of the whole run, so that a CI view of any one file still says which pen it ran on.
 */
export function junitXml(results: RunResults, set: RequirementSet, options: JunitOptions = {}): string {
  const byFile = new Map<string, TestRecord[]>();
  for (const test of results.tests) byFile.set(test.file, [...(byFile.get(test.file) ?? []), test]);
  const verdicts = trace(set, results).requirements.map((r) => r.verdict);
  const runProperties = [
    ...flattenIdentity(results.identity).map(([name, value]) => property(name, value)),
    property('run.startedAt', results.startedAt),
    ...(['verified', 'failed', 'untested'] as const).map((verdict) =>
      property(`requirements.${verdict}`, `${verdicts.filter((v) => v === verdict).length} of ${verdicts.length}`)),
  ];
  const host = isPlainRecord(results.identity['bench']) ? results.identity['bench']['host'] : undefined;
  const hostname = typeof host === 'string' ? ` hostname="${xmlAttribute(host)}"` : '';
  const suites = [...byFile].map(([file, tests]) => {
    const time = seconds(tests.reduce((sum, t) => sum + (Number.isFinite(t.durationMs) ? t.durationMs : 0), 0));
    return `  <testsuite name="${xmlAttribute(file)}" ${counts(tests)} time="${time}" timestamp="${xmlAttribute(results.startedAt)}"${hostname}>
    <properties>${runProperties.map((p) => `\n      ${p}`).join('')}
    </properties>
${tests.map(testcase).join('\n')}
  </testsuite>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="${xmlAttribute(options.name ?? 'pen tests')}" ${counts(results.tests)} time="${seconds(results.durationMs)}" timestamp="${xmlAttribute(results.startedAt)}">
${suites.join('\n')}
</testsuites>
`;
}
