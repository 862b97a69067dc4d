// Runs one of the firmware's C unit-test programs (built for this machine with ASan and UBSan over the fake board) and
// checks its summary line: every case passed, and at least as many ran as the program is known to hold.
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

export function expectCTestsPass(makeTarget: string, program: string, leastPassed: number): void {
  execFileSync('make', ['-s', '-C', 'firmware', makeTarget], { cwd: root, stdio: 'pipe' });
  const result = spawnSync(`firmware/build/host/${program}`, [], { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const output = `${result.stdout}${result.stderr}`;
  expect(result.status, output.slice(-3000)).toBe(0);
  const summary = /^(\d+) passed, (\d+) failed$/.exec(result.stdout.trimEnd().split('\n').at(-1) ?? '');
  expect(summary?.[2], output.slice(-3000)).toBe('0');
  expect(Number(summary?.[1])).toBeGreaterThanOrEqual(leastPassed);
}
