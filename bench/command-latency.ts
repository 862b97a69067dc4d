// Command latency: simulated ms from a move_to or start_needle command to the telemetry that confirms it, on the virtual pen.
import { pen as penDescription } from '../hardware/description.ts';
import type { Telemetry } from '../hal/device.ts';
import { percentile, progress, round, type Figure } from './figure.ts';
import { armFitted, closeSession, startSession, type PenSession } from './running-pen.ts';

const moveCount = 30;
const depthsUm = [800, 1200] as const;
const needleCount = 8;
const strokesPerSecond = 100;
const timeoutMs = 3000;
const telemetryPeriodMs = penDescription.timing.telemetryPeriodMs;

/**
 * A command sent right after a telemetry record (as the previous sample ends) always waits a whole period for the
 * next one; spreading the send instants evenly over the period (golden-ratio steps) measures what a user sees.
 */
const phaseOffsetMs = (sample: number): number => (((sample + 1) * 0.6180339887) % 1) * telemetryPeriodMs;

/** Resolves with the simulated ms from startMs to the first telemetry record that satisfies done (read in the listener, so exact). */
function simMsUntil({ pen, device }: PenSession, startMs: () => number, done: (t: Telemetry) => boolean, what: string): Promise<number> {
  let atMs = Number.NaN;
  const matched = (t: Telemetry): boolean => {
    if (!done(t)) return false;
    atMs = pen.simTimeMs;
    return true;
  };
  return device.waitFor(matched, timeoutMs, what).then(() => atMs - startMs());
}

async function moveLatencies(session: PenSession): Promise<{ replyMs: number[]; confirmMs: number[]; reachedMs: number[] }> {
  const { pen, device } = session;
  const replyMs: number[] = [];
  const confirmMs: number[] = [];
  const reachedMs: number[] = [];
  await device.depth.moveTo(depthsUm[1] / 1000);  // so the first measured move changes the target
  for (let i = 0; i < moveCount; i++) {
    const depthUm = depthsUm[i % 2] ?? depthsUm[0];
    const targetIs = (t: Telemetry): boolean => Math.round(t.targetDepthMm * 1000) === depthUm;
    await pen.clock.sleep(phaseOffsetMs(i));
    let startMs = Number.NaN;
    const confirmed = simMsUntil(session, () => startMs, targetIs, `confirm move to ${depthUm} µm`);
    const reached = simMsUntil(session, () => startMs, (t) => targetIs(t) && !t.moving && Math.round(t.depthMm * 1000) === depthUm,
      `reach ${depthUm} µm`);
    // The MCU is paused while host code runs, so this is the simulated instant the command's bytes go out.
    startMs = pen.simTimeMs;
    await device.command('move_to', { depthUm });
    replyMs.push(pen.simTimeMs - startMs);
    confirmMs.push(await confirmed);
    reachedMs.push(await reached);
  }
  return { replyMs, confirmMs, reachedMs };
}

async function needleLatencies(session: PenSession): Promise<number[]> {
  const { pen, device } = session;
  await armFitted(device);
  // A session's first start waits while the pen burns the parts' marks: done before measuring the command path.
  await device.needle.start(strokesPerSecond);
  await device.needle.stop();
  const confirmMs: number[] = [];
  for (let i = 0; i < needleCount; i++) {
    let startMs = Number.NaN;
    await pen.clock.sleep(phaseOffsetMs(i));
    const confirmed = simMsUntil(session, () => startMs, (t) => t.needleSetpointStrokesPerSecond === strokesPerSecond, 'confirm needle start');
    startMs = pen.simTimeMs;
    await device.needle.start(strokesPerSecond);
    confirmMs.push(await confirmed);
    await pen.clock.sleep(200);  // run briefly, then stop and wait until telemetry shows it stopped
    await device.needle.stop();
    await device.waitFor((t) => t.needleSetpointStrokesPerSecond !== strokesPerSecond, timeoutMs, 'confirm needle stop');
  }
  return confirmMs;
}

function p50p99(prefix: string, samples: readonly number[], note: string): Figure[] {
  const full = `${note}; simulated time, n=${samples.length}`;
  return [
    { name: `${prefix}_p50_ms`, value: round(percentile(samples, 50)), unit: 'ms', note: full },
    { name: `${prefix}_p99_ms`, value: round(percentile(samples, 99)), unit: 'ms', note: full },
  ];
}

export async function measure(): Promise<Figure[]> {
  const session = await startSession({ seed: 7 });
  try {
    const moves = await moveLatencies(session);
    progress(`move_to: reply p50 ${round(percentile(moves.replyMs, 50))} ms, confirmed p50 ${round(percentile(moves.confirmMs, 50))} ms, ` +
      `reached p50 ${round(percentile(moves.reachedMs, 50))} ms`);
    const needle = await needleLatencies(session);
    progress(`start_needle: confirmed p50 ${round(percentile(needle, 50))} ms`);
    const moveNote = `move_to alternating 0.8/1.2 mm, sent at instants spread over the ${telemetryPeriodMs} ms telemetry period`;
    return [
      ...p50p99('cmd_move_to_reply', moves.replyMs, `${moveNote}, to the pen's reply`),
      ...p50p99('cmd_move_to_confirm', moves.confirmMs, `${moveNote}, to the first telemetry showing the new target`),
      ...p50p99('cmd_move_to_reached', moves.reachedMs, `${moveNote}, to the first telemetry showing it there and still`),
      ...p50p99('cmd_needle_start_confirm', needle, `start_needle ${strokesPerSecond} strokes/s when armed, sent at spread instants, to the first telemetry showing the setpoint`),
    ];
  } finally {
    await closeSession(session);
  }
}
