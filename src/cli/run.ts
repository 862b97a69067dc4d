// `pen run`: a treatment from the command line, with a live status line and a clean Ctrl-C (the pen goes safe first).
import { RealClock } from '../../hardware/clock.ts';
import { PenStore } from '../store/store.ts';
import { TreatmentSession, type PreparedParts, type SessionSummary, type TreatmentPlan } from '../control/session.ts';
import { describeSpacing, SpacingRefusedError, spacingFromStore, spacingRefusal, type SpacingVerdict } from '../control/spacing.ts';
import { ExitCode, statusLine } from './format.ts';
import { describeCause, onInterrupt, type InterruptCause } from './interrupt.ts';
import { describePartStatus } from './parts.ts';
import type { Target } from './target.ts';

export interface RunOptions {
  readonly plan: TreatmentPlan;
  /** The cartridge (ROM id) that must be the one fitted; null: whichever is fitted. */
  readonly cartridgeId: string | null;
  readonly footswitchControl: boolean;
  readonly loopRateHz: number;
  readonly storePath: string;
  readonly json: boolean;
  /** The client's pseudonymous reference (null: none given, spacing unchecked) and a clinician's override of the spacing. */
  readonly clientRef: string | null;
  readonly spacingOverride: string | null;
}

/** The client's session spacing as `pen run` reports it (JSON: client). */
export interface ClientSpacing extends SpacingVerdict {
  /** The override given, when the spacing needed one (it is then in the audit log with the session). */
  readonly overriddenBecause: string | null;
}

/**
 * The spacing check before anything connects, so that a refused session never touches the pen: a client treated less
 * than the spacing ago is refused (exit 5) unless overridden. The session checks again as it starts, in the transaction
 * that records it. Null when no client is given.
 */
export function checkSpacingBeforeConnecting(storePath: string, clientRef: string | null, override: string | null): SpacingVerdict | null {
  if (clientRef === null) return null;
  const store = PenStore.open(storePath, new RealClock());
  try {
    const verdict = spacingFromStore(store, clientRef);
    if (!verdict.allowed && override === null) throw new SpacingRefusedError(spacingRefusal(verdict, store.epochMs()));
    return verdict;
  } finally {
    store.close();
  }
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

/**
 * Waits (up to 1 s) until the pen reports its depth axis still. The session's loop sends the heartbeats until it is
 * closed; a pen still retracting its needle when they end latches heartbeat_lost, so every way out waits for this.
 */
async function settle(device: Target['device']): Promise<void> {
  for (let waitedMs = 0; (await device.status()).moving && waitedMs < 1000; waitedMs += 20) await device.clock.sleep(20);
}

/** STOP (motor off, disarm, needle home), then settle. */
async function stopAndSettle(device: Target['device']): Promise<void> {
  await device.stop();
  await settle(device);
}

/** The fitted parts as the registry sees them: a status line each (id, kind, condition, cycles, sterile until). */
export function describePreparedParts(parts: PreparedParts): string {
  return ['fitted parts:', describePartStatus(parts.cartridge.status), describePartStatus(parts.nosecone.status)].join('\n');
}

/** Live status line on every tick, faults as they happen, and (optionally) each change of phase. */
export function showSessionEvents(session: TreatmentSession, output: Output, plannedSeconds: () => number | null, phases: boolean): void {
  session.onEvent((event) => {
    if (event.kind === 'tick') output.live(statusLine(session.phase, event.telemetry, event.needleSeconds, plannedSeconds()));
    if (event.kind === 'fault') output.line(`FAULT (${event.source}) ${event.code}: ${event.text}`);
    if (event.kind === 'phase' && phases) output.line(`session: ${event.phase}`);
  });
}

/**
 * Self-test, home, prepare, treat; returns the exit code. Ctrl-C, SIGTERM, SIGHUP and a closed stdout all end it the
 * same way: the pen is stopped (motor off, needle home) and the session recorded as stopped before the process ends.
 */
export async function runTreatment(
  target: Target, options: RunOptions, output: Output,
): Promise<{ code: number; summary: SessionSummary | null; client: ClientSpacing | null }> {
  const { device } = target;
  const store = PenStore.open(options.storePath, new RealClock());
  const { clientRef, spacingOverride } = options;
  let client: ClientSpacing | null = null;
  const session = new TreatmentSession(device, {
    clock: device.clock, store, target: target.where, loopRateHz: options.loopRateHz, footswitchControl: options.footswitchControl,
  });
  let interruptedBy: InterruptCause | null = null;  // set from the interrupt listener
  let stoppedBy: string | null = null;  // set when another process (`pen stop`) relays STOP through our status socket
  const interrupted = (): boolean => interruptedBy !== null || stoppedBy !== null;
  // STOP from another process: sent on our link at once, then the treatment ends as stopped, like Ctrl-C (exit 130).
  target.owner?.onStop(async (from) => {
    stoppedBy = from;
    output.line(`STOP from ${from}: stopping the pen (motor off, needle home) ...`);
    await device.stop();
    void session.stop(`STOP from ${from}`).catch(() => {});
    return device.telemetry;
  });
  const stopListening = onInterrupt((cause) => {
    interruptedBy = cause;
    output.line(`${describeCause(cause)}: stopping the pen (motor off, needle home) ...`);
    void session.stop(cause === 'SIGINT' ? 'operator pressed Ctrl-C' : `interrupted: ${cause}`).catch(() => {});
  });
  showSessionEvents(session, output, () => options.plan.durationS, true);
  try {
    session.checkPlan(options.plan);  // refuse a bad plan before the pen moves at all
    const checks = await session.selfTest();
    output.line(`self-test passed: ${checks.map((check) => `${check.name} ${check.detail}`).join('; ')}`);
    if (clientRef !== null) {
      const verdict = spacingFromStore(store, clientRef);
      client = { ...verdict, overriddenBecause: verdict.allowed ? null : spacingOverride };
      output.line(describeSpacing(verdict, store.epochMs(), spacingOverride));
    }
    if (interrupted()) {
      await stopAndSettle(device);
      return { code: ExitCode.interrupted, summary: null, client };
    }
    output.line('homing the depth axis ...');
    await session.home();
    const parts = await session.prepare(options.cartridgeId);
    output.line(describePreparedParts(parts));
    if (parts.calibration.state !== 'ok') output.line(`WARNING: ${parts.calibration.text}`);
    output.line(`cartridge ${parts.cartridge.status.id} cleared; treating at ${options.plan.depthMm.toFixed(2)} mm, ` +
      `${options.plan.strokesPerSecond} strokes/s${options.plan.durationS === null ? '' : ` for ${options.plan.durationS} s`}`);
    if (interrupted()) {
      await stopAndSettle(device);
      return { code: ExitCode.interrupted, summary: null, client };
    }
    const summary = await session.treat(options.plan, { clientRef, spacingOverride });
    await settle(device).catch(() => {});  // the session stopped the pen: let the needle reach home before heartbeats end
    output.line(`ended: ${summary.outcome} (${summary.reason}); ${summary.needleSeconds.toFixed(1)} s of needle time, ` +
      `${summary.strokes} strokes; session ${summary.sessionId} recorded in ${store.path}`);
    const code = interrupted() ? ExitCode.interrupted : summary.outcome === 'faulted' ? ExitCode.treatmentFaulted : ExitCode.ok;
    return { code, summary, client };
  } catch (error) {
    // Whatever went wrong, the pen is told to stop, and its needle is home, before we report it.
    await stopAndSettle(device).catch(() => {});
    if (interrupted()) {
      // What failed was cut short by the interruption (homing stopped, say): the pen is stopped, as asked.
      output.line(`interrupted: ${error instanceof Error ? error.message : String(error)}`);
      return { code: ExitCode.interrupted, summary: null, client };
    }
    throw error;
  } finally {
    stopListening();
    session.close();
    store.close();
  }
}
