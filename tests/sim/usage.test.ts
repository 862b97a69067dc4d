// The needle-time counter on virtual time through the real firmware: get_usage reports the time the needle ran, a reset
// keeps it (less at most usageWritePeriodS while running), and the session's prepare() weighs it and the store's last
// calibration against the calibration-due policy: a warning when due, a refusal (audited) past the grace period.
import { afterEach, describe, expect, it } from 'vitest';
import type { Clock, Timer } from '../../hardware/clock.ts';
import { pen as penDescription } from '../../hardware/description.ts';
import type { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { PenDevice } from '../../hal/device.ts';
import { calibrationPolicy } from '../../src/calibration/due.ts';
import { SessionRefusedError, TreatmentSession } from '../../src/control/session.ts';
import { PenStore } from '../../src/store/store.ts';
import { penRecordIdentity } from '../../src/store/actor.ts';
import { provisionedVirtualPen } from './provisioned.ts';
import { recordSterileNosecone } from './registered-parts.ts';
import { runningVirtualPen } from './virtual-session.ts';

const dayMs = 86_400_000;
const writePeriodS = penDescription.timing.usageWritePeriodS;
const values = { stepsPerMm: 1600, zeroOffsetMm: 0, sensorZeroMv: 500, sensorMvPerMm: 1600 };

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('the needle-time counter', () => {
  async function running(): Promise<{ pen: VirtualPen; device: () => PenDevice; reset: () => Promise<void> }> {
    const { pen, device } = await runningVirtualPen();
    let current = device;
    cleanups.push(async () => {
      await current.close();
      await pen.stop();
    });
    const reset = async (): Promise<void> => {
      pen.resetMcu('external');
      await current.close();
      current = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
    };
    return { pen, device: () => current, reset };
  }

  it('counts the seconds the needle runs, and keeps them across a reset after the stop', { tags: ['REQ-CALIBRATION-DUE'], timeout: 120_000 }, async () => {
    const { pen, device, reset } = await running();
    const startedMs = pen.clock.nowMs() - 800;  // runningVirtualPen waits 0.8 s after the start
    await pen.clock.sleep(10_000);
    await device().needle.stop();
    const ranS = (pen.clock.nowMs() - startedMs) / 1000;
    await pen.clock.sleep(2000);  // stopped: no more counted
    const stopped = (await device().usage()).needleSeconds;
    expect(Math.abs(stopped - ranS)).toBeLessThanOrEqual(1);
    await reset();
    expect((await device().usage()).needleSeconds).toBe(stopped);
  });

  it('a reset with the needle running loses only the time since the last write, less than usageWritePeriodS', { tags: ['REQ-CALIBRATION-DUE'], timeout: 120_000 }, async () => {
    const { pen, device, reset } = await running();
    await pen.clock.sleep(5000);
    await device().needle.stop();  // the stop writes the count
    await pen.clock.sleep(500);
    const saved = (await device().usage()).needleSeconds;
    await device().needle.start(100);  // the same session: no marks to burn
    await pen.clock.sleep(4000);
    const before = (await device().usage()).needleSeconds;
    expect(before - saved).toBeGreaterThanOrEqual(3);
    await reset();
    // Under usageWritePeriodS since the stop's write, none since: the reset loses exactly those seconds, nothing more.
    expect(writePeriodS).toBeGreaterThan(before - saved);
    expect((await device().usage()).needleSeconds).toBe(saved);
  });
});

/** The store's clock: the pen's virtual time, at a date the test sets (the calendar moves, the pen's time does not). */
class CalendarClock implements Clock {
  private offsetMs = 0;
  constructor(private readonly base: Clock) {}
  nowMs(): number { return this.base.nowMs(); }
  after(delayMs: number, fn: () => void): Timer { return this.base.after(delayMs, fn); }
  sleep(delayMs: number): Promise<void> { return this.base.sleep(delayMs); }
  epochMs(): number { return this.base.epochMs() + this.offsetMs; }
  setEpochMs(epochMs: number): void { this.offsetMs = epochMs - this.base.epochMs(); }
}

describe('calibration due, at prepare()', () => {
  async function homedSession(): Promise<{ session: TreatmentSession; store: PenStore; calendar: CalendarClock; device: PenDevice; virtualPen: VirtualPen }> {
    const virtualPen = provisionedVirtualPen({ seed: 3 });
    virtualPen.start();
    const device = await PenDevice.connect(virtualPen.openPort(), { clock: virtualPen.clock, heartbeat: false });
    const calendar = new CalendarClock(virtualPen.clock);
    const store = PenStore.open(':memory:', calendar);
    const session = new TreatmentSession(device, { clock: virtualPen.clock, store, target: 'virtual pen' });
    cleanups.push(async () => {
      session.close();
      await device.close();
      await virtualPen.stop();
      store.close();
    });
    await session.selfTest();
    await session.home();
    return { session, store, calendar, device, virtualPen };
  }

  function recordCalibration(store: PenStore, calendar: CalendarClock, device: PenDevice, atMs: number): void {
    calendar.setEpochMs(atMs);
    store.calibrations.add({
      kind: 'depth', pen: penRecordIdentity(device.identity), technician: 'test', gaugeId: 'G-1', gaugeDue: '2027-06-01',
      verdict: 'accepted', reason: null, readings: [], fit: null, verification: null, oldValues: values, newValues: values, needleSeconds: 0,
    });
  }

  const nowMs = Date.UTC(2026, 10, 26, 12);

  it('warns when due (inside the grace period) and prepares the session', { tags: ['REQ-CALIBRATION-DUE'], timeout: 120_000 }, async () => {
    const { session, store, calendar, device } = await homedSession();
    calendar.setEpochMs(nowMs);  // the nosecone sterile today
    await recordSterileNosecone(device, store);
    recordCalibration(store, calendar, device, nowMs - (calibrationPolicy.intervalDays + 1) * dayMs);
    calendar.setEpochMs(nowMs);
    const prepared = await session.prepare();
    expect(prepared.calibration.state).toBe('due');
    expect(prepared.calibration.text).toMatch(/^calibration due .*treatments are refused from \d{4}-\d{2}-\d{2}/);
    expect(session.phase).toBe('ready');
  });

  it('refuses past the grace period, saying why and what to do, audited, with the pen untouched', { tags: ['REQ-CALIBRATION-DUE'], timeout: 120_000 }, async () => {
    const { session, store, calendar, device, virtualPen } = await homedSession();
    calendar.setEpochMs(nowMs);
    await recordSterileNosecone(device, store);
    recordCalibration(store, calendar, device, nowMs - (calibrationPolicy.intervalDays + calibrationPolicy.graceDays + 1) * dayMs);
    calendar.setEpochMs(nowMs);
    const refusal = await session.prepare().then(() => null, (error: unknown) => error);
    expect(refusal).toBeInstanceOf(SessionRefusedError);
    expect((refusal as Error).message).toMatch(/^calibration overdue .*grace ended .*treatments are refused until the pen is calibrated: pen calibrate --port/);
    const audit = store.auditLog(1)[0];  // newest first
    expect(audit).toMatchObject({ command: 'prepare', arguments: { calibration: 'overdue' } });
    expect(audit?.result).toMatch(/^refused: calibration overdue/);
    expect((await device.status()).cartridgeCleared).toBe(false);
    expect(virtualPen.plant.motorDrive()).toBe(0);
  });

  it('a pen with no calibration on record is due, with a warning, not refused', { tags: ['REQ-CALIBRATION-DUE'], timeout: 120_000 }, async () => {
    const { session, store, device } = await homedSession();
    await recordSterileNosecone(device, store);
    const prepared = await session.prepare();
    expect(prepared.calibration).toMatchObject({ state: 'due', dueAt: null, needleHoursSince: null });
  });
});
