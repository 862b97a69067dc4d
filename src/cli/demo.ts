// The main job (`npm start`): the virtual pen boots, self-tests, homes, treats at 1.0 mm, survives an injected
// needle jam safely, recovers, finishes, and everything lands in the store.
import { RealClock } from '../../hardware/clock.ts';
import { pen as description } from '../../hardware/description.ts';
import type { PenDevice, Telemetry } from '../../hal/device.ts';
import { PenStore } from '../store/store.ts';
import { TreatmentSession, type SessionSummary } from '../control/session.ts';
import { describeIdentity } from './format.ts';
import { showSessionEvents, type Output } from './run.ts';
import type { Target } from './target.ts';

export interface DemoResult {
  readonly passes: readonly SessionSummary[];
  readonly storePath: string;
}

/** Home, by the step count and by the depth sensor: within the firmware's tolerance between the two. */
const homeToleranceMm = description.depthAxis.mismatchToleranceUm / 1000;

/** The pen's own report of its needle and depth, in one line. */
export function describeNeedle(t: Telemetry): string {
  const needle = t.needleOn ? `needle ON at ${t.strokesPerSecond.toFixed(1)} strokes/s (duty ${Math.round(t.motorDuty * 100)} %)` : 'needle off';
  const state = `${t.state.replace('_', ' ')}${t.fault === 'none' ? '' : ` (${t.fault})`}`;
  return `telemetry: ${needle}, motor ${t.motorCurrentMa} mA, depth ${t.depthMm.toFixed(3)} mm (sensor ${t.sensedDepthMm.toFixed(3)} mm), ${state}`;
}

/**
 * Asks the pen, once any retraction has finished (up to 1 s), whether it is safe: motor off and needle home, by its own
 * telemetry. Returns that report; throws, naming `when`, if the motor is not off or the needle is not home.
 */
export async function confirmPenSafe(device: PenDevice, when: string): Promise<string> {
  let t = await device.status();
  for (let waitedMs = 0; t.moving && waitedMs < 1000; waitedMs += 20) {
    await device.clock.sleep(20);
    t = await device.status();
  }
  const report = describeNeedle(t);
  if (t.needleOn || t.motorDuty > 0) throw new Error(`${when}: the needle motor is NOT off; ${report}`);
  if (Math.abs(t.depthMm) > homeToleranceMm || Math.abs(t.sensedDepthMm) > homeToleranceMm) {
    throw new Error(`${when}: the needle is NOT home; ${report}`);
  }
  return report;
}

export async function runDemo(target: Target, storePath: string, output: Output): Promise<DemoResult> {
  const pen = target.virtualPen;
  if (pen === null) throw new Error('the demo runs on the in-process virtual pen only');
  const { device } = target;
  output.line(describeIdentity(device.identity, target.where));
  const store = PenStore.open(storePath, new RealClock());
  const session = new TreatmentSession(device, { clock: device.clock, store, target: target.where });
  let plannedS = 3;
  showSessionEvents(session, output, () => plannedS, false);
  try {
    const checks = await session.selfTest();
    output.line(`1. self-test passed: ${checks.map((check) => check.name).join(', ')}`);
    await session.home();
    output.line(`2. homed: ${describeNeedle(await device.status())}`);
    await session.prepare(1);
    output.line('3. cartridge 1 cleared; treatment pass at 1.00 mm, 100 strokes/s for 3 s; a needle jam will be injected about 2 s in');

    const firstPass = session.treat({ depthMm: 1.0, strokesPerSecond: 100, durationS: 3 });
    await device.clock.sleep(2000);
    pen.plant.setLoad('jam');
    const first = await firstPass;
    const safe = await confirmPenSafe(device, 'after the jam');  // throws unless the pen says so itself
    output.line(`4. jam: the pen went safe (${first.outcome}: ${first.reason}); ${safe}`);

    pen.plant.setLoad('nominal');
    await session.recover();
    await session.prepare(1);
    output.line('5. jam cleared, fault cleared; finishing with a 2 s pass at 1.00 mm');
    plannedS = 2;
    const second = await session.treat({ depthMm: 1.0, strokesPerSecond: 100, durationS: plannedS });
    output.line(`6. ${second.outcome}: ${second.reason}; ${await confirmPenSafe(device, 'after the second pass')}`);
    const faults = store.faults(5).filter((fault) => fault.sessionId === first.sessionId);
    output.line(`summary: ${(first.needleSeconds + second.needleSeconds).toFixed(2)} s of needle time, ${first.strokes + second.strokes} strokes in 2 sessions; ` +
      `faults recorded: ${faults.map((f) => `${f.source}:${f.code}`).join(', ')}; store ${store.path}`);
    return { passes: [first, second], storePath: store.path };
  } finally {
    session.close();
    store.close();
  }
}
