// The firmware's logic (safety, commands, calibration, storage, link) built for this machine with ASan and UBSan over
// the fake board, driven through the wire by tests/firmware/logic_tests.c.
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

it('the firmware logic passes its unit tests on the fake board', () => {
  execFileSync('make', ['-s', '-C', 'firmware', 'host-tests'], { cwd: root, stdio: 'pipe' });
  const result = spawnSync('firmware/build/host/logic_tests', [], { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const output = `${result.stdout}${result.stderr}`;
  expect(result.status, output.slice(-3000)).toBe(0);
  const summary = /^(\d+) passed, (\d+) failed$/.exec(result.stdout.trimEnd().split('\n').at(-1) ?? '');
  expect(summary?.[2], output.slice(-3000)).toBe('0');
  expect(Number(summary?.[1])).toBeGreaterThanOrEqual(600);
}, 60_000);
