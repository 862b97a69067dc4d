// Benchmark runner (`npm run bench`): runs every benchmark in order, prints `name: value unit`, writes bench/results.json.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Figure } from './figure.ts';
import * as auth from './auth.ts';
import * as calibration from './calibration.ts';
import * as chips from './chips.ts';
import * as commandLatency from './command-latency.ts';
import * as crypto from './crypto.ts';
import * as faultResponse from './fault-response.ts';
import * as firmwareSize from './firmware-size.ts';
import * as flash from './flash.ts';
import * as fuzz from './fuzz.ts';
import * as hil from './hil.ts';
import * as hostCpu from './host-cpu.ts';
import * as linkRtt from './link-rtt.ts';
import * as loopJitter from './loop-jitter.ts';
import * as needleSpeed from './needle-speed.ts';
import * as records from './records.ts';
import * as simSpeed from './sim-speed.ts';
import * as speedLoop from './speed-loop.ts';
import * as stepper from './stepper.ts';
import * as virtualBench from './virtual-bench.ts';
import * as watchdog from './watchdog.ts';

const benchmarks: readonly { readonly name: string; readonly measure: () => Promise<Figure[]> }[] = [
  { name: 'firmware-size', measure: firmwareSize.measure },
  { name: 'sim-speed', measure: simSpeed.measure },
  { name: 'virtual-bench', measure: virtualBench.measure },
  { name: 'hil', measure: hil.measure },
  { name: 'link-rtt', measure: linkRtt.measure },
  { name: 'fault-response', measure: faultResponse.measure },
  { name: 'watchdog', measure: watchdog.measure },
  { name: 'stepper', measure: stepper.measure },
  { name: 'needle-speed', measure: needleSpeed.measure },
  { name: 'speed-loop', measure: speedLoop.measure },
  { name: 'crypto', measure: crypto.measure },
  { name: 'auth', measure: auth.measure },
  { name: 'chips', measure: chips.measure },
  { name: 'calibration', measure: calibration.measure },
  { name: 'flash', measure: flash.measure },
  { name: 'command-latency', measure: commandLatency.measure },
  { name: 'loop-jitter', measure: loopJitter.measure },
  { name: 'host-cpu', measure: hostCpu.measure },
  { name: 'records', measure: records.measure },
  { name: 'fuzz', measure: fuzz.measure },
];

const resultsPath = fileURLToPath(new URL('results.json', import.meta.url));

async function main(): Promise<void> {
  const figures: Figure[] = [];
  for (const [index, benchmark] of benchmarks.entries()) {
    process.stderr.write(`[${index + 1}/${benchmarks.length}] ${benchmark.name}\n`);
    const startMs = performance.now();
    const measured = await benchmark.measure();
    process.stderr.write(`[${index + 1}/${benchmarks.length}] ${benchmark.name} done in ${((performance.now() - startMs) / 1000).toFixed(1)} s\n`);
    for (const figure of measured) console.log(`${figure.name}: ${figure.value} ${figure.unit}`);
    figures.push(...measured);
  }
  writeFileSync(resultsPath, `${JSON.stringify(figures, null, 2)}\n`);
  process.stderr.write(`wrote ${resultsPath}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
