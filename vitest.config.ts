// Test runner configuration: every suite under tests/, firmware built beforehand by `npm test`. Three groups, one after
// the other: files that run in simulated time (or only compute) share the two cores; then the files whose pens or hosts
// run in wall-clock time (spawned `pen` processes, `pen sim`, ptys, kill -9), one at a time, since a stalled process
// there would be a failure of timing, not of the code; then the HIL suite on its bench (`npm run hil` runs it alone).
import { defineConfig } from 'vitest/config';
import { requirementTags } from './src/qa/requirements.ts';

/** Files that depend on wall-clock time: a new file that spawns processes or serves a real-time pen belongs here. */
const wallClockFiles = [
  'tests/sim/cli*.test.ts',
  'tests/sim/host-process.test.ts',
  'tests/sim/one-host.test.ts',
  'tests/sim/gauge.test.ts',
  'tests/sim/serial.test.ts',
  'tests/hil/targets.test.ts',
  'tests/unit/store.test.ts',
];

/** The HIL suite: one file, its tests in the order a real bench needs (tests/hil/hil.test.ts). */
const hilSuite = 'tests/hil/hil.test.ts';

const timeouts = { testTimeout: 30_000, hookTimeout: 30_000 } as const;

export default defineConfig({
  test: {
    // One tag per requirement (hardware/requirements.json). Declared at the root, vitest gives them to every project;
    // strictTags (vitest's default, stated here) makes a test naming any other tag fail, so an id cannot be misspelt.
    tags: requirementTags,
    strictTags: true,
    projects: [
      {
        test: {
          name: 'simulated-time',
          include: ['tests/**/*.test.ts'],
          exclude: [...wallClockFiles, hilSuite],
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
      {
        test: {
          // The bench (a `pen sim` with its rig, gauge and control channel, or PEN_PORT and RIG_PORT) is set up once.
          name: 'hil',
          include: [hilSuite],
          globalSetup: ['tests/hil/global-setup.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 2 },
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
