// Runs the firmware link fuzzer (tests/fuzz/link_fuzz.c, built for this machine with ASan and UBSan) on fixed seeds.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

it.each([1, 2, 3])('the firmware link layer survives 20 000 fuzzed streams (seed %i) with its invariants intact', (seed) => {
  execFileSync('make', ['-s', '-C', 'firmware', 'host-tests'], { cwd: root, stdio: 'pipe' });
  const output = execFileSync('firmware/build/host/link_fuzz', ['20000', String(seed)], { cwd: root, encoding: 'utf8' });
  const stats = /fuzz: (\d+) bytes, (\d+) good frames, (\d+) executed/.exec(output);
  expect(Number(stats?.[1])).toBeGreaterThan(100_000);
  expect(Number(stats?.[3])).toBeGreaterThan(1000);
});
