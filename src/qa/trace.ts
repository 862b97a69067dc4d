// Traceability: which tests verify each requirement, and through them each hazard's controls, with a verdict each.
import type { Hazard, HazardControl, Requirement, RequirementSet } from './requirements.ts';
import type { RunResults, TestRecord } from './results.ts';

/** verified: at least one test passed and none failed; failed: a test failed; untested: no test passed (none ran, or
 * every one was skipped or not applicable on this bench). */
export type Verdict = 'verified' | 'failed' | 'untested';

export interface RequirementTrace {
  readonly requirement: Requirement;
  readonly tests: readonly TestRecord[];
  readonly verdict: Verdict;
}

export interface ControlTrace {
  readonly control: HazardControl;
  readonly requirements: readonly RequirementTrace[];
  readonly verdict: Verdict;
}

export interface HazardTrace {
  readonly hazard: Hazard;
  readonly controls: readonly ControlTrace[];
  readonly verdict: Verdict;
}

export interface Trace {
  readonly requirements: readonly RequirementTrace[];
  readonly hazards: readonly HazardTrace[];
  /** Tests tagged with an id that is no requirement (vitest's strict tags refuse these at collection; a results file
   * from elsewhere may still carry them). */
  readonly unknownTags: readonly { readonly test: TestRecord; readonly tag: string }[];
}

/** The worst of several verdicts: failed over untested over verified. */
function worst(verdicts: readonly Verdict[]): Verdict {
  if (verdicts.includes('failed')) return 'failed';
  if (verdicts.includes('untested') || verdicts.length === 0) return 'untested';
  return 'verified';
}

function verdictOf(tests: readonly TestRecord[]): Verdict {
  if (tests.some((t) => t.outcome === 'failed')) return 'failed';
  return tests.some((t) => t.outcome === 'passed') ? 'verified' : 'untested';
}

export function trace(set: RequirementSet, results: RunResults): Trace {
  const byId = new Map<string, RequirementTrace>();
  for (const requirement of set.requirements) {
    const tests = results.tests.filter((t) => t.tags.includes(requirement.id));
    byId.set(requirement.id, { requirement, tests, verdict: verdictOf(tests) });
  }
  const hazards = set.hazards.map((hazard) => {
    const controls = hazard.controls.map((control) => {
      const requirements = control.requirements.flatMap((id) => byId.get(id) ?? []);
      return { control, requirements, verdict: worst(requirements.map((r) => r.verdict)) };
    });
    return { hazard, controls, verdict: worst(controls.map((c) => c.verdict)) };
  });
  const unknownTags = results.tests.flatMap((test) => test.tags.filter((tag) => !byId.has(tag)).map((tag) => ({ test, tag })));
  return { requirements: [...byId.values()], hazards, unknownTags };
}
