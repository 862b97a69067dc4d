// The firmware's C link code, built for this machine with sanitizers, against the shared vectors.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

it('the C frame parser and encoder pass every shared vector', { tags: ['REQ-LINK-INTEGRITY'] }, () => {
  execFileSync('make', ['-s', '-C', 'firmware', 'host-tests'], { cwd: root, stdio: 'pipe' });
  const output = execFileSync('firmware/build/host/vectors', ['tests/vectors/frames.txt'], { cwd: root, encoding: 'utf8' });
  const summary = /(\d+) passed, (\d+) failed/.exec(output);
  expect(summary?.[2]).toBe('0');
  expect(Number(summary?.[1])).toBeGreaterThanOrEqual(20);
});
