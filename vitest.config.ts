// Test runner configuration: every suite under tests/, firmware built beforehand by `npm test`.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // One file at a time: the real-time tests (a pen in its own process, a stalled host) need a core to
    // themselves on a 2-core machine, and running the simulator-bound files in parallel gains nothing.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
