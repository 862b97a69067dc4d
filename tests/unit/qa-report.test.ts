// The HIL reports from a synthetic run (tests/fixtures/qa-results.ts): the JUnit XML is well formed (xmllint reads it),
// counts right, carries the bench identity, requirement tags, figures and reasons, and survives hostile text; the HTML
// report holds the identity, each requirement's and hazard's verdict, the figures and reasons, escapes what it shows
// and fetches nothing.
import { spawnSync } from 'node:child_process'; // xmllint, the XML parser that judges the JUnit output
import { describe, expect, it } from 'vitest';
import { htmlReport } from '../../src/qa/html-report.ts';
import { flattenIdentity, junitXml } from '../../src/qa/junit.ts';
import type { RequirementSet } from '../../src/qa/requirements.ts';
import type { RunResults, TestRecord } from '../../src/qa/results.ts';
import { sampleResults, sampleSet } from '../fixtures/qa-results.ts';

/** Runs xmllint on the document; throws with its complaint, or saying how to install it. */
function xmllint(xml: string, args: readonly string[]): string {
  const result = spawnSync('xmllint', [...args, '-'], { input: xml, encoding: 'utf8' });
  if (result.error !== undefined) throw new Error(`xmllint did not run (${result.error.message}): npm run setup installs it (Debian: apt-get install libxml2-utils)`);
  if (result.status !== 0) throw new Error(`xmllint ${args.join(' ')} exited ${result.status ?? 'by signal'}: ${result.stderr}`);
  return result.stdout;
}
// xmllint ends what it prints with a newline of its own.
const xpath = (xml: string, expression: string): string => xmllint(xml, ['--xpath', expression]).replace(/\n$/, '');
const wellFormed = (xml: string): void => { xmllint(xml, ['--noout']); };

// Text a test name, error or identity could carry: markup, both quotes, an ampersand, and characters XML forbids.
const hostile = `<script>alert("x")</script> & 'q' \u0000\u0007\u001b[31m ]]> \uFFFE`;
const hostileClean = `<script>alert("x")</script> & 'q' [31m ]]> `;
const forbidden = ['\u0000', '\u0007', '\u001b', '\uFFFE'];
const carriesForbidden = (text: string): boolean => forbidden.some((character) => text.includes(character));

const hostileResults: RunResults = {
  ...sampleResults,
  tests: [
    ...sampleResults.tests,
    {
      file: 'tests/hil/hostile.test.ts', suites: [hostile], name: `name ${hostile}`, tags: ['REQ-ESTOP'], outcome: 'failed', durationMs: 7,
      figures: [`figure ${hostile}`], reason: null, error: `first line ${hostile}\nsecond line`,
    } satisfies TestRecord,
    {
      file: 'tests/hil/hostile.test.ts', suites: [], name: 'not here', tags: [], outcome: 'not-applicable', durationMs: 0,
      figures: [], reason: `reason ${hostile}`, error: null,
    } satisfies TestRecord,
  ],
  identity: { ...sampleResults.identity, pen: { serial: `SN ${hostile}` }, odd: [1, 'two', null] },
};

const hostileSet: RequirementSet = {
  ...sampleSet,
  requirements: sampleSet.requirements.map((r) => (r.id === 'REQ-ESTOP' ? { ...r, text: `stops ${hostile}` } : r)),
  hazards: [{ id: 'HAZ-9', hazard: `hazard ${hostile}`, cause: `cause ${hostile}`, harm: `harm ${hostile}`, controls: [{ text: `control ${hostile}`, requirements: ['REQ-ESTOP'] }] }],
};

describe('JUnit XML', () => {
  const xml = junitXml(sampleResults, sampleSet, { name: 'pen HIL' });

  it('is well formed and counts the run: tests, failures, skipped (not applicable among them), time', () => {
    wellFormed(xml);
    expect(xpath(xml, 'string(/testsuites/@name)')).toBe('pen HIL');
    expect(xpath(xml, 'string(/testsuites/@tests)')).toBe('6');
    expect(xpath(xml, 'string(/testsuites/@failures)')).toBe('1');
    expect(xpath(xml, 'string(/testsuites/@skipped)')).toBe('2');
    expect(xpath(xml, 'string(/testsuites/@time)')).toBe('48.310');
    expect(xpath(xml, 'string(/testsuites/@timestamp)')).toBe(sampleResults.startedAt);
    expect(xpath(xml, 'count(//testcase)')).toBe('6');
  });

  it('has one suite per test file, each counting its own tests', () => {
    expect(xpath(xml, 'count(/testsuites/testsuite)')).toBe('2');
    const suite = '/testsuites/testsuite[@name="tests/hil/failsafes.test.ts"]';
    expect(xpath(xml, `string(${suite}/@tests)`)).toBe('4');
    expect(xpath(xml, `string(${suite}/@failures)`)).toBe('1');
    expect(xpath(xml, `string(${suite}/@skipped)`)).toBe('2');
    expect(xpath(xml, `string(${suite}/@hostname)`)).toBe('ci-runner-3');
    expect(xpath(xml, 'string(/testsuites/testsuite[@name="tests/hil/targets.test.ts"]/@tests)')).toBe('2');
  });

  it('carries the bench identity as properties of every suite', () => {
    const property = (name: string): string => xpath(xml, `string(/testsuites/testsuite[1]/properties/property[@name="${name}"]/@value)`);
    expect(property('pen.serial')).toBe('MNP-0042');
    expect(property('pen.buildId')).toBe('0.1.0+g3f9c2a1');
    expect(property('pen.protocolVersion')).toBe('3');
    expect(property('pen.firmwareVersion')).toBe('0.1.0');
    expect(property('pen.calibration.stepsPerMm')).toBe('1612.3');
    expect(property('pen.calibration.source')).toBe('eeprom');
    expect(property('rig.firmwareName')).toBe('pen-rig');
    expect(property('rig.protocolVersion')).toBe('2.6');
    expect(property('rig.port')).toBe('tcp://127.0.0.1:5332');
    expect(property('bench.kind')).toBe('virtual');
    expect(property('bench.gaugePort')).toBe('none');
    expect(property('gauge')).toBe('not recorded');
    expect(property('requirements.failed')).toBe('1 of 5');
    expect(xpath(xml, 'count(/testsuites/testsuite[2]/properties/property[@name="pen.serial"])')).toBe('1');
  });

  it('names each test by file and describe blocks, with its requirements and figures as properties', () => {
    const estop = '//testcase[@name="e-stop pressed while the needle runs at 100 strokes/s takes motorEnable low"]';
    expect(xpath(xml, `string(${estop}/@classname)`)).toBe('tests/hil/failsafes.test.ts > failsafes > e-stop');
    expect(xpath(xml, `string(${estop}/@time)`)).toBe('2.210');
    expect(xpath(xml, `string(${estop}/properties/property[@name="requirement"]/@value)`)).toBe('REQ-ESTOP');
    expect(xpath(xml, `count(${estop}/properties/property[@name="figure"])`)).toBe('2');
    expect(xpath(xml, `string(${estop}/properties/property[@name="figure"][1]/@value)`)).toBe('e-stop: motorEnable low after 0.84 ms');
  });

  it('gives failures their error, skipped tests their reason, and not-applicable tests "not applicable: REASON"', () => {
    expect(xpath(xml, 'string(//testcase[failure]/failure/@message)')).toBe('AssertionError: expected 262.4 to be less than or equal to 260');
    expect(xpath(xml, 'string(//testcase[failure]/failure)')).toContain('at tests/hil/failsafes.test.ts:188:31');
    expect(xpath(xml, 'string(//testcase[@name="a jammed drive stops the motor"]/skipped/@message)'))
      .toBe('not applicable: a real bench has no plant to jam: the virtual bench covers it');
    expect(xpath(xml, 'string(//testcase[@name="the firmware refuses a depth the host did not check"]/skipped/@message)')).toBe('needs a control port');
  });

  it('escapes markup and quotes and drops characters XML forbids, in attributes and in text', () => {
    const hostileXml = junitXml(hostileResults, hostileSet);
    wellFormed(hostileXml);
    expect(carriesForbidden(hostileXml)).toBe(false);
    const testcase = `//testcase[@file="tests/hil/hostile.test.ts"][failure]`;
    expect(xpath(hostileXml, `string(${testcase}/@name)`)).toBe(`name ${hostileClean}`);
    expect(xpath(hostileXml, `string(${testcase}/@classname)`)).toBe(`tests/hil/hostile.test.ts > ${hostileClean}`);
    expect(xpath(hostileXml, `string(${testcase}/failure/@message)`)).toBe(`first line ${hostileClean}`);
    expect(xpath(hostileXml, `string(${testcase}/failure)`)).toBe(`first line ${hostileClean}\nsecond line`);
    expect(xpath(hostileXml, `string(${testcase}/properties/property[@name="figure"]/@value)`)).toBe(`figure ${hostileClean}`);
    expect(xpath(hostileXml, 'string(//testcase[@name="not here"]/skipped/@message)')).toBe(`not applicable: reason ${hostileClean}`);
    expect(xpath(hostileXml, 'string(/testsuites/testsuite[1]/properties/property[@name="pen.serial"]/@value)')).toBe(`SN ${hostileClean}`);
  });

  it('is well formed for an empty run with no identity', () => {
    const empty = junitXml({ startedAt: 'not a date', durationMs: Number.NaN, tests: [], identity: {} }, sampleSet);
    wellFormed(empty);
    expect(xpath(empty, 'string(/testsuites/@tests)')).toBe('0');
    expect(xpath(empty, 'string(/testsuites/@time)')).toBe('0.000');
  });
});

describe('identity flattening', () => {
  it('writes any shape as dotted names and text, and says which records are missing', () => {
    const pairs = flattenIdentity({ rig: 'a string where a record was expected', extra: { list: [1, 'two', null], deep: { a: { b: { c: { d: 1 } } } }, empty: {} } });
    expect(pairs).toEqual([
      ['bench', 'not recorded'], ['pen', 'not recorded'], ['rig', 'a string where a record was expected'], ['gauge', 'not recorded'],
      ['extra.list', '1, two, none'], ['extra.deep.a.b', '{"c":{"d":1}}'], ['extra.empty', '(empty)'],
    ]);
  });
});

describe('HTML report', () => {
  const html = htmlReport(sampleResults, sampleSet, { generatedAt: '2026-11-26T04:00:00Z' });

  it('says which bench, pen and date it is about, and the overall result', () => {
    expect(html).toMatch(/<title>HIL test report: virtual bench, pen MNP-0042, 2026-11-26 03:12 UTC<\/title>/);
    expect(html).toContain('<div class="word">FAILED</div>');
  });

  it('shows the bench identity: pen serial, firmware and build, protocol, calibration, rig, gauge, host', () => {
    for (const value of ['MNP-0042', '0.1.0+g3f9c2a1', 'pen-r1a', 'power-on', '1612.3', 'eeprom', 'pen-rig', 'tcp://127.0.0.1:5332', '2.6', 'ci-runner-3', 'v20.19.5',
      'virtual pen and virtual rig in lock-step (avr8js)']) expect(html).toContain(value);
    expect(html).toMatch(/<h3>Protocol version<\/h3>|<th>Protocol version<\/th><td><span class="mono">3<\/span>/);
    expect(html).toMatch(/<h3>Gauge<\/h3><p><span class="na">not recorded<\/span>/);
  });

  it('counts outcomes', () => {
    expect(html).toMatch(/<div class="value">3<\/div><div class="label">passed<\/div>/);
    expect(html).toMatch(/<div class="value">1<\/div><div class="label">failed<\/div>/);
    expect(html).toMatch(/<div class="value">1<\/div><div class="label">not applicable<\/div>/);
    expect(html).toMatch(/<div class="value">1<\/div><div class="label">skipped<\/div>/);
    expect(html).toContain('48.3 s');
  });

  it('has a matrix row per requirement with its verdict as a word, and its special controls', () => {
    const verdicts = { 'REQ-DEPTH-WINDOW': 'verified', 'REQ-ESTOP': 'verified', 'REQ-HEARTBEAT': 'failed', 'REQ-JAM': 'untested', 'REQ-IDENTITY': 'verified' };
    for (const [id, verdict] of Object.entries(verdicts)) {
      const row = new RegExp(`<tr id="${id}" data-verdict="${verdict}">([\\s\\S]*?)</tr>`).exec(html);
      expect(row, id).not.toBeNull();
      expect(row?.[1]).toContain(verdict.toUpperCase());
    }
    expect(html).toContain('Non-clinical performance data: accuracy of needle penetration depth and puncture rate');
    expect(html).toMatch(/<tr id="REQ-ESTOP"[\s\S]*?\(2\)\(iii\)[\s\S]*?<\/tr>/);
  });

  it('has a section per hazard with cause, harm, controls and their evidence', () => {
    expect(html).toMatch(/<section class="hazard" id="HAZ-1" data-verdict="verified">/);
    expect(html).toMatch(/<section class="hazard" id="HAZ-2" data-verdict="failed">/);
    expect(html).toMatch(/<section class="hazard" id="HAZ-3" data-verdict="untested">/);
    const haz2 = /<section class="hazard" id="HAZ-2"[\s\S]*?<\/section>/.exec(html)?.[0] ?? '';
    for (const text of ['host crash, USB unplugged', 'prolonged puncturing of one spot', 'Heartbeat watchdog in the firmware', 'REQ-HEARTBEAT',
      'the host goes silent', 'heartbeat: motorEnable low after 262.4 ms', 'FAIL']) expect(haz2).toContain(text);
  });

  it('lists the measured figures, the not-applicable reason and the failure', () => {
    expect(html).toContain('e-stop: motorEnable low after 0.84 ms');
    expect(html).toContain('depth 2.10 mm refused: allowed 0.50–2.00 mm');
    expect(html).toContain('a real bench has no plant to jam: the virtual bench covers it');
    expect(html).toContain('AssertionError: expected 262.4 to be less than or equal to 260');
  });

  it('escapes hostile text from the results, the identity and the requirements', () => {
    const hostileHtml = htmlReport(hostileResults, hostileSet);
    expect(hostileHtml).not.toContain('<script');
    expect(carriesForbidden(hostileHtml)).toBe(false);
    expect(hostileHtml).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;');
    for (const prefix of ['name ', 'first line ', 'figure ', 'reason ', 'SN ', 'stops ', 'hazard ', 'cause ', 'harm ', 'control ']) {
      expect(hostileHtml, prefix).toContain(`${prefix}&lt;script&gt;`);
    }
    expect(hostileHtml).toContain('1, two, none');
  });

  it('references nothing outside itself', () => {
    for (const document of [html, htmlReport(hostileResults, hostileSet)]) {
      expect(document).not.toMatch(/\b(src|href|action|poster|data)\s*=\s*["']?\s*(https?:|\/\/|file:)/i);
      expect(document).not.toMatch(/<(link|script|iframe|img|object|embed)\b/i);
      expect(document).not.toMatch(/@import|url\(/i);
    }
  });

  it('reads "not recorded" for a run without identity, and does not throw on odd shapes', () => {
    const bare = htmlReport({ startedAt: 'not a date', durationMs: Number.NaN, tests: [], identity: { pen: 'MNP-1', rig: [1, 2], gauge: null } }, sampleSet);
    expect(bare).toMatch(/<h3>Bench<\/h3><p><span class="na">not recorded<\/span>/);
    expect(bare).toContain('MNP-1');
    expect(bare).toContain('INCOMPLETE');
  });
});
