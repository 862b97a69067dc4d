// Runs the firmware fuzzer (tests/fuzz/link_fuzz.c: libFuzzer with ASan and UBSan over the link, the dispatcher and the
// safety logic on the fake board) for 25 000 executions (npm run bench runs 10^7) from a copy of the seed corpus, which it may add to.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const runs = 25_000;

it(`the firmware keeps its invariants through ${runs} fuzzed inputs on the link`, { tags: ['REQ-HOSTILE-HOST', 'REQ-LINK-INTEGRITY'], timeout: 120_000 }, () => {
  execFileSync('make', ['-s', '-C', 'firmware', 'host-tests'], { cwd: root, stdio: 'pipe' });
  const work = mkdtempSync(join(tmpdir(), 'link-fuzz-'));
  try {
    const corpus = join(work, 'corpus');
    cpSync(join(root, 'tests/fuzz/corpus'), corpus, { recursive: true });
    expect(readdirSync(corpus).length).toBeGreaterThanOrEqual(10);
    const result = spawnSync(
      'firmware/build/host/link_fuzz',
      [`-runs=${runs}`, '-seed=1', '-max_len=512', '-print_final_stats=1', `-artifact_prefix=${work}/`, corpus],
      { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
    );
    const output = `${result.stdout}${result.stderr}`;
    // On a finding libFuzzer exits non-zero and names the input it kept: the tail of its report says what broke.
    expect(result.status, output.slice(-3000)).toBe(0);
    expect(/^stat::number_of_executed_units:\s*(\d+)$/m.exec(output)?.[1]).toBe(String(runs));
    expect(readdirSync(work).filter((name) => /^(crash|leak|timeout|oom)-/.test(name))).toEqual([]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
