// Loop jitter: the supervisory loop's tick lateness on the wall clock at 100 and 500 Hz, idle and under GC pressure.
import { PerformanceObserver } from 'node:perf_hooks';
import { RealClock } from '../hardware/clock.ts';
import { SupervisoryLoop, type LatenessStats } from '../src/control/loop.ts';
import { progress, round, type Figure } from './figure.ts';

const ratesHz = [100, 500] as const;
const runMs = 3000;
// Survivors are kept this long (in load slices), so some reach the old generation and provoke major GCs too.
const retainedSlices = 200;

interface Load {
  readonly allocatedMb: number;
  stop(): void;
}

/** Allocates short-lived arrays and objects in small setImmediate slices, as a busy host would, until stopped. */
function startAllocationLoad(): Load {
  const retained: unknown[][] = [];
  let running = true;
  let allocatedBytes = 0;
  const slice = (): void => {
    if (!running) return;
    const kept: unknown[] = [];
    for (let i = 0; i < 200; i++) {
      const numbers = new Array<number>(64).fill(i);
      const record = { index: i, numbers, label: `record ${i}` };
      if (i % 20 === 0) kept.push(record);
      allocatedBytes += 64 * 8 + 100;  // rough: array payload plus object and string headers
    }
    retained.push(kept);
    if (retained.length > retainedSlices) retained.shift();
    setImmediate(slice);
  };
  setImmediate(slice);
  return {
    get allocatedMb() { return allocatedBytes / 1e6; },
    stop: () => { running = false; },
  };
}

/** Collects garbage-collector pauses while it is open. */
function watchGc(): { pausesMs: number[]; close(): void } {
  const pausesMs: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) pausesMs.push(entry.duration);
  });
  observer.observe({ entryTypes: ['gc'] });
  return { pausesMs, close: () => observer.disconnect() };
}

async function runLoop(rateHz: number, loaded: boolean): Promise<{ stats: LatenessStats; earliestMs: number; note: string }> {
  const clock = new RealClock();
  const loop = new SupervisoryLoop({ clock, rateHz });
  // The loop's stats clamp early ticks to 0 lateness; Node's whole-ms timers do fire early, so track that here.
  let earliestMs = 0;
  loop.onTick((tick) => { earliestMs = Math.max(earliestMs, tick.scheduledMs - clock.nowMs()); });
  const gc = watchGc();
  const load = loaded ? startAllocationLoad() : null;
  loop.start();
  await clock.sleep(runMs);
  loop.stop();
  load?.stop();
  // PerformanceObserver delivers entries asynchronously: give it a turn before reading them.
  await clock.sleep(10);
  gc.close();
  const gcMaxMs = gc.pausesMs.length === 0 ? 0 : Math.max(...gc.pausesMs);
  const loadText = load === null ? 'no load' : `~${round(load.allocatedMb / (runMs / 1000), 0)} MB/s (estimated) allocated in setImmediate slices`;
  return {
    stats: loop.stats(),
    earliestMs,
    note: `RealClock, ${runMs} ms, ${loadText}; ${gc.pausesMs.length} GC pauses, longest ${round(gcMaxMs, 2)} ms`,
  };
}

export async function measure(): Promise<Figure[]> {
  const figures: Figure[] = [];
  for (const rateHz of ratesHz) {
    for (const loaded of [false, true]) {
      const { stats, earliestMs, note } = await runLoop(rateHz, loaded);
      const prefix = `loop_${rateHz}hz_${loaded ? 'load' : 'idle'}`;
      const lateness = `tick lateness vs the drift-free schedule, ${stats.ticks} ticks; ${note}`;
      figures.push(
        { name: `${prefix}_p50_ms`, value: round(stats.p50Ms), unit: 'ms', note: lateness },
        { name: `${prefix}_p99_ms`, value: round(stats.p99Ms), unit: 'ms', note: lateness },
        { name: `${prefix}_max_ms`, value: round(stats.maxMs), unit: 'ms', note: lateness },
        { name: `${prefix}_early_max_ms`, value: round(earliestMs), unit: 'ms', note: `how early the earliest tick fired; ${note}` },
        { name: `${prefix}_skipped_ticks`, value: stats.skippedTicks, unit: 'ticks', note: 'whole periods missed and not replayed' },
      );
      progress(`${prefix}: p50 ${round(stats.p50Ms)} ms, p99 ${round(stats.p99Ms)} ms, max ${round(stats.maxMs)} ms, ` +
        `up to ${round(earliestMs)} ms early, ${stats.skippedTicks} skipped; ${note}`);
    }
  }
  return figures;
}
