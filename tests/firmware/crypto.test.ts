// The firmware's SHA-256 and HMAC-SHA256 (firmware/src/sha256.c) built for this machine with ASan and UBSan: its
// published-vector tests (tests/firmware/crypto_tests.c), and its results against node:crypto on random inputs.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { beforeAll, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const binary = 'firmware/build/host/crypto_tests';

/** Runs the test binary; in its reference modes it prints one hex digest per input. */
function run(args: readonly string[]): { status: number | null; stdout: string; output: string } {
  const result = spawnSync(binary, args, { cwd: root, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  return { status: result.status, stdout: result.stdout, output: `${result.stdout}${result.stderr}` };
}

beforeAll(() => {
  execFileSync('make', ['-s', '-C', 'firmware', 'build/host/crypto_tests'], { cwd: root, stdio: 'pipe' });
}, 60_000);

it('SHA-256 and HMAC-SHA256 pass the FIPS 180-4 and RFC 4231 vectors and their unit tests', { tags: ['REQ-ROLES'] }, () => {
  const result = run([]);
  expect(result.status, result.output.slice(-3000)).toBe(0);
  const summary = /^(\d+) passed, (\d+) failed$/.exec(result.stdout.trimEnd().split('\n').at(-1) ?? '');
  expect(summary?.[2], result.output.slice(-3000)).toBe('0');
  // 5 SHA-256 and 7 RFC 4231 vectors, 8 padding boundaries, 3 key lengths at the block size, 16 split runs, the context
  // checks and 33 crypto_equal cases.
  expect(Number(summary?.[1])).toBeGreaterThanOrEqual(74);
});

it('SHA-256 equals node:crypto for every length from 0 to 200 bytes, across the padding boundaries', { tags: ['REQ-ROLES'] }, () => {
  const messages = Array.from({ length: 201 }, (_, length) => randomBytes(length));
  const result = run(['--sha256', ...messages.map((message) => message.toString('hex'))]);
  expect(result.status, result.output.slice(-3000)).toBe(0);
  const digests = result.stdout.trimEnd().split('\n');
  for (const [length, message] of messages.entries()) {
    expect(digests[length], `message ${message.toString('hex')}`).toBe(createHash('sha256').update(message).digest('hex'));
  }
});

it('HMAC-SHA256 equals node:crypto for random keys and messages, keys shorter than, equal to and longer than a block', { tags: ['REQ-ROLES'] }, () => {
  const keyLengths = [0, 1, 16, 32, 63, 64, 65, 131, 300];
  const messageLengths = [0, 1, 41, 55, 56, 64, 119, 1000];
  const pairs = keyLengths.flatMap((keyLength) => messageLengths.map((length) => [randomBytes(keyLength), randomBytes(length)] as const));
  const result = run(['--hmac', ...pairs.flatMap(([key, message]) => [key.toString('hex'), message.toString('hex')])]);
  expect(result.status, result.output.slice(-3000)).toBe(0);
  const macs = result.stdout.trimEnd().split('\n');
  expect(macs).toHaveLength(pairs.length);
  for (const [index, [key, message]] of pairs.entries()) {
    const expected = createHmac('sha256', key).update(message).digest('hex');
    expect(macs[index], `key ${key.toString('hex')}, message ${message.toString('hex')}`).toBe(expected);
  }
});
