// The parts logic (src/parts.c) and the 1-Wire CRCs built for this machine with ASan and UBSan over the fake board and
// fake ID chips, driven by tests/firmware/parts_tests.c.
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

it('the parts logic passes its unit tests on the fake chips', () => {
  execFileSync('make', ['-s', '-C', 'firmware', 'build/host/parts_tests'], { cwd: root, stdio: 'pipe' });
  const result = spawnSync('firmware/build/host/parts_tests', [], { cwd: root, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  const output = `${result.stdout}${result.stderr}`;
  expect(result.status, output.slice(-3000)).toBe(0);
  const summary = /^(\d+) passed, (\d+) failed$/.exec(result.stdout.trimEnd().split('\n').at(-1) ?? '');
  expect(summary?.[2], output.slice(-3000)).toBe('0');
  expect(Number(summary?.[1])).toBeGreaterThanOrEqual(18);
}, 60_000);
