// Host plausibility checks: a second opinion on the pen's telemetry, run on every supervisory tick.
import { pen } from '../../hardware/description.ts';
import type { Telemetry } from '../../hal/telemetry.ts';

export interface PlausibilityIssue {
  readonly code: 'depth_following' | 'speed_mismatch' | 'temperature_rise' | 'current_high';
  readonly text: string;
}

export const plausibilityLimits = {
  /** Step count and depth sensor may disagree this much (the firmware's own limit is tighter and faster). */
  depthFollowingMm: 0.1,
  /** Needle speed may differ from the command this much once settled. */
  speedTolerancePercent: 5,
  speedSettleMs: 1500,
  /** Handpiece warming faster than this points at a jam or a failing motor before the limit is reached. */
  temperatureRiseCPerSecond: 0.5,
  temperatureWindowMs: 2000,
  /** Sustained current above this (below the firmware's trip) is a dragging needle. */
  currentMa: pen.needleDrive.currentLimitMa * 0.9,
  currentSustainMs: 200,
  /** How long a check must fail before it counts. */
  debounceMs: 200,
} as const;

/** Keeps the history the checks need; feed it every tick with the newest telemetry. */
export class PlausibilityMonitor {
  private readonly temperatures: { atMs: number; c: number }[] = [];
  private needleOnSinceMs: number | null = null;
  private readonly failingSinceMs = new Map<PlausibilityIssue['code'], number>();

  check(telemetry: Telemetry, nowMs: number): PlausibilityIssue | null {
    const limits = plausibilityLimits;
    if (telemetry.needleOn) this.needleOnSinceMs ??= nowMs;
    else this.needleOnSinceMs = null;
    this.temperatures.push({ atMs: nowMs, c: telemetry.temperatureC });
    while ((this.temperatures[0]?.atMs ?? nowMs) < nowMs - limits.temperatureWindowMs) this.temperatures.shift();

    const following = Math.abs(telemetry.depthMm - telemetry.sensedDepthMm);
    const depthIssue = telemetry.homed && following > limits.depthFollowingMm
      ? `needle depth ${telemetry.depthMm.toFixed(3)} mm by steps but ${telemetry.sensedDepthMm.toFixed(3)} mm by the depth sensor` : null;

    const setpoint = telemetry.needleSetpointStrokesPerSecond;
    const settled = this.needleOnSinceMs !== null && nowMs - this.needleOnSinceMs > limits.speedSettleMs;
    const speedError = setpoint > 0 ? (Math.abs(telemetry.strokesPerSecond - setpoint) / setpoint) * 100 : 0;
    const speedIssue = settled && speedError > limits.speedTolerancePercent
      ? `needle at ${telemetry.strokesPerSecond.toFixed(1)} strokes/s, commanded ${setpoint} (${speedError.toFixed(1)} % off)` : null;

    const oldest = this.temperatures[0];
    const spanS = oldest === undefined ? 0 : (nowMs - oldest.atMs) / 1000;
    const riseRate = oldest === undefined || spanS < limits.temperatureWindowMs / 2000 ? 0 : (telemetry.temperatureC - oldest.c) / spanS;
    const temperatureIssue = riseRate > limits.temperatureRiseCPerSecond
      ? `handpiece warming at ${riseRate.toFixed(2)} °C/s (limit ${limits.temperatureRiseCPerSecond} °C/s)` : null;

    const currentIssue = telemetry.motorCurrentMa > limits.currentMa
      ? `needle motor drawing ${telemetry.motorCurrentMa} mA (host limit ${limits.currentMa.toFixed(0)} mA)` : null;

    return (
      this.debounced('depth_following', depthIssue, nowMs, limits.debounceMs) ??
      this.debounced('speed_mismatch', speedIssue, nowMs, limits.debounceMs) ??
      this.debounced('temperature_rise', temperatureIssue, nowMs, 0) ??
      this.debounced('current_high', currentIssue, nowMs, limits.currentSustainMs)
    );
  }

  private debounced(code: PlausibilityIssue['code'], text: string | null, nowMs: number, holdMs: number): PlausibilityIssue | null {
    if (text === null) {
      this.failingSinceMs.delete(code);
      return null;
    }
    const since = this.failingSinceMs.get(code) ?? nowMs;
    this.failingSinceMs.set(code, since);
    return nowMs - since >= holdMs ? { code, text } : null;
  }
}
