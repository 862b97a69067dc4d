// The main job (`npm start`): the virtual pen boots, self-tests, homes, treats at 1.0 mm, survives an injected
// needle jam safely, recovers, finishes, and everything lands in the store.
import { RealClock } from '../../hardware/clock.ts';
import { PenStore } from '../store/store.ts';
import { TreatmentSession, type SessionSummary } from '../control/session.ts';
import { describeIdentity } from './format.ts';
import { showSessionEvents, type Output } from './run.ts';
import type { Target } from './target.ts';

export interface DemoResult {
  readonly passes: readonly SessionSummary[];
  readonly storePath: string;
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
    output.line(`2. homed: needle at ${pen.plant.trueDepthMm.toFixed(3)} mm`);
    await session.prepare(1);
    output.line('3. cartridge 1 cleared; treatment pass at 1.00 mm, 100 strokes/s for 3 s; a needle jam will be injected about 2 s in');

    const firstPass = session.treat({ depthMm: 1.0, strokesPerSecond: 100, durationS: 3 });
    await device.clock.sleep(2000);
    pen.plant.setLoad('jam');
    const first = await firstPass;
    await device.clock.sleep(400);
    output.line(`4. jam: the pen went safe (${first.outcome}: ${first.reason}); motor off, needle at ${pen.plant.trueDepthMm.toFixed(3)} mm`);

    pen.plant.setLoad('nominal');
    await session.recover();
    await session.prepare(1);
    output.line('5. jam cleared, fault cleared; finishing with a 2 s pass at 1.00 mm');
    plannedS = 2;
    const second = await session.treat({ depthMm: 1.0, strokesPerSecond: 100, durationS: plannedS });
    await device.clock.sleep(400);  // the needle retracts after the pass
    output.line(`6. ${second.outcome}: ${second.reason}; needle home at ${pen.plant.trueDepthMm.toFixed(3)} mm`);
    const faults = store.faults(5).filter((fault) => fault.sessionId === first.sessionId);
    output.line(`summary: ${(first.needleSeconds + second.needleSeconds).toFixed(2)} s of needle time, ${first.strokes + second.strokes} strokes in 2 sessions; ` +
      `faults recorded: ${faults.map((f) => `${f.source}:${f.code}`).join(', ')}; store ${store.path}`);
    return { passes: [first, second], storePath: store.path };
  } finally {
    session.close();
    store.close();
  }
}
