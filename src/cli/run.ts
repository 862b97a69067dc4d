// `pen run`: a treatment from the command line, with a live status line and a clean Ctrl-C (the pen goes safe first).
import { RealClock } from '../../hardware/clock.ts';
import { PenStore } from '../store/store.ts';
import { TreatmentSession, type SessionSummary, type TreatmentPlan } from '../control/session.ts';
import { ExitCode, statusLine } from './format.ts';
import type { Target } from './target.ts';

export interface RunOptions {
  readonly plan: TreatmentPlan;
  readonly cartridgeId: number;
  readonly footswitchControl: boolean;
  readonly loopRateHz: number;
  readonly storePath: string;
  readonly json: boolean;
}

export interface Output {
  /** A line that replaces itself on a terminal (and is printed once a second elsewhere). */
  live(line: string): void;
  /** A line that stays. */
  line(text: string): void;
}

export function consoleOutput(json: boolean): Output {
  const tty = process.stdout.isTTY;
  const clock = new RealClock();
  let lastPrintedMs = -Infinity;
  let liveShown = false;
  return {
    live(text) {
      if (json) return;
      if (tty) {
        process.stdout.write(`\r\x1b[2K${text}`);
        liveShown = true;
      } else if (clock.nowMs() - lastPrintedMs >= 1000) {
        lastPrintedMs = clock.nowMs();
        console.log(text);
      }
    },
    line(text) {
      if (json) return;
      if (liveShown) process.stdout.write('\r\x1b[2K');
      liveShown = false;
      console.log(text);
    },
  };
}

/** Live status line on every tick, faults as they happen, and (optionally) each change of phase. */
export function showSessionEvents(session: TreatmentSession, output: Output, plannedSeconds: () => number | null, phases: boolean): void {
  session.onEvent((event) => {
    if (event.kind === 'tick') output.live(statusLine(session.phase, event.telemetry, event.needleSeconds, plannedSeconds()));
    if (event.kind === 'fault') output.line(`FAULT (${event.source}) ${event.code}: ${event.text}`);
    if (event.kind === 'phase' && phases) output.line(`session: ${event.phase}`);
  });
}

/** Self-test, home, prepare, treat; returns the exit code. Ctrl-C stops the pen before the process ends. */
export async function runTreatment(target: Target, options: RunOptions, output: Output): Promise<{ code: number; summary: SessionSummary | null }> {
  const { device } = target;
  const store = PenStore.open(options.storePath, new RealClock());
  const session = new TreatmentSession(device, {
    clock: device.clock, store, target: target.where, loopRateHz: options.loopRateHz, footswitchControl: options.footswitchControl,
  });
  let interruptedByOperator = false;  // set from the SIGINT handler
  const interrupted = (): boolean => interruptedByOperator;
  const onInterrupt = (): void => {
    interruptedByOperator = true;
    output.line('Ctrl-C: stopping the pen (motor off, needle home) ...');
    void session.stop('operator pressed Ctrl-C');
  };
  process.on('SIGINT', onInterrupt);
  showSessionEvents(session, output, () => options.plan.durationS, true);
  try {
    session.checkPlan(options.plan);  // refuse a bad plan before the pen moves at all
    const checks = await session.selfTest();
    output.line(`self-test passed: ${checks.map((check) => `${check.name} ${check.detail}`).join('; ')}`);
    if (interrupted()) {
      await device.stop();
      return { code: ExitCode.interrupted, summary: null };
    }
    output.line('homing the depth axis ...');
    await session.home();
    await session.prepare(options.cartridgeId);
    output.line(`cartridge ${options.cartridgeId} cleared; treating at ${options.plan.depthMm.toFixed(2)} mm, ` +
      `${options.plan.strokesPerSecond} strokes/s${options.plan.durationS === null ? '' : ` for ${options.plan.durationS} s`}`);
    if (interrupted()) {
      await device.stop();
      return { code: ExitCode.interrupted, summary: null };
    }
    const summary = await session.treat(options.plan);
    output.line(`ended: ${summary.outcome} (${summary.reason}); ${summary.needleSeconds.toFixed(1)} s of needle time, ` +
      `${summary.strokes} strokes; session ${summary.sessionId} recorded in ${store.path}`);
    const code = interrupted() ? ExitCode.interrupted : summary.outcome === 'faulted' ? ExitCode.treatmentFaulted : ExitCode.ok;
    return { code, summary };
  } catch (error) {
    // Whatever went wrong, the pen is told to stop before we report it.
    await device.stop().catch(() => {});
    throw error;
  } finally {
    process.off('SIGINT', onInterrupt);
    session.close();
    store.close();
  }
}
