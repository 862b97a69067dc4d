// The HIL suite as a benchmark: `npm run hil` on the virtual bench once per rig firmware (ours, stock StandardFirmata),
// and what the rig measured there: stimulus to motor off per failsafe (motorEnable low, in the bench's simulated time),
// the tach's error at each speed, the slowest the bench ran against the wall clock during a measurement, and the
// suite's duration. The figures are read from the results file the suite leaves (src/qa/results.ts): each failsafe's
// figure is tests/hil/bench.ts motorOffText's "NAME: motorEnable low after X ms, ...", each speed's
// "N strokes/s: tach H Hz ...".
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rigFirmwareHexPath, standardFirmataHexPath } from '../hardware/sim/virtual-rig.ts';
import { readResults } from '../src/qa/results.ts';
import { progress, round, type Figure } from './figure.ts';

const rigFirmwares = [
  { choice: 'ours', label: 'rig', path: rigFirmwareHexPath },
  { choice: 'standard', label: 'standard_firmata', path: standardFirmataHexPath },
] as const;

const snake = (text: string): string => text.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '');

function measureWith(firmware: (typeof rigFirmwares)[number]): Figure[] {
  const out = mkdtempSync(join(tmpdir(), 'pen-hil-bench-'));
  try {
    progress(`npm run hil with the rig running ${firmware.path} (about 30 s)`);
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/hil.ts', '--rig-firmware', firmware.choice, '--out', out, '--json'],
      { encoding: 'utf8', timeout: 300_000 });
    const resultsFile = join(out, 'results.json');
    if (run.status !== 0 || !existsSync(resultsFile)) {
      throw new Error(`npm run hil --rig-firmware ${firmware.choice} failed (exit ${run.status ?? run.signal ?? '?'}): ${run.stderr.slice(-2000)}`);
    }
    const results = readResults(resultsFile);
    const figures: Figure[] = [{ name: `hil_duration_s_${firmware.label}`, value: round(results.durationMs / 1000, 1), unit: 's', note: `${results.tests.length} tests, one bench` }];
    const rates: number[] = [];
    for (const text of results.tests.flatMap((t) => t.figures)) {
      const rate = /bench at ([\d.]+)× real time/.exec(text);
      if (rate !== null) rates.push(Number(rate[1]));
      const off = /^(.+?): motorEnable low after ([\d.]+) ms/.exec(text);
      if (off?.[1] !== undefined) {
        figures.push({ name: `hil_${snake(off[1])}_motor_off_ms_${firmware.label}`, value: round(Number(off[2]), 2), unit: 'ms', note: 'stimulus to motorEnable low as the rig reported it' });
      }
      const tach = /^(\d+) strokes\/s: tach ([\d.]+) Hz/.exec(text);
      if (tach !== null) {
        const set = Number(tach[1]);
        figures.push({ name: `hil_tach_error_percent_${set}_${firmware.label}`, value: round((Number(tach[2]) / set - 1) * 100, 2), unit: '%', note: 'rig-counted tach against the set speed' });
      }
    }
    if (rates.length > 0) {
      figures.push({ name: `hil_bench_slowest_real_time_factor_${firmware.label}`, value: round(Math.min(...rates), 2), unit: 'x', note: 'simulated over wall time, slowest measurement of the run' });
    }
    return figures;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

export function measure(): Promise<Figure[]> {
  const present = rigFirmwares.filter((firmware) => existsSync(firmware.path));
  if (present.length === 0) throw new Error(`no rig firmware: build ${rigFirmwareHexPath} or fetch ${standardFirmataHexPath} (npm run setup)`);
  return Promise.resolve(present.flatMap(measureWith));
}
