// A vitest reporter that writes the run's results file (src/qa/results.ts). Given on the command line by
// scripts/test.ts and scripts/hil.ts (`--reporter=./src/qa/results-reporter.ts`), since command-line reporters replace
// the configuration's.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import type { Reporter, TestCase, TestModule } from 'vitest/node';
import { annotationType, resultsPath, type Outcome, type RunResults, type TestRecord } from './results.ts';

function suitesOf(test: TestCase): string[] {
  const names: string[] = [];
  for (let parent = test.parent; parent.type === 'suite'; parent = parent.parent) names.unshift(parent.name);
  return names;
}

function recordOf(test: TestCase, root: string): TestRecord {
  const result = test.result();
  const annotations = test.annotations();
  const notApplicable = annotations.find((a) => a.type === annotationType.notApplicable)?.message ?? null;
  let outcome: Outcome;
  let reason: string | null = null;
  let error: string | null = null;
  if (result.state === 'passed') outcome = 'passed';
  else if (result.state === 'failed') {
    outcome = 'failed';
    error = result.errors[0]?.message ?? 'failed';
  } else {
    outcome = notApplicable === null ? 'skipped' : 'not-applicable';
    reason = notApplicable ?? (result.state === 'skipped' ? result.note ?? null : null);
  }
  return {
    file: relative(root, test.module.moduleId),
    suites: suitesOf(test),
    name: test.name,
    tags: test.tags,
    outcome,
    durationMs: test.diagnostic()?.duration ?? 0,
    figures: annotations.filter((a) => a.type === annotationType.figure).map((a) => a.message),
    reason,
    error,
  };
}

export default class ResultsReporter implements Reporter {
  private startedMs = Date.now();
  private root = process.cwd();

  onInit(vitest: { config: { root: string } }): void {
    this.root = vitest.config.root;
    this.startedMs = Date.now();
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const tests: TestRecord[] = [];
    const identity: Record<string, unknown> = {};
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        tests.push(recordOf(test, this.root));
        for (const annotation of test.annotations()) {
          if (!annotation.type.startsWith(annotationType.identityPrefix)) continue;
          identity[annotation.type.slice(annotationType.identityPrefix.length)] = JSON.parse(annotation.message) as unknown;
        }
      }
    }
    const results: RunResults = { startedAt: new Date(this.startedMs).toISOString(), durationMs: Date.now() - this.startedMs, tests, identity };
    const path = resultsPath();
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, `${JSON.stringify(results, null, 1)}\n`);
  }
}
