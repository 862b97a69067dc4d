// Test runner configuration: every suite under tests/, firmware built beforehand by `npm test`. Two groups, one after
// the other: files that run in simulated time (or only compute) share the two cores; then the files whose pens or hosts
// run in wall-clock time (spawned `pen` processes, `pen sim`, ptys, kill -9), one at a time, since a stalled process
// there would be a failure of timing, not of the code.
import { defineConfig } from 'vitest/config';

/** Files that depend on wall-clock time: a new file that spawns processes or serves a real-time pen belongs here. */
const wallClockFiles = [
  'tests/sim/cli*.test.ts',
  'tests/sim/host-process.test.ts',
  'tests/sim/one-host.test.ts',
  'tests/sim/gauge.test.ts',
  'tests/sim/serial.test.ts',
  'tests/hil/**/*.test.ts',
  'tests/unit/store.test.ts',
];

const timeouts = { testTimeout: 30_000, hookTimeout: 30_000 } as const;

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'simulated-time',
          include: ['tests/**/*.test.ts'],
          exclude: wallClockFiles,
          // Both cores (the default leaves one free).
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
          ...timeouts,
        },
      },
      {
        test: {
          name: 'wall-clock',
          include: wallClockFiles,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
          ...timeouts,
        },
      },
    ],
  },
});
