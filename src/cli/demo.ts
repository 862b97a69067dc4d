// The main job (`npm start`): the virtual pen boots, self-tests, homes, checks its parts (sterilizing the nosecone
// first when it needs it), treats at 1.0 mm, survives an injected needle jam safely, recovers; the technician fits a
// new cartridge and reprocesses the nosecone; a second session finishes, and everything lands in the store.
import { RealClock } from '../../hardware/clock.ts';
import { pen as description } from '../../hardware/description.ts';
import { IdChip, romId } from '../../hardware/sim/id-chip.ts';
import type { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { testKeys } from '../../hal/auth.ts';
import type { PenDevice, Telemetry } from '../../hal/device.ts';
import { dayNumber, romHex } from '../../hal/parts.ts';
import { PenStore } from '../store/store.ts';
import { penRecordIdentity, serviceRole } from '../store/actor.ts';
import type { RecordActor } from '../store/parts.ts';
import { TreatmentSession, type SessionSummary } from '../control/session.ts';
import { cartridgeReport, crossCheckChip, noseconeReport, partStatus, SterilizationRegistry, type ChipReport } from '../sterilization/registry.ts';
import { describeIdentity } from './format.ts';
import { describePartStatus } from './parts.ts';
import { describePreparedParts, showSessionEvents, type Output } from './run.ts';
import { describeSterilized, sterilizeFitted } from './sterilize.ts';
import type { Target } from './target.ts';

export interface DemoResult {
  readonly passes: readonly SessionSummary[];
  readonly storePath: string;
}

/** The demo pen's serial: SIM- pens take the published test keys, which the reprocessing role's challenge-response uses. */
const demoSerial = 'SIM-DEMO';
/** Who the demo's sterilization cycles are recorded by, and where. */
const demoOperator = 'demo';
const demoSterilizer = 'DEMO-AC1';
const demoCycle = '134C-3min-prevac';
/** Where the serials of the parts the demo fits start: the virtual pen's own parts are numbered elsewhere. */
const demoPartSerials = 0xde30_0000_0000n;
const demoNoseconeLot = 0x000de30;

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

/** The demo's records are by its operator, on its pen. */
const demoActor = (device: PenDevice): RecordActor => ({ pen: penRecordIdentity(device.identity), operator: demoOperator });

/** The first serial from demoPartSerials whose ROM id neither the store nor the pen's fitted parts have: a part new to both. */
function unrecordedSerial(pen: VirtualPen, store: PenStore): bigint {
  const fitted = [pen.idChips.cartridge.chip, pen.idChips.nosecone.chip].map((chip) => (chip === null ? '' : romHex(chip.rom)));
  for (let serial = demoPartSerials; ; serial++) {
    const id = romHex(romId(serial));
    if (store.parts.history(id) === null && !fitted.includes(id)) return serial;
  }
}

/**
 * Whether the store's records take this chip as it reads, without touching them (checkFitted would flag a chip that
 * contradicts them): the virtual pen's chips start fresh every run, with the same ids, while the store remembers their use.
 */
function recordsAgree(store: PenStore, report: ChipReport): boolean {
  const history = store.parts.history(report.id);
  return history === null || crossCheckChip(report, history).accepted;
}

/**
 * The technician swaps in a cartridge new to the store, and clears the cartridge_removed fault the pen latches as the
 * old one comes out (homing again if the pen then needs it); returns the new one's ROM id.
 */
async function fitNewCartridge(pen: VirtualPen, session: TreatmentSession, device: PenDevice, store: PenStore): Promise<string> {
  const chip = await pen.fitNewCartridge({ serial: unrecordedSerial(pen, store) });
  await device.settledParts();
  if ((await device.status()).state === 'fault') await session.recover();
  if (!(await device.status()).homed) await session.home();
  return romHex(chip.rom);
}

/** The technician fits a nosecone new to the store, fresh from its maker (never reprocessed); returns its ROM id. */
async function fitNewNosecone(pen: VirtualPen, device: PenDevice, store: PenStore): Promise<string> {
  const chip = IdChip.part({ kind: 'nosecone', lot: demoNoseconeLot, date: dayNumber(store.epochMs()), sterilizations: 0, uses: 0 }, unrecordedSerial(pen, store));
  pen.idChips.nosecone.fit(chip);
  await device.parts(['nosecone']);  // a nosecone has no switch: the pen reads it when asked
  await device.settledParts();
  return romHex(chip.rom);
}

/**
 * Parts the store can use at the start: a cartridge or nosecone it remembers as used, or whose fresh chip contradicts
 * its records (an earlier run's), is swapped for a new one; then a nosecone that is not ready is sterilized first.
 */
async function readyParts(pen: VirtualPen, session: TreatmentSession, device: PenDevice, store: PenStore, output: Output): Promise<void> {
  const { cartridge, nosecone } = await device.settledParts();
  const seenCartridge = store.parts.history(cartridge.rom);
  if (!recordsAgree(store, cartridgeReport(cartridge)) || (seenCartridge !== null && !partStatus(seenCartridge, store.epochMs()).ready)) {
    output.line(`   cartridge ${cartridge.rom} is on record from an earlier run and may not be used again (the virtual pen's chips start ` +
      `fresh each run, the store remembers): the technician fits a new one, ${await fitNewCartridge(pen, session, device, store)}`);
  }
  if (!recordsAgree(store, noseconeReport(nosecone))) {
    output.line(`   nosecone ${nosecone.rom}'s chip, fresh with this run, is behind the store's records of it: ` +
      `the technician fits a new nosecone, ${await fitNewNosecone(pen, device, store)}`);
  }
  const fitted = await device.settledParts();
  const status = new SterilizationRegistry(store).checkFitted(noseconeReport(fitted.nosecone), demoActor(device)).status;
  if (!status.ready) {
    output.line(`   nosecone ${status.id} is not ready (${status.text}): sterilizing it first`);
    await sterilize(device, store, output);
  }
}

/** Reprocesses the fitted nosecone: its chip's tally burnt through the reprocessing role, then the cycle recorded (audited). */
async function sterilize(device: PenDevice, store: PenStore, output: Output): Promise<void> {
  await confirmPenSafe(device, 'before sterilizing');  // the pen takes service commands only with the stepper still
  const { nosecone } = await device.settledParts();
  const loadNumber = store.parts.cycles().filter((cycle) => cycle.sterilizerId === demoSterilizer).length + 1;
  const request = {
    partIds: [nosecone.rom], cycle: demoCycle, sterilizerId: demoSterilizer, loadNumber,
    chemicalIndicator: 'pass', biologicalIndicator: 'pending', operator: demoOperator,
  } as const;
  const result = await sterilizeFitted(device, store, request);
  store.audit(null, 'sterilize', { target: 'demo', ...request, cycleId: result.recorded.cycle.id, chip: result.chip }, 'ok', { ...demoActor(device), role: serviceRole('record_sterilization') });
  for (const line of describeSterilized('the virtual pen', result).split('\n')) output.line(`   ${line}`);
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
    // The blank pen gets a SIM- serial, so that it takes the test keys: reprocessing signs the nosecone's marks.
    const identity = await device.provision(demoSerial, testKeys);
    output.line(`0. provisioned as ${identity.serial} with the virtual pen's published test keys (the reprocessing role signs sterilization marks)`);
    const checks = await session.selfTest();
    output.line(`1. self-test passed: ${checks.map((check) => check.name).join(', ')}`);
    await session.home();
    output.line(`2. homed: ${describeNeedle(await device.status())}`);
    await readyParts(pen, session, device, store, output);
    const parts = await session.prepare();
    output.line(`3. ${describePreparedParts(parts)}`);
    output.line(`   cartridge ${parts.cartridge.status.id} cleared; treatment pass at 1.00 mm, 100 strokes/s for 3 s; a needle jam will be injected about 2 s in`);

    const firstPass = session.treat({ depthMm: 1.0, strokesPerSecond: 100, durationS: 3 });
    await device.clock.sleep(2000);
    pen.plant.setLoad('jam');
    const first = await firstPass;
    const safe = await confirmPenSafe(device, 'after the jam');  // throws unless the pen says so itself
    output.line(`4. jam: the pen went safe (${first.outcome}: ${first.reason}); ${safe}`);

    pen.plant.setLoad('nominal');
    await session.recover();
    const registry = new SterilizationRegistry(store);
    output.line(`5. jam cleared, fault cleared; the session used both parts (session ${first.sessionId}):`);
    for (const id of [parts.cartridge.status.id, parts.nosecone.status.id]) output.line(describePartStatus(registry.status(id)));
    output.line(`   the technician fits a new cartridge, ${await fitNewCartridge(pen, session, device, store)}, and reprocesses the nosecone:`);
    await sterilize(device, store, output);
    const again = await session.prepare();
    output.line(`6. ${describePreparedParts(again)}`);
    output.line(`   cartridge ${again.cartridge.status.id} cleared; finishing with a 2 s pass at 1.00 mm`);
    plannedS = 2;
    const second = await session.treat({ depthMm: 1.0, strokesPerSecond: 100, durationS: plannedS });
    output.line(`7. ${second.outcome}: ${second.reason}; ${await confirmPenSafe(device, 'after the second pass')}`);
    const faults = store.faults(5).filter((fault) => fault.sessionId === first.sessionId);
    output.line(`summary: ${(first.needleSeconds + second.needleSeconds).toFixed(2)} s of needle time, ${first.strokes + second.strokes} strokes in 2 sessions; ` +
      `faults recorded: ${faults.map((f) => `${f.source}:${f.code}`).join(', ')}; store ${store.path}`);
    output.line('parts after the second session (pen parts --all):');
    for (const id of [again.cartridge.status.id, again.nosecone.status.id]) output.line(describePartStatus(registry.status(id)));
    return { passes: [first, second], storePath: store.path };
  } finally {
    session.close();
    store.close();
  }
}
