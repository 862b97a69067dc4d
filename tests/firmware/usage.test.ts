// The needle-time counter (src/usage.c) and its EEPROM ring built for this machine with ASan and UBSan over the fake
// board, driven by tests/firmware/usage_tests.c.
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

it('the needle-time counter passes its unit tests on the fake EEPROM', () => {
  execFileSync('make', ['-s', '-C', 'firmware', 'build/host/usage_tests'], { cwd: root, stdio: 'pipe' });
  const result = spawnSync('firmware/build/host/usage_tests', [], { cwd: root, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  const output = `${result.stdout}${result.stderr}`;
  expect(result.status, output.slice(-3000)).toBe(0);
  const summary = /^(\d+) passed, (\d+) failed$/.exec(result.stdout.trimEnd().split('\n').at(-1) ?? '');
  expect(summary?.[2], output.slice(-3000)).toBe('0');
  expect(Number(summary?.[1])).toBeGreaterThanOrEqual(16);
}, 60_000);
