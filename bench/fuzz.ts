// Firmware fuzzing: 10^7 libFuzzer executions of the link, the dispatcher and the safety logic over the fake board
// (`make -C firmware fuzz-bench`, tests/fuzz/link_fuzz.c): executions, coverage, time and findings.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { progress, type Figure } from './figure.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

export function measure(): Promise<Figure[]> {
  const result = spawnSync('make', ['-s', '-C', 'firmware', 'fuzz-bench'], { cwd: root, encoding: 'utf8' });
  const printed = (name: string): number => {
    const value = new RegExp(`^${name}: ([\\d.]+)$`, 'm').exec(result.stdout)?.[1];
    if (value === undefined) throw new Error(`make fuzz-bench printed no ${name}:\n${result.stdout}${result.stderr}`);
    return Number(value);
  };
  const findings = printed('fuzz_findings');
  if (result.status !== 0) progress(`SURPRISE fuzz-bench exited ${result.status}: see firmware/build/host/fuzz/bench.log`);
  const seconds = printed('fuzz_seconds');
  const executions = printed('fuzz_executions');
  return Promise.resolve([
    { name: 'fuzz_executions', value: executions, unit: 'runs', note: `${Math.round(executions / seconds)} runs/s, ASan + UBSan` },
    { name: 'fuzz_coverage', value: printed('fuzz_coverage'), unit: 'edges', note: `libFuzzer cov:; ft: ${printed('fuzz_features')} features` },
    { name: 'fuzz_seconds', value: seconds, unit: 's' },
    { name: 'fuzz_findings', value: findings, unit: 'inputs', note: findings ? 'kept in firmware/build/host/fuzz/bench/artifacts' : 'none' },
  ]);
}
