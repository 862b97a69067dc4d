// The HIL report: a run's results (src/qa/results.ts) against the requirements and hazards (src/qa/requirements.ts) as
// one self-contained, printable HTML document (inline CSS, A4, no scripts, nothing fetched): the bench it ran on, the
// traceability matrix, each hazard's controls with their evidence, the measured figures, and what failed or did not apply.
import { identityRecords, notRecorded, primitiveText } from './junit.ts';
import type { RequirementSet } from './requirements.ts';
import type { Outcome, RunResults, TestRecord } from './results.ts';
import { trace, type ControlTrace, type RequirementTrace, type Verdict } from './trace.ts';

export interface HtmlReportOptions {
  /** The document's title; defaults to "HIL test report". */
  readonly title?: string;
  /** When the document was generated (ISO 8601); defaults to now. */
  readonly generatedAt?: string;
  /** The results file it was made from, named in the footer. */
  readonly resultsPath?: string;
}

// Characters no document should carry (NUL, ESC, lone surrogates) are dropped, as in the JUnit XML.
const notDocumentChar = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

const esc = (text: string): string =>
  text.replace(notDocumentChar, '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

const isPlainRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

const na = (text = notRecorded): string => `<span class="na">${esc(text)}</span>`;

// Text labels carry the meaning; colour and the mark only repeat it, so a black-and-white print reads the same.
const verdictLabels: Record<Verdict, string> = { verified: '✓ VERIFIED', failed: '✗ FAILED', untested: '– UNTESTED' };
const verdictLabel = (verdict: Verdict): string => `<span class="verdict v-${verdict}">${verdictLabels[verdict]}</span>`;

const outcomeLabels: Record<Outcome, string> = { 'passed': 'PASS', 'failed': 'FAIL', 'skipped': 'SKIP', 'not-applicable': 'N/A' };
const outcomeLabel = (outcome: Outcome): string => `<span class="outcome o-${outcome}">${outcomeLabels[outcome]}</span>`;

/** "2026-11-26 03:40 UTC" from an ISO time; the raw text if it is not one. */
const dateTime = (iso: string): string => {
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? esc(iso) : `${at.toISOString().slice(0, 10)} ${at.toISOString().slice(11, 16)} UTC`;
};

const duration = (ms: number): string => {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
};

/** The test as a reader finds it: describe blocks and name, with its file beneath. */
const testName = (test: TestRecord): string =>
  `<span class="test">${[...test.suites, test.name].map(esc).join(' <span class="sep">›</span> ')}</span> <span class="file">${esc(test.file)}</span>`;

// ---- identity ----

/** Labels for keys that humanising the name would not get right. */
const keyLabels: Readonly<Record<string, string>> = {
  buildId: 'Firmware build', node: 'Node.js', nodeVersion: 'Node.js', host: 'Host', boardName: 'Board',
  firmwareName: 'Firmware', penPort: 'Pen port', rigPort: 'Rig port', gaugePort: 'Gauge port', controlPort: 'Control port',
};
const unitSuffixes: readonly (readonly [RegExp, string])[] = [[/Mm$/, ' (mm)'], [/Um$/, ' (µm)'], [/Ms$/, ' (ms)'], [/Mv$/, ' (mV)'], [/Hz$/, ' (Hz)']];

/** `zeroOffsetMm` → "Zero offset (mm)". */
const labelOf = (key: string): string => {
  const known = keyLabels[key];
  if (known !== undefined) return known;
  let unit = '';
  let stem = key;
  for (const [pattern, suffix] of unitSuffixes) {
    if (pattern.test(key) && key.length > 2) {
      unit = suffix;
      stem = key.replace(pattern, '');
      break;
    }
  }
  const words = stem.replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/[_-]+/g, ' ').toLowerCase();
  return `${words.charAt(0).toUpperCase()}${words.slice(1)}${unit}`;
};

/** Keys shown first, in this order, when a record has them; the rest follow as they come. */
const keyOrder: Readonly<Record<string, readonly string[]>> = {
  bench: ['kind', 'description', 'host', 'node', 'nodeVersion', 'penPort', 'rigPort', 'gaugePort', 'controlPort'],
  pen: ['serial', 'boardName', 'firmwareVersion', 'buildId', 'protocolVersion', 'resetCause'],
  rig: ['firmwareName', 'firmwareVersion', 'protocolVersion', 'port'],
};

const ordered = (name: string, record: Record<string, unknown>): [string, unknown][] => {
  const first = (keyOrder[name] ?? []).filter((key) => key in record);
  return [...first, ...Object.keys(record).filter((key) => !first.includes(key))].map((key) => [key, record[key]]);
};

const valueCell = (value: unknown, depth: number): string => {
  if (value === undefined) return na();
  if (value === null) return na('none');
  if (isPlainRecord(value) && depth < 3) {
    const entries = Object.entries(value);
    if (entries.length === 0) return na('empty');
    return `<table class="kv inner">${entries.map(([key, inner]) => `<tr><th>${esc(labelOf(key))}</th><td>${valueCell(inner, depth + 1)}</td></tr>`).join('')}</table>`;
  }
  if (Array.isArray(value) && value.every((item) => !isPlainRecord(item) && !Array.isArray(item))) {
    return value.length === 0 ? na('none') : esc(value.map(primitiveText).join(', '));
  }
  const text = primitiveText(value);
  // Identifiers (serials, builds, ports) in monospace; prose (a bench's description) as prose.
  return /\s/.test(text) ? esc(text) : `<span class="mono">${esc(text)}</span>`;
};

/** One identity record as a titled key/value card; nested records (the pen's calibration) get a card of their own. */
function identityCard(name: string, value: unknown): string {
  const title = esc(labelOf(name));
  if (value === undefined) return `<div class="card missing"><h3>${title}</h3><p>${na()}</p></div>`;
  if (!isPlainRecord(value)) return `<div class="card"><h3>${title}</h3><p>${valueCell(value, 0)}</p></div>`;
  const entries = ordered(name, value);
  const flat = entries.filter(([, inner]) => !isPlainRecord(inner));
  const nested = entries.filter((entry): entry is [string, Record<string, unknown>] => isPlainRecord(entry[1]));
  const rows = flat.map(([key, inner]) => `<tr><th>${esc(labelOf(key))}</th><td>${valueCell(inner, 1)}</td></tr>`).join('');
  const cards = nested.map(([key, inner]) => identityCard(`${name} ${key}`, inner));
  const main = `<div class="card card-${esc(name.replace(/[^a-z0-9]+/gi, '-'))}"><h3>${title}</h3>${rows === '' && nested.length > 0 ? '' : `<table class="kv">${rows === '' ? `<tr><td>${na('empty')}</td></tr>` : rows}</table>`}</div>`;
  return [...(rows === '' && nested.length > 0 ? [] : [main]), ...cards].join('');
}

function identitySection(identity: Readonly<Record<string, unknown>>): string {
  const others = Object.keys(identity).filter((name) => !(identityRecords as readonly string[]).includes(name)).toSorted();
  const cards = [...identityRecords, ...others].map((name) => identityCard(name, identity[name]));
  return `<section class="identity"><h2>Bench identity</h2><div class="cards">${cards.join('')}</div></section>`;
}

// ---- summary ----

function summarySection(results: RunResults, requirements: readonly RequirementTrace[], hazardVerdicts: readonly Verdict[]): string {
  const count = (outcome: Outcome): number => results.tests.filter((t) => t.outcome === outcome).length;
  const verdictCount = (verdicts: readonly Verdict[], verdict: Verdict): number => verdicts.filter((v) => v === verdict).length;
  const requirementVerdicts = requirements.map((r) => r.verdict);
  const stat = (label: string, value: string, kind = ''): string => `<div class="stat ${kind}"><div class="value">${value}</div><div class="label">${label}</div></div>`;
  return `<section class="summary"><h2>Summary</h2>
  <div class="stats">
    ${stat('tests', String(results.tests.length))}
    ${stat('passed', String(count('passed')), 's-passed')}
    ${stat('failed', String(count('failed')), count('failed') > 0 ? 's-failed' : '')}
    ${stat('not applicable', String(count('not-applicable')))}
    ${stat('skipped', String(count('skipped')))}
    ${stat('duration', duration(results.durationMs))}
  </div>
  <table class="grid tally"><thead><tr><th></th><th>Verified</th><th>Failed</th><th>Untested</th><th>Total</th></tr></thead><tbody>
    <tr><th>Requirements</th>${(['verified', 'failed', 'untested'] as const).map((v) => `<td class="num">${verdictCount(requirementVerdicts, v)}</td>`).join('')}<td class="num">${requirementVerdicts.length}</td></tr>
    <tr><th>Hazards (all controls)</th>${(['verified', 'failed', 'untested'] as const).map((v) => `<td class="num">${verdictCount(hazardVerdicts, v)}</td>`).join('')}<td class="num">${hazardVerdicts.length}</td></tr>
  </tbody></table>
  <p class="note">A requirement is verified when at least one of its tests passed and none failed; untested when none passed (none ran, or each was skipped or not applicable on this bench). A hazard takes the worst verdict of its controls.</p>
  </section>`;
}

// ---- traceability ----

const testItem = (test: TestRecord, withFigures: boolean): string => {
  const figures = withFigures && test.figures.length > 0 ? `<ul class="figures">${test.figures.map((f) => `<li>${esc(f)}</li>`).join('')}</ul>` : '';
  const reason = test.outcome !== 'passed' && test.outcome !== 'failed' && test.reason !== null ? `<div class="reason">${esc(test.reason)}</div>` : '';
  return `<li>${outcomeLabel(test.outcome)} ${testName(test)}${reason}${figures}</li>`;
};

/** Tests grouped by file and describe blocks, each group named once, so a requirement with many tests stays compact. */
const testList = (tests: readonly TestRecord[]): string => {
  if (tests.length === 0) return na('no test');
  const groups = new Map<string, TestRecord[]>();
  for (const test of tests) {
    const key = JSON.stringify([test.file, ...test.suites]);
    groups.set(key, [...(groups.get(key) ?? []), test]);
  }
  return [...groups.values()].map((group) => {
    const [first] = group;
    const heading = first === undefined ? '' : `<div class="group">${[...first.suites].map(esc).join(' <span class="sep">›</span> ')} <span class="file">${esc(first.file)}</span></div>`;
    const items = group.map((test) => {
      const reason = test.outcome !== 'passed' && test.outcome !== 'failed' && test.reason !== null ? `<div class="reason">${esc(test.reason)}</div>` : '';
      return `<li>${outcomeLabel(test.outcome)} <span class="test">${esc(test.name)}</span>${reason}</li>`;
    });
    return `${heading}<ul class="tests grouped">${items.join('')}</ul>`;
  }).join('');
};

/** Tests a hazard's evidence lists in full before the rest are counted: failures first, then those that measured something. */
const evidenceShown = 6;

/** A requirement's tests as a hazard's evidence: the telling ones with their figures; past a handful, the rest counted
 * by outcome and left to the matrix, so that one requirement with forty tests does not bury the hazard. */
const evidenceList = (requirement: RequirementTrace): string => {
  const { tests } = requirement;
  if (tests.length === 0) return na('no test');
  const rank = (test: TestRecord): number => (test.outcome === 'failed' ? 0 : test.figures.length > 0 ? 1 : test.outcome === 'passed' ? 2 : 3);
  const shown = tests.length <= evidenceShown ? tests : tests.toSorted((a, b) => rank(a) - rank(b)).slice(0, evidenceShown - 1);
  const rest = tests.filter((test) => !shown.includes(test));
  const restCounts = (Object.keys(outcomeLabels) as Outcome[]).flatMap((outcome) => {
    const n = rest.filter((test) => test.outcome === outcome).length;
    return n === 0 ? [] : [`${n} ${outcomeLabels[outcome]}`];
  });
  const more = rest.length === 0 ? ''
    : `<li class="more">+ ${rest.length} more (${restCounts.join(', ')}): <a href="#${esc(requirement.requirement.id)}">${esc(requirement.requirement.id)} in the matrix</a></li>`;
  return `<ul class="tests">${shown.map((test) => testItem(test, true)).join('')}${more}</ul>`;
};

/** "(2)(i)" from "878.4430(b)(2)(i)", under a column headed 878.4430(b); another id as it is. */
const specialControlsPrefix = '878.4430(b)';
const paragraphOf = (id: string): string => (id.startsWith(specialControlsPrefix) && id.length > specialControlsPrefix.length ? id.slice(specialControlsPrefix.length) : id);

function matrixSection(set: RequirementSet, requirements: readonly RequirementTrace[]): string {
  const rows = requirements.map(({ requirement, tests, verdict }) => `<tr id="${esc(requirement.id)}" data-verdict="${verdict}">
    <td class="req"><div class="id">${esc(requirement.id)}</div><div class="text">${esc(requirement.text)}</div></td>
    <td class="controls">${requirement.specialControls.length === 0 ? '—' : requirement.specialControls.map((id) => `<div class="mono">${esc(paragraphOf(id))}</div>`).join('')}</td>
    <td class="tests-cell">${testList(tests)}</td><td class="v">${verdictLabel(verdict)}</td></tr>`).join('');
  const controlRows = set.specialControls.map((control) => {
    const serving = requirements.filter((r) => r.requirement.specialControls.includes(control.id));
    const verdicts = serving.map((r) => r.verdict);
    const verdict: Verdict = verdicts.includes('failed') ? 'failed' : verdicts.length === 0 || verdicts.includes('untested') ? 'untested' : 'verified';
    return `<tr data-verdict="${verdict}"><td class="mono nowrap">${esc(control.id)}</td><td>${esc(control.text)}</td>
      <td class="ids">${serving.length === 0 ? na('no requirement') : serving.map((r) => `<span class="mono">${esc(r.requirement.id)}</span>`).join(' ')}</td><td class="v">${verdictLabel(verdict)}</td></tr>`;
  }).join('');
  return `<section class="breakable"><h2>Traceability matrix</h2>
  <table class="grid matrix"><colgroup><col class="c-req"><col class="c-sc"><col class="c-tests"><col class="c-v"></colgroup>
    <thead><tr><th>Requirement</th><th>${specialControlsPrefix.replace('(', ' (')}</th><th>Tests (outcome)</th><th>Verdict</th></tr></thead><tbody>${rows}</tbody></table>
  <h3>Special controls, 21 CFR 878.4430(b)</h3>
  <table class="grid sc"><colgroup><col class="c-id"><col><col class="c-reqs"><col class="c-v"></colgroup>
    <thead><tr><th>Control</th><th>Text</th><th>Requirements</th><th>Verdict</th></tr></thead><tbody>${controlRows === '' ? `<tr><td colspan="4">${na('none listed')}</td></tr>` : controlRows}</tbody></table>
  </section>`;
}

function controlRows(control: ControlTrace): string {
  const span = Math.max(control.requirements.length, 1);
  const head = `<td rowspan="${span}">${esc(control.control.text)}</td>`;
  const tail = `<td rowspan="${span}" class="v">${verdictLabel(control.verdict)}</td>`;
  if (control.requirements.length === 0) return `<tr>${head}<td colspan="2">${na('no requirement')}</td>${tail}</tr>`;
  return control.requirements.map((r, index) => `<tr>${index === 0 ? head : ''}
    <td class="req"><div class="id">${esc(r.requirement.id)}</div>${verdictLabel(r.verdict)}</td><td>${evidenceList(r)}</td>${index === 0 ? tail : ''}</tr>`).join('');
}

function hazardsSection(hazards: ReturnType<typeof trace>['hazards']): string {
  const sections = hazards.map(({ hazard, controls, verdict }) => `<section class="hazard" id="${esc(hazard.id)}" data-verdict="${verdict}">
    <div class="hazard-head"><h3><span class="mono">${esc(hazard.id)}</span> ${esc(hazard.hazard)}</h3>${verdictLabel(verdict)}</div>
    <table class="kv"><tr><th>Cause</th><td>${esc(hazard.cause)}</td></tr><tr><th>Harm</th><td>${esc(hazard.harm)}</td></tr></table>
    <table class="grid hz"><colgroup><col class="c-control"><col class="c-req"><col><col class="c-v"></colgroup>
      <thead><tr><th>Control</th><th>Requirement</th><th>Evidence: tests, outcomes, figures</th><th>Control verdict</th></tr></thead>
      <tbody>${controls.map(controlRows).join('')}</tbody></table></section>`);
  return `<section class="breakable"><h2>Hazards and their controls</h2>${sections.length === 0 ? `<p>${na('no hazard listed')}</p>` : sections.join('')}</section>`;
}

// ---- figures, not applicable, failures ----

function figuresSection(tests: readonly TestRecord[]): string {
  const measured = tests.filter((t) => t.figures.length > 0);
  const rows = measured.map((test) => `<tr><td>${testName(test)}</td><td>${outcomeLabel(test.outcome)}</td>
    <td><ul class="figures plain">${test.figures.map((f) => `<li>${esc(f)}</li>`).join('')}</ul></td></tr>`).join('');
  return `<section class="breakable"><h2>Measured figures</h2>${measured.length === 0 ? `<p>${na('no test recorded a figure')}</p>` : `<table class="grid figs">
    <colgroup><col class="c-test"><col class="c-o"><col></colgroup>
    <thead><tr><th>Test</th><th>Outcome</th><th>Figure</th></tr></thead><tbody>${rows}</tbody></table>`}</section>`;
}

function notRunSection(tests: readonly TestRecord[]): string {
  const notRun = tests.filter((t) => t.outcome === 'not-applicable' || t.outcome === 'skipped');
  const rows = notRun.map((test) => `<tr><td>${testName(test)}</td><td>${outcomeLabel(test.outcome)}</td>
    <td>${test.reason === null ? na('no reason given') : esc(test.reason)}</td></tr>`).join('');
  return `<section class="breakable"><h2>Not applicable on this bench, and skipped</h2>${notRun.length === 0 ? '<p>Every test ran.</p>' : `<table class="grid">
    <colgroup><col class="c-test"><col class="c-o"><col></colgroup>
    <thead><tr><th>Test</th><th>Outcome</th><th>Reason</th></tr></thead><tbody>${rows}</tbody></table>`}</section>`;
}

function failuresSection(tests: readonly TestRecord[]): string {
  const failed = tests.filter((t) => t.outcome === 'failed');
  const rows = failed.map((test) => `<tr><td>${testName(test)}${test.tags.length === 0 ? '' : `<div class="tags">${test.tags.map(esc).join(', ')}</div>`}</td>
    <td><pre class="error">${esc(test.error ?? 'failed, no error recorded')}</pre></td></tr>`).join('');
  return `<section class="breakable"><h2>Failures</h2>${failed.length === 0 ? '<p>No test failed.</p>' : `<table class="grid failures">
    <colgroup><col class="c-test"><col></colgroup><thead><tr><th>Test</th><th>Error</th></tr></thead><tbody>${rows}</tbody></table>`}</section>`;
}

function unknownTagsSection(unknown: ReturnType<typeof trace>['unknownTags']): string {
  if (unknown.length === 0) return '';
  return `<section><h2>Tags that name no requirement</h2><table class="grid"><thead><tr><th>Test</th><th>Tag</th></tr></thead><tbody>
    ${unknown.map(({ test, tag }) => `<tr><td>${testName(test)}</td><td class="mono">${esc(tag)}</td></tr>`).join('')}</tbody></table></section>`;
}

// ---- document ----

const css = `
  @page { size: A4; margin: 12mm 11mm 14mm 11mm; }
  * { box-sizing: border-box; }
  html { background: #e5e7eb; }
  body { font: 9.5pt/1.35 Helvetica, Arial, sans-serif; color: #111; margin: 0 auto; padding: 12mm 11mm; max-width: 210mm; background: #fff; }
  h1 { font-size: 18pt; margin: 0; }
  h2 { font-size: 12pt; margin: 16px 0 6px; padding-bottom: 2px; border-bottom: 1.5px solid #333; break-after: avoid; }
  h3 { font-size: 10pt; margin: 10px 0 4px; break-after: avoid; }
  header { display: flex; justify-content: space-between; align-items: flex-end; gap: 12px; border-bottom: 3px solid #111; padding-bottom: 6px; }
  .subtitle { margin: 3px 0 0; color: #333; }
  .overall { text-align: center; border: 3px solid; padding: 4px 12px; border-radius: 4px; min-width: 42mm; }
  .overall .word { font-size: 17pt; font-weight: 800; letter-spacing: 0.05em; }
  .overall .detail { font-size: 8.5pt; }
  .overall.passed { border-color: #15803d; color: #15803d; background: #f0fdf4; }
  .overall.failed { border-color: #b91c1c; color: #fff; background: #b91c1c; }
  .overall.incomplete { border-color: #6b7280; color: #111; border-style: dashed; }
  table { border-collapse: collapse; width: 100%; }
  .kv th { text-align: left; font-weight: 600; padding: 1px 8px 1px 0; vertical-align: top; white-space: nowrap; width: 1%; }
  .kv td { padding: 1px 0; overflow-wrap: anywhere; }
  .kv.inner th { font-weight: 400; color: #374151; }
  .grid { table-layout: fixed; }
  .grid th, .grid td { border: 1px solid #9ca3af; padding: 3px 5px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
  .grid thead th { background: #f3f4f6; font-weight: 600; }
  .grid td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .grid td.v { text-align: center; }
  .tally { width: auto; min-width: 55%; table-layout: auto; margin-top: 8px; }
  .tally th, .tally td { padding: 2px 10px; }
  /* Cards as wide as their content asks: the bench's description and the ports stay on one line where they fit. */
  .cards { display: flex; flex-wrap: wrap; gap: 6px 10px; align-items: flex-start; }
  .card { flex: 1 1 52mm; }
  .card-bench { flex-basis: 100mm; }
  .card-rig { flex-basis: 70mm; }
  .card.missing { flex: 0 1 34mm; }
  .card { border: 1px solid #d1d5db; border-radius: 3px; padding: 4px 7px; break-inside: avoid; }
  .card h3 { margin: 0 0 3px; font-size: 9.5pt; border-bottom: 1px solid #e5e7eb; }
  .card p { margin: 0; }
  .stats { display: flex; gap: 6px; flex-wrap: wrap; }
  .stat { border: 1px solid #9ca3af; border-radius: 3px; padding: 3px 10px; min-width: 24mm; text-align: center; }
  .stat .value { font-size: 15pt; font-weight: 700; }
  .stat .label { font-size: 8pt; color: #374151; text-transform: uppercase; letter-spacing: 0.04em; }
  .stat.s-passed { border-color: #15803d; }
  .stat.s-failed { border: 2px solid #b91c1c; color: #b91c1c; }
  .mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 8.5pt; }
  .nowrap { white-space: nowrap; }
  .na { color: #6b7280; font-style: italic; }
  .note { color: #374151; font-size: 8.5pt; margin: 4px 0; }
  .verdict { display: inline-block; font-size: 8pt; font-weight: 700; padding: 1px 4px; border: 1.5px solid; border-radius: 2px; white-space: nowrap; letter-spacing: 0.02em; }
  .v-verified { color: #15803d; border-color: #15803d; }
  .v-failed { color: #fff; background: #b91c1c; border-color: #b91c1c; }
  .v-untested { color: #4b5563; border-style: dashed; font-style: italic; }
  .outcome { display: inline-block; min-width: 8.5mm; text-align: center; font-size: 7.5pt; font-weight: 700; padding: 0 2px; border: 1px solid; border-radius: 2px; }
  .o-passed { color: #15803d; }
  .o-failed { color: #fff; background: #b91c1c; border-color: #b91c1c; }
  .o-skipped, .o-not-applicable { color: #4b5563; border-style: dashed; }
  ul.tests, ul.figures { list-style: none; margin: 0; padding: 0; }
  ul.tests > li { margin: 1px 0 3px; }
  ul.figures { margin: 1px 0 0 10mm; font-size: 8.5pt; color: #1f2937; }
  ul.figures li::before { content: "▸ "; color: #6b7280; }
  ul.figures.plain { margin-left: 0; }
  .test .sep { color: #6b7280; }
  .file { display: block; font-size: 7.5pt; color: #6b7280; font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; }
  ul.tests .file { display: inline; margin-left: 3px; }
  .reason { font-size: 8.5pt; color: #374151; font-style: italic; margin-left: 10mm; }
  .req .id { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 8.5pt; font-weight: 700; }
  .req .text { font-size: 8pt; line-height: 1.3; color: #1f2937; }
  .req .verdict { margin-top: 2px; }
  col.c-req { width: 37%; } col.c-sc { width: 10%; } col.c-v { width: 25mm; } col.c-id { width: 40mm; } col.c-reqs { width: 28%; }
  col.c-control { width: 24%; } .hz col.c-req { width: 19%; } col.c-test { width: 38%; } col.c-o { width: 18mm; }
  /* A hazard may run over a page (one with many tests behind it); its heading stays with the start of its table. */
  .hazard { margin: 10px 0 14px; }
  .hazard-head, .hazard .kv { break-after: avoid; }
  .more { font-size: 8pt; color: #374151; font-style: italic; }
  .more a { color: inherit; }
  td.ids .mono { display: inline-block; margin-right: 4px; }
  .tests-cell { font-size: 8.5pt; }
  .group { font-weight: 600; font-size: 8pt; color: #374151; margin-top: 2px; }
  .group:first-child { margin-top: 0; }
  .group .file { display: inline; font-weight: 400; margin-left: 3px; }
  ul.tests.grouped { margin-left: 2mm; }
  /* A long name wraps under itself, not under its outcome label. */
  ul.tests.grouped > li { margin: 0 0 1px; padding-left: 10mm; text-indent: -10mm; }
  ul.tests.grouped .outcome, ul.tests.grouped .reason { text-indent: 0; }
  ul.tests.grouped .reason { margin-left: 0; }
  td.controls .mono { white-space: nowrap; }
  .hazard-head { display: flex; justify-content: space-between; align-items: baseline; gap: 8px; border-bottom: 1px solid #9ca3af; }
  .hazard-head h3 { margin: 4px 0 2px; }
  .hazard .kv { margin: 3px 0 5px; }
  pre.error { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; font-size: 8pt; font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; }
  .tags { font-size: 7.5pt; color: #374151; margin-top: 2px; }
  footer { margin-top: 18px; font-size: 7.5pt; color: #4b5563; border-top: 1px solid #d1d5db; padding-top: 4px; }
  section { break-inside: avoid; }
  section.breakable { break-inside: auto; }
  thead { display: table-header-group; }
  tr { break-inside: avoid; }
  @media print {
    html { background: none; }
    body { padding: 0; max-width: none; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
    .matrix, .hz { font-size: 8.5pt; }
  }
`;

const benchName = (identity: Readonly<Record<string, unknown>>): { kind: string | null; description: string | null } => {
  const bench = identity['bench'];
  if (!isPlainRecord(bench)) return { kind: null, description: null };
  const kind = typeof bench['kind'] === 'string' && bench['kind'] !== '' ? bench['kind'] : null;
  return { kind, description: typeof bench['description'] === 'string' ? bench['description'] : null };
};

/**
 * The run's report as a complete HTML document. Every string from the results, the identity and the requirements is
 * escaped; identity records of any shape are shown key by key, and missing ones read "not recorded".
 */
export function htmlReport(results: RunResults, set: RequirementSet, options: HtmlReportOptions = {}): string {
  const traced = trace(set, results);
  const title = options.title ?? 'HIL test report';
  const bench = benchName(results.identity);
  const failedTests = results.tests.filter((t) => t.outcome === 'failed').length;
  const untested = traced.requirements.filter((r) => r.verdict === 'untested').length;
  const overall = failedTests > 0 ? 'failed' : results.tests.length === 0 ? 'incomplete' : 'passed';
  const overallDetail = failedTests > 0 ? `${failedTests} test${failedTests === 1 ? '' : 's'} failed`
    : untested > 0 ? `${untested} requirement${untested === 1 ? '' : 's'} untested here` : 'every requirement verified';
  const pen = results.identity['pen'];
  const serial = isPlainRecord(pen) && typeof pen['serial'] === 'string' ? pen['serial'] : null;
  const generatedAt = options.generatedAt ?? new Date().toISOString();

  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}: ${bench.kind === null ? 'unrecorded' : esc(bench.kind)} bench${serial === null ? '' : `, pen ${esc(serial)}`}, ${dateTime(results.startedAt)}</title>
<style>${css}</style></head>
<body>
<header><div><h1>${esc(title)}</h1>
  <p class="subtitle">${bench.kind === null ? `Bench ${na()}` : `<strong>${esc(bench.kind.charAt(0).toUpperCase() + bench.kind.slice(1))} bench</strong>`}${bench.description === null ? '' : `: ${esc(bench.description)}`}</p>
  <p class="subtitle">Pen ${serial === null ? na() : `<strong class="mono">${esc(serial)}</strong>`} · run started ${dateTime(results.startedAt)} · ${duration(results.durationMs)}</p></div>
  <div class="overall ${overall}"><div class="word">${overall.toUpperCase()}</div><div class="detail">${overallDetail}</div></div></header>
${identitySection(results.identity)}
${summarySection(results, traced.requirements, traced.hazards.map((h) => h.verdict))}
${failuresSection(results.tests)}
${matrixSection(set, traced.requirements)}
${hazardsSection(traced.hazards)}
${figuresSection(results.tests)}
${notRunSection(results.tests)}
${unknownTagsSection(traced.unknownTags)}
<footer>Generated ${dateTime(generatedAt)} by the pen host's HIL suite (npm run hil)${options.resultsPath === undefined ? '' : ` from ${esc(options.resultsPath)}`}.
Requirements and hazards: hardware/requirements.json. Verdict labels: ✓ VERIFIED, ✗ FAILED, – UNTESTED; outcomes: PASS, FAIL, N/A (not applicable on this bench), SKIP.</footer>
</body></html>
`;
}
