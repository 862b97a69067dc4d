// The host's plausibility checks (src/safety/plausibility.ts) through the treatment session against the virtual pen:
// each is given the condition only it catches, and the session must stop the pen with that check's reason.
// (speed_mismatch is in session.test.ts: "a host plausibility check stops the pen before the firmware would".)
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { pen as description, stepsPerMm } from '../../hardware/description.ts';
import { PenDevice, type Telemetry } from '../../hal/device.ts';
import { PenStore } from '../../src/store/store.ts';
import { TreatmentSession, type SessionSummary } from '../../src/control/session.ts';
import { plausibilityLimits, type PlausibilityIssue } from '../../src/safety/plausibility.ts';
import { recordSterileNosecone } from './registered-parts.ts';

let pen: VirtualPen;
let device: PenDevice;
let store: PenStore;
let session: TreatmentSession;

afterEach(async () => {
  session.close();
  await device.close();
  await pen.stop();
  store.close();
});

/** Self-tested, homed and prepared; the session's loop sends the heartbeats. */
async function readySession(): Promise<void> {
  pen = new VirtualPen({ seed: 3 });
  pen.start();
  device = await PenDevice.connect(pen.openPort(), { clock: pen.clock, heartbeat: false });
  store = PenStore.open(':memory:', pen.clock);
  session = new TreatmentSession(device, { clock: pen.clock, store, target: 'virtual pen' });
  await session.selfTest();
  await session.home();
  await recordSterileNosecone(device, store);
  await session.prepare();
}

/** Runs `change` every 10 ms of virtual time until the treatment ends. */
function whileTreating(done: Promise<unknown>, change: (elapsedMs: number) => void): void {
  const treatment = { over: false };
  void done.then(() => { treatment.over = true; });
  const startMs = pen.clock.nowMs();
  void (async () => {
    while (!treatment.over) {
      change(pen.clock.nowMs() - startMs);
      await pen.clock.sleep(10);
    }
  })();
}

/**
 * The session stopped the treatment for the host check `code` alone: recorded with its reason, the pen stopped
 * (motor off, needle home, disarmed) and the pen itself reporting no fault: its own checks did not see it.
 */
async function expectStoppedBy(summary: SessionSummary, code: PlausibilityIssue['code'], reason: RegExp): Promise<void> {
  expect(summary).toMatchObject({ outcome: 'faulted', faults: [`host:${code}`] });
  expect(summary.reason).toMatch(reason);
  expect(summary.reason.startsWith(`host check ${code}: `)).toBe(true);
  expect(store.faults()[0]).toMatchObject({ source: 'host', code, sessionId: summary.sessionId });
  expect(store.auditLog()[0]).toMatchObject({ command: 'stop', result: 'ok' });
  expect(store.auditLog()[0]?.arguments['reason']).toBe(summary.reason);
  expect(pen.plant.motorDrive()).toBe(0);
  for (let ms = 0; ms < 1000 && Math.round(pen.plant.carriageMm * stepsPerMm) > 1; ms += 10) await pen.clock.sleep(10);
  expect(Math.round(pen.plant.carriageMm * stepsPerMm)).toBeLessThanOrEqual(1);
  expect(await device.status()).toMatchObject({ state: 'idle', fault: 'none', needleOn: false });
  expect(session.phase).toBe('faulted');
}

describe('host plausibility checks stop the treatment', () => {
  it('current_high: a dragging needle drawing 1.85 A, under the firmware trip at 2 A, stops the pen', { tags: ['REQ-HOST-SUPERVISION'] }, async () => {
    await readySession();
    const done = session.treat({ depthMm: 1.0, strokesPerSecond: 100, durationS: 10 });
    await pen.clock.sleep(1500);
    // The load climbs over 1.2 s to what takes 1.85 A at 100 strokes/s: slow enough that the speed holds within 5 %
    // and the handpiece warms at well under 0.5 °C/s before the current check acts.
    const dragging = 0.101;
    whileTreating(done, (ms) => pen.plant.setLoad(0.015 + (dragging - 0.015) * Math.min(1, ms / 1200)));
    const currents: number[] = [];
    device.onTelemetry((t) => currents.push(t.motorCurrentMa));
    const summary = await done;
    await expectStoppedBy(summary, 'current_high', /needle motor drawing 1[89]\d\d mA \(host limit 1800 mA\)/);
    expect(Math.max(...currents)).toBeGreaterThan(plausibilityLimits.currentMa);
    expect(Math.max(...currents)).toBeLessThan(description.needleDrive.currentLimitMa);
    expect(summary.needleSeconds).toBeLessThan(4);
  });

  it('temperature_rise: the handpiece warming at 2 °C/s, far below the 45 °C limit, stops the pen', { tags: ['REQ-HOST-SUPERVISION'] }, async () => {
    await readySession();
    const done = session.treat({ depthMm: 1.0, strokesPerSecond: 100, durationS: 10 });
    await pen.clock.sleep(1500);
    const fromC = pen.plant.temperatureC;
    whileTreating(done, (ms) => { pen.plant.forcedTemperatureC = fromC + (2 * ms) / 1000; });
    const summary = await done;
    await expectStoppedBy(summary, 'temperature_rise', /handpiece warming at \d\.\d\d °C\/s \(limit 0\.5 °C\/s\)/);
    const reached = pen.plant.temperatureC;
    expect(reached).toBeLessThan(fromC + 2 * (plausibilityLimits.temperatureWindowMs / 1000) + 0.5);
    expect(reached * 10).toBeLessThan(description.limits.temperatureLimitDeciC);
  });

  // No plant fault reaches it: the firmware's own depth check (60 um for 10 ms) trips long before 0.1 mm for
  // 200 ms. So the session is fed the telemetry of a pen whose own check missed it: the depth sensor reading
  // 0.15 mm deeper than the step count, while the real pen and its telemetry stay consistent.
  it('depth_following: step count and depth sensor 0.15 mm apart in the telemetry stops the pen', { tags: ['REQ-HOST-SUPERVISION'] }, async () => {
    await readySession();
    const done = session.treat({ depthMm: 1.0, strokesPerSecond: 100, durationS: 10 });
    await pen.clock.sleep(1000);
    Object.defineProperty(device, 'telemetry', {
      configurable: true,
      get: (): Telemetry | null => {
        const t = Reflect.get(PenDevice.prototype, 'telemetry', device);  // the pen's own record
        return t === null ? null : { ...t, sensedDepthMm: t.sensedDepthMm + 0.15 };
      },
    });
    const skewedAtMs = pen.clock.nowMs();
    let caughtAtMs = NaN;
    session.onEvent((event) => { if (event.kind === 'fault') caughtAtMs = pen.clock.nowMs(); });
    const summary = await done;
    await expectStoppedBy(summary, 'depth_following', /needle depth 1\.000 mm by steps but 1\.1\d\d mm by the depth sensor/);
    // Debounced: caught once the disagreement has lasted 200 ms, within a telemetry period after that.
    expect(caughtAtMs - skewedAtMs).toBeGreaterThanOrEqual(plausibilityLimits.debounceMs);
    expect(caughtAtMs - skewedAtMs).toBeLessThan(plausibilityLimits.debounceMs + description.timing.telemetryPeriodMs + 20);
  });
});
