// `npx tsx scripts/trace.ts --results FILE` as CI's check runs it, in its own process: 0 when every requirement has a
// passing test, 1 naming the requirement and its hazard controls when one loses its test, 2 on a bad flag.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { requirementSet } from '../../src/qa/requirements.ts';
import type { RunResults, TestRecord } from '../../src/qa/results.ts';
import { projectRoot } from '../pen-process.ts';

const work = mkdtempSync(join(tmpdir(), 'trace-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function resultsFile(name: string, tests: TestRecord[]): string {
  const results: RunResults = { startedAt: '2026-11-26T00:00:00.000Z', durationMs: 1, tests, identity: {} };
  const path = join(work, name);
  writeFileSync(path, JSON.stringify(results));
  return path;
}

/** One passing test per requirement, but for `without`. */
function onePassingTestEach(without?: string): TestRecord[] {
  return requirementSet.requirements.filter((r) => r.id !== without).map((r) => ({
    file: 'tests/sim/example.test.ts', suites: [], name: `verifies ${r.id}`, tags: [r.id], outcome: 'passed' as const,
    durationMs: 1, figures: [], reason: null, error: null,
  }));
}

function trace(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/trace.ts', ...args], { cwd: projectRoot, encoding: 'utf8', timeout: 20_000 });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('scripts/trace.ts', () => {
  it('exits 0 when every requirement has a passing test', () => {
    const run = trace(['--results', resultsFile('all.json', onePassingTestEach())]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^traceability: requirements (\d+) of \1 verified, 0 failed, 0 untested/);
  });

  it('exits 1 naming a requirement that lost its test and the hazard controls it backs', () => {
    const run = trace(['--results', resultsFile('no-jam.json', onePassingTestEach('REQ-JAM'))]);
    expect(run.code, run.stderr).toBe(1);
    expect(run.stdout).toMatch(/^ {2}REQ-JAM untested: no test in this run carries it$/m);
    expect(run.stdout).toMatch(/^ {2}HAZ-7 control 1 \(.*\) has no passing test: REQ-JAM untested$/m);
    const json = trace(['--results', join(work, 'no-jam.json'), '--json']);
    expect(json.code).toBe(1);
    expect((JSON.parse(json.stdout) as { unverified: string[] }).unverified).toEqual(['REQ-JAM', 'HAZ-7 control 1']);
  });

  it('exits 2 on a bad flag or a results file it cannot read, with the usage', () => {
    const bad = trace(['--bogus']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/Unknown option '--bogus'[\s\S]*usage: npx tsx scripts\/trace\.ts/);
    const missing = trace(['--results', join(work, 'none.json')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read the results file');
    expect(trace(['--help'])).toMatchObject({ code: 0, stdout: expect.stringMatching(/^usage: /) as unknown });
  });
});
