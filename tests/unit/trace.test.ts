// The traceability check on synthetic results: what verifies a requirement and a hazard control, what fails the run,
// what is named; the requirement file's consistency check; how scripts/test.ts builds vitest's arguments.
import { describe, expect, it } from 'vitest';
import { checkRequirementSet, requirementSet, type RequirementSet } from '../../src/qa/requirements.ts';
import type { Outcome, RunResults, TestRecord } from '../../src/qa/results.ts';
import { checkTrace, reportLines, runVerdict, vitestArguments } from '../../src/qa/trace-check.ts';
import { trace } from '../../src/qa/trace.ts';

const set: RequirementSet = checkRequirementSet({
  specialControls: [{ id: '878.4430(b)(2)(i)', text: 'accuracy' }],
  requirements: [
    { id: 'REQ-DEPTH', text: 'depth within 0.50–2.00 mm', specialControls: ['878.4430(b)(2)(i)'] },
    { id: 'REQ-RATE', text: 'rate within ±2 %', specialControls: ['878.4430(b)(2)(i)'] },
    { id: 'REQ-STOP', text: 'STOP stops', specialControls: [] },
  ],
  hazards: [
    { id: 'HAZ-1', hazard: 'too deep', cause: 'a bad frame', harm: 'injury', controls: [{ text: 'firmware window', requirements: ['REQ-DEPTH'] }] },
    {
      id: 'HAZ-2', hazard: 'too fast', cause: 'load', harm: 'trauma',
      controls: [{ text: 'speed loop', requirements: ['REQ-RATE', 'REQ-STOP'] }, { text: 'window too', requirements: ['REQ-DEPTH'] }],
    },
  ],
});

function record(name: string, tags: readonly string[], outcome: Outcome = 'passed'): TestRecord {
  return {
    file: 'tests/sim/example.test.ts', suites: ['suite'], name, tags, outcome, durationMs: 1, figures: [],
    reason: outcome === 'not-applicable' ? 'no plant on a real bench' : null, error: outcome === 'failed' ? 'expected 1 to be 2\n  at line 3' : null,
  };
}

function results(tests: TestRecord[]): RunResults {
  return { startedAt: '2026-11-26T00:00:00.000Z', durationMs: 10, tests, identity: {} };
}

const allPassing = (): TestRecord[] => [
  record('depth test', ['REQ-DEPTH']),
  record('rate test', ['REQ-RATE']),
  record('stop test', ['REQ-STOP', 'REQ-DEPTH']),
  record('untagged test', []),
];

describe('the traceability check', () => {
  it('passes when every requirement has a passing test, and so every hazard control', () => {
    const check = checkTrace(trace(set, results(allPassing())));
    expect(check.complete).toBe(true);
    expect(check.unverified).toEqual([]);
    expect(check.summary).toMatch(/requirements 3 of 3 verified, 0 failed, 0 untested; hazards 2 of 2 verified.*controls 3 of 3 verified/);
    expect(runVerdict({ vitestExitCode: 0, interrupted: false, partial: false, check })).toMatchObject({ exitCode: 0 });
  });

  const losses: Record<string, (tests: TestRecord[]) => TestRecord[]> = {
    removed: (tests) => tests.filter((t) => t.name !== 'rate test'),
    skipped: (tests) => tests.map((t) => (t.name === 'rate test' ? record(t.name, t.tags, 'skipped') : t)),
    'not applicable': (tests) => tests.map((t) => (t.name === 'rate test' ? record(t.name, t.tags, 'not-applicable') : t)),
    failing: (tests) => tests.map((t) => (t.name === 'rate test' ? record(t.name, t.tags, 'failed') : t)),
  };
  for (const [how, lose] of Object.entries(losses)) {
    it(`fails when a requirement's only test is ${how}, naming it and the hazard control it backs`, () => {
      const check = checkTrace(trace(set, results(lose(allPassing()))));
      expect(check.complete).toBe(false);
      expect(check.unverified).toEqual(['REQ-RATE', 'HAZ-2 control 1']);
      const text = reportLines(check, false).join('\n');
      expect(text).toContain(`REQ-RATE ${how === 'failing' ? 'failed' : 'untested'}`);
      expect(text).toMatch(/HAZ-2 control 1 \("speed loop", against: too fast\) has no passing test: REQ-RATE (failed|untested)/);
      expect(text).not.toMatch(/REQ-DEPTH|REQ-STOP|HAZ-1/);
      if (how === 'not applicable') expect(text).toContain('not applicable (no plant on a real bench)');
      if (how === 'failing') expect(text).toContain('(expected 1 to be 2)');
      const verdict = runVerdict({ vitestExitCode: how === 'failing' ? 1 : 0, interrupted: false, partial: false, check });
      expect(verdict.exitCode).toBe(1);
      if (how !== 'failing') expect(verdict.message).toBe('traceability failed: 1 requirement and 1 hazard control without a passing test (named above)');
    });
  }

  it('holds a requirement failed when one of its tests fails, even if another passed', () => {
    const tests = [...allPassing(), record('second depth test', ['REQ-DEPTH'], 'failed')];
    const check = checkTrace(trace(set, results(tests)));
    expect(check.unverified).toEqual(['REQ-DEPTH', 'HAZ-1 control 1', 'HAZ-2 control 2']);
    expect(check.findings.every((f) => f.kind === 'failed')).toBe(true);
  });

  it('on a partial run counts the untested but does not fail on them, and still lists the failed', () => {
    const check = checkTrace(trace(set, results([record('depth test', ['REQ-DEPTH']), record('stop test', ['REQ-STOP'], 'failed')])));
    const lines = reportLines(check, true);
    expect(lines[0]).toMatch(/requirements 1 of 3 verified, 1 failed, 1 untested/);
    expect(lines.join('\n')).toContain('REQ-STOP failed');
    expect(lines.join('\n')).not.toMatch(/^ +REQ-RATE/m);  // untested: counted, not listed
    const untestedOnly = checkTrace(trace(set, results([record('depth test', ['REQ-DEPTH'])])));
    const verdict = runVerdict({ vitestExitCode: 0, interrupted: false, partial: true, check: untestedOnly });
    expect(verdict).toMatchObject({ exitCode: 0 });
    expect(verdict.message).toMatch(/^partial run .*: 2 requirements and 1 hazard control without a passing test do not fail it/);
  });

  it('reports a tag that is no requirement, naming the test, without failing on it', () => {
    const check = checkTrace(trace(set, results([...allPassing(), record('misspelt', ['REQ-RAT'])])));
    expect(check.complete).toBe(true);
    expect(check.findings).toEqual([{ kind: 'unknown-tag', id: 'REQ-RAT', line: 'unknown tag REQ-RAT (no such requirement) on tests/sim/example.test.ts › suite › misspelt' }]);
  });

  it('decides the exit: 130 when interrupted, vitest\'s own failure first, 1 without a results file', () => {
    const check = checkTrace(trace(set, results(allPassing())));
    expect(runVerdict({ vitestExitCode: null, interrupted: true, partial: false, check: null }).exitCode).toBe(130);
    expect(runVerdict({ vitestExitCode: 1, interrupted: false, partial: false, check })).toEqual({ exitCode: 1, message: 'tests failed' });
    expect(runVerdict({ vitestExitCode: 0, interrupted: false, partial: false, check: null }).exitCode).toBe(1);
  });
});

describe('the requirement file\'s consistency check', () => {
  it('names dangling special controls and requirements, duplicates, bad ids and hazards without controls', () => {
    const broken = {
      specialControls: [{ id: '878.4430(b)(3)', text: 'sterility' }],
      requirements: [
        { id: 'REQ-A', text: 'a', specialControls: ['878.4430(b)(99)'] },
        { id: 'REQ-A', text: 'a again', specialControls: [] },
        { id: 'req-lower', text: 'bad id', specialControls: [] },
      ],
      hazards: [
        { id: 'HAZ-1', hazard: 'h', cause: 'c', harm: 'x', controls: [{ text: 'ctl', requirements: ['REQ-MISSING'] }, { text: 'empty', requirements: [] }] },
        { id: 'HAZ-1', hazard: 'h', cause: 'c', harm: 'x', controls: [] },
      ],
    };
    let message = '';
    try {
      checkRequirementSet(broken);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('REQ-A names special control 878.4430(b)(99), which is not listed');
    expect(message).toContain('REQ-A appears twice');
    expect(message).toContain("req-lower: an id is REQ- and upper-case words joined by '-'");
    expect(message).toContain('HAZ-1: control "ctl" names REQ-MISSING, which is not a requirement');
    expect(message).toContain('HAZ-1: control "empty" names no requirement to verify it');
    expect(message).toContain('HAZ-1 appears twice');
    expect(message).toContain('HAZ-1 has no control');
  });

  it('passes for hardware/requirements.json, which holds every id the HIL suite tags', () => {
    const ids = requirementSet.requirements.map((r) => r.id);
    for (const id of ['REQ-IDENTITY', 'REQ-HOMING', 'REQ-DEPTH-WINDOW', 'REQ-DEPTH-ACCURACY', 'REQ-RATE-ACCURACY', 'REQ-RATE-LIMITS', 'REQ-ESTOP',
      'REQ-CARTRIDGE-INTERLOCK', 'REQ-FOOTSWITCH', 'REQ-HEARTBEAT', 'REQ-STOP', 'REQ-JAM', 'REQ-OVERTEMP', 'REQ-SENSOR-PLAUSIBILITY', 'REQ-SUPPLY',
      'REQ-FAULT-LATCH', 'REQ-CARTRIDGE-SINGLE-USE', 'REQ-NOSECONE-STERILE', 'REQ-ROLES']) {
      expect(ids).toContain(id);
    }
    // Every requirement backs some hazard control, so none is there for its own sake.
    const controlled = new Set(requirementSet.hazards.flatMap((h) => h.controls.flatMap((c) => c.requirements)));
    expect(ids.filter((id) => !controlled.has(id))).toEqual([]);
  });
});

describe('the arguments npm test gives vitest', () => {
  const reporter = './src/qa/results-reporter.ts';

  it('adds the default reporter unless one is named, and always the results reporter', () => {
    expect(vitestArguments([], reporter)).toEqual({ args: ['--reporter=default', `--reporter=${reporter}`], partial: false });
    const ci = ['--reporter=default', '--reporter=json', '--outputFile.json=/tmp/x/vitest.json'];
    expect(vitestArguments(ci, reporter)).toEqual({ args: [...ci, `--reporter=${reporter}`], partial: false });
    expect(vitestArguments(['--reporter', 'dot', '--outputFile.json', 'out.json'], reporter)).toEqual({
      args: ['--reporter', 'dot', '--outputFile.json', 'out.json', `--reporter=${reporter}`], partial: false,
    });
  });

  it('calls a run partial when it names files, a test name pattern or a project', () => {
    expect(vitestArguments(['tests/unit/trace.test.ts'], reporter).partial).toBe(true);
    expect(vitestArguments(['-t', 'STOP'], reporter).partial).toBe(true);
    expect(vitestArguments(['--testNamePattern=STOP'], reporter).partial).toBe(true);
    expect(vitestArguments(['--project', 'wall-clock'], reporter).partial).toBe(true);
    expect(vitestArguments(['--', '--reporter=verbose'], reporter)).toEqual({ args: ['--reporter=verbose', `--reporter=${reporter}`], partial: false });
  });
});
