// Runs `vitest run` in its own process for scripts/test.ts and scripts/hil.ts: output inherited, Ctrl-C and SIGTERM
// passed on (vitest closes its workers and its global setup's bench), killed if it has not ended 10 s later.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module'; // finding vitest's entry point
import { dirname, join } from 'node:path';

/** After a forwarded signal, how long vitest gets to close its workers before it is killed. */
const gracePeriodMs = 10_000;

const vitestEntry = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');

export interface VitestOutcome {
  /** vitest's exit code; null when it ended on a signal. */
  readonly code: number | null;
  /** Ctrl-C or SIGTERM ended the run. */
  readonly interrupted: boolean;
}

export function runVitest(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<VitestOutcome> {
  const vitest = spawn(process.execPath, [vitestEntry, 'run', ...args], { stdio: 'inherit', env });
  let interrupted = false;
  let killTimer: NodeJS.Timeout | undefined;
  const forward = (signal: NodeJS.Signals): void => {
    interrupted = true;
    if (vitest.exitCode !== null || vitest.signalCode !== null) return;
    vitest.kill(signal);
    killTimer ??= setTimeout(() => vitest.kill('SIGKILL'), gracePeriodMs);
  };
  const onInt = (): void => forward('SIGINT');
  const onTerm = (): void => forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return new Promise((resolve, reject) => {
    vitest.on('error', (error) => reject(new Error(`could not start vitest (${vitestEntry}): ${error.message}`)));
    vitest.on('exit', (code, signal) => {
      clearTimeout(killTimer);
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve({ code, interrupted: interrupted || signal === 'SIGINT' || signal === 'SIGTERM' });
    });
  });
}
