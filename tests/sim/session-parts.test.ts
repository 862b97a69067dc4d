// The session's parts checks on virtual time against the virtual pen: clones of a cartridge and of a nosecone, a load
// recalled by its biological indicator, the nosecone's shelf life and the cartridge's expiry by the store's date, and
// the nosecone's cycle limit (warned at 90 %, refused at the limit by the host, and by the firmware when the host is
// bypassed). Every refusal is checked to name the part and why, to send nothing to the pen, and to leave the motor off.
import { afterEach, describe, expect, it } from 'vitest';
import type { Clock, Timer } from '../../hardware/clock.ts';
import { IdChip } from '../../hardware/sim/id-chip.ts';
import type { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { PenDevice, PenRefusedError } from '../../hal/device.ts';
import { dayDate, dayNumber, romBytes, romHex } from '../../hal/parts.ts';
import { SessionRefusedError, TreatmentSession } from '../../src/control/session.ts';
import { policy } from '../../src/sterilization/config.ts';
import { noseconeReport, SterilizationRegistry } from '../../src/sterilization/registry.ts';
import type { BiologicalIndicator } from '../../src/store/parts.ts';
import { PenStore, type AuditRecord } from '../../src/store/store.ts';
import { provisionedVirtualPen } from './provisioned.ts';
import { recordSterileNosecone, testActor } from './registered-parts.ts';

const dayMs = 86_400_000;
const plan = { depthMm: 1.0, strokesPerSecond: 100, durationS: 0.3 } as const;
const cycleName = '134C-3min-prevac';
const sterilizer = 'TEST-AC';

/**
 * The store's clock: the pen's virtual time, with a date the test sets. The session's loop and the pen keep the pen's
 * clock; only the records' time (and the date arm carries) moves, as a host's calendar does over weeks.
 */
class StoreClock implements Clock {
  private offsetMs = 0;
  constructor(private readonly base: Clock) {}
  nowMs(): number {
    return this.base.nowMs();
  }
  after(delayMs: number, fn: () => void): Timer {
    return this.base.after(delayMs, fn);
  }
  sleep(delayMs: number): Promise<void> {
    return this.base.sleep(delayMs);
  }
  epochMs(): number {
    return this.base.epochMs() + this.offsetMs;
  }
  /** From now on the store reads epochMs (and runs on from there with virtual time). */
  setEpochMs(epochMs: number): void {
    this.offsetMs = epochMs - this.base.epochMs();
  }
}

let pen: VirtualPen;
let device: PenDevice;
let store: PenStore;
let storeClock: StoreClock;
let session: TreatmentSession;
let registry: SterilizationRegistry;
/** Virtual times at which the plant's motor was seen driven: sampled every millisecond, so that no start escapes. */
let motorOnAtMs: number[];
let watching = false;

function watchMotor(): void {
  motorOnAtMs = [];
  watching = true;
  const sample = (): void => {
    if (!watching) return;
    if (pen.plant.motorDrive() > 0) motorOnAtMs.push(pen.clock.nowMs());
    pen.clock.after(1, sample);
  };
  sample();
}

/** A provisioned pen (the reprocessing grant needs its test keys), self-tested and homed, with a session on a store whose date the test sets. */
async function homedSession(): Promise<void> {
  pen = provisionedVirtualPen({ seed: 7 });
  pen.start();
  // The session's loop sends the heartbeats, as in a clinic.
  device = await PenDevice.connect(pen.openPort(), { clock: pen.clock, heartbeat: false });
  storeClock = new StoreClock(pen.clock);
  store = PenStore.open(':memory:', storeClock);
  registry = new SterilizationRegistry(store);
  session = new TreatmentSession(device, { clock: pen.clock, store, target: 'virtual pen' });
  watchMotor();
  await session.selfTest();
  await session.home();
}

afterEach(async () => {
  watching = false;
  session.close();
  await device.close();
  await pen.stop();
  store.close();
});

/** The 48-bit serial inside a ROM id (family code, serial little-endian, CRC-8): what a cloner copies onto its chip. */
function serialOf(rom: string): bigint {
  const bytes = romBytes(rom);
  let serial = 0n;
  for (let i = 5; i >= 0; i--) serial = (serial << 8n) | BigInt(bytes[1 + i] ?? 0);
  return serial;
}

/** A cartridge swap; a fault latched by the old one coming out is cleared. Returns the new chip's ROM id. */
async function fitCartridge(options: { readonly serial?: bigint; readonly expiryDay?: number } = {}): Promise<string> {
  const chip = await pen.fitNewCartridge(options);
  await pen.clock.sleep(20);
  if ((await device.status()).state === 'fault') await session.recover();
  const rom = romHex(chip.rom);
  expect((await device.settledParts()).cartridge).toMatchObject({ rom, status: 'ok' });
  return rom;
}

/** Fits a nosecone chip (a nosecone has no switch: the pen is told to read it). Returns its ROM id. */
async function fitNosecone(chip: IdChip): Promise<string> {
  pen.idChips.nosecone.fit(chip);
  await device.parts(['nosecone']);
  const rom = romHex(chip.rom);
  expect((await device.settledParts()).nosecone).toMatchObject({ rom, status: 'ok' });
  return rom;
}

/** A nosecone chip as its maker and its cycles left it, with its own serial unless given one (a clone's). */
function noseconeChip(serial: bigint, sterilizations: number, uses = 0): IdChip {
  return IdChip.part({ kind: 'nosecone', lot: 0x000a1b2c, date: 8766, sterilizations, uses }, serial);
}

/**
 * One reprocessing cycle of the fitted nosecone, as `pen sterilize` does it: the tally bit burnt through the pen on the
 * reprocessing grant and read back, then the cycle recorded with a passing chemical indicator, then the chip's new
 * tally kept with the part. Returns the tally after.
 */
async function reprocessNosecone(loadNumber: number, biologicalIndicator: BiologicalIndicator): Promise<number> {
  await device.waitFor((t) => !t.moving, 2000, 'the stepper still');  // service commands only while nothing moves
  const before = (await device.settledParts()).nosecone;
  await device.serviceCommand('record_sterilization', { noseconeRom: romBytes(before.rom) });
  const after = await device.settledParts();
  expect(after.lastWrite).toBe('ok');
  expect(after.nosecone).toMatchObject({ rom: before.rom, sterilizations: before.sterilizations + 1 });
  registry.recordCycle({
    partIds: [before.rom], cycle: cycleName, sterilizerId: sterilizer, loadNumber, chemicalIndicator: 'pass', biologicalIndicator,
  }, testActor);
  expect(registry.checkFitted(noseconeReport(after.nosecone), testActor).check.accepted).toBe(true);
  return after.nosecone.sterilizations;
}

const lastAuditId = (): number => store.auditLog(1)[0]?.id ?? 0;
const auditSince = (id: number): AuditRecord[] => store.auditLog(1000).filter((entry) => entry.id > id);
const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const readable = (ms: number): string => `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;

/**
 * prepare() refuses on the host with a SessionRefusedError matching text, and nothing reached the pen: no
 * clear_cartridge asked, the pen shows the cartridge not cleared, nothing armed, the motor not driven meanwhile.
 */
async function expectRefusedOnHost(text: RegExp): Promise<void> {
  const auditedBefore = lastAuditId();
  const fromMs = pen.clock.nowMs();
  const phaseBefore = session.phase;
  const refusal = session.prepare();
  await expect(refusal).rejects.toThrow(SessionRefusedError);
  await expect(refusal).rejects.toThrow(text);
  expect(auditSince(auditedBefore).map((entry) => entry.command)).not.toContain('clear_cartridge');
  const t = await device.status();
  expect(t).toMatchObject({ state: 'idle', cartridgeCleared: false, needleOn: false });
  // A refusal never makes the session ready. (One after an earlier successful prepare leaves that 'ready' phase
  // standing, though nothing is cleared: reported, not asserted here.)
  if (phaseBefore !== 'ready') expect(session.phase).toBe(phaseBefore);
  expect(motorOnAtMs.filter((ms) => ms >= fromMs)).toEqual([]);
  // Nor can a treatment start: the pen was never cleared for this cartridge.
  await expect(session.treat(plan)).rejects.toThrow('cartridge not cleared for use: prepare the session first');
}

/** The host flagged the part as a possible clone: its state in the store, and one flag_part audit row naming it. */
function expectFlagged(partId: string, auditedBefore: number, why: RegExp): void {
  expect(registry.status(partId)).toMatchObject({ state: 'flagged', condition: 'flagged', ready: false });
  expect(store.parts.history(partId)?.part.stateReason).toMatch(why);
  const flags = auditSince(auditedBefore).filter((entry) => entry.command === 'flag_part');
  expect(flags).toHaveLength(1);
  expect(flags[0]?.arguments).toMatchObject({ partId });
  expect(String(flags[0]?.arguments['reason'])).toMatch(why);
  expect(flags[0]?.result).toBe('ok');
}

describe('possible clones are refused and flagged', () => {
  it('a cloned cartridge: the used cartridge\'s ROM id on a fresh chip is refused and flagged; a genuine new one works', { tags: ['REQ-PART-CLONE-DETECTION'] }, async () => {
    await homedSession();
    await recordSterileNosecone(device, store);
    const first = await session.prepare();
    const cartridge = first.cartridge.status.id;
    const { sessionId, outcome } = await session.treat(plan);
    expect(outcome).toBe('completed');
    expect(motorOnAtMs.length).toBeGreaterThan(100);  // the watch sees the motor when it does run
    expect((await device.settledParts()).cartridge).toMatchObject({ rom: cartridge, used: true });

    // The clone: the same ROM id, memory as its maker left it (no used mark).
    await fitCartridge({ serial: serialOf(cartridge) });
    expect((await device.settledParts()).cartridge).toMatchObject({ rom: cartridge, used: false });
    // The nosecone was used too: reprocessed, so that the cartridge is the only part at issue.
    await reprocessNosecone(2, 'pass');
    const auditedBefore = lastAuditId();
    const motorRunsBefore = motorOnAtMs.length;
    await expectRefusedOnHost(new RegExp(`^cartridge ${cartridge} refused: part ${cartridge} possibly cloned: its chip reads unused, ` +
      `but it was used in session ${sessionId} \\(.*\\): take it out of use and report it \\(pen parts show ${cartridge}\\)$`));
    expectFlagged(cartridge, auditedBefore, new RegExp(`possibly cloned: .*reads unused, but it was used in session ${sessionId}`));
    expect(motorOnAtMs.length).toBe(motorRunsBefore);

    const genuine = await fitCartridge();
    const prepared = await session.prepare();
    expect(prepared.cartridge).toMatchObject({ registered: true, usable: true, status: { id: genuine, condition: 'ready' } });
    expect((await session.treat(plan)).outcome).toBe('completed');
    // The flag stays: the clone's id is refused for good.
    expect(registry.status(cartridge).condition).toBe('flagged');
  });

  it('a cloned nosecone: its ROM id with a sterilization tally below what the records saw is refused and flagged', { tags: ['REQ-PART-CLONE-DETECTION'] }, async () => {
    await homedSession();
    const nosecone = await recordSterileNosecone(device, store);
    expect(await reprocessNosecone(2, 'pass')).toBe(2);
    expect(store.parts.history(nosecone)?.part.chip?.sterilizationTally).toBe(2);

    // A copy made before the second cycle: the same ROM id and lot, one tally bit.
    const lot = (await device.settledParts()).nosecone.lot;
    expect(lot).toBe(0x000a1b2c);
    await fitNosecone(noseconeChip(serialOf(nosecone), 1));
    const auditedBefore = lastAuditId();
    await expectRefusedOnHost(new RegExp(`^nosecone ${nosecone} refused: part ${nosecone} possibly cloned: its sterilization tally went backwards: 1, ` +
      `read 2 on .*: take it out of use and report it \\(pen parts show ${nosecone}\\)$`));
    expectFlagged(nosecone, auditedBefore, /possibly cloned: .*sterilization tally went backwards: 1, read 2/);
    expect(motorOnAtMs).toEqual([]);
  });
});

describe('sterility by the records', () => {
  it('a load recalled by its biological indicator: refused naming the recall; after reprocessing, a session runs', { tags: ['REQ-BI-RECALL'] }, async () => {
    await homedSession();
    const nosecone = await recordSterileNosecone(device, store);  // sterilizer TEST-AC load 1, indicator pending
    expect(registry.status(nosecone)).toMatchObject({ condition: 'ready', ready: true });
    expect(registry.status(nosecone).text).toMatch(/biological indicator pending$/);

    const auditedBefore = lastAuditId();
    const recall = registry.recordBiologicalResult(sterilizer, 1, 'fail', testActor);
    expect(recall.parts.map((part) => [part.id, part.condition])).toEqual([[nosecone, 'load_recalled']]);
    expect(auditSince(auditedBefore).filter((entry) => entry.command === 'recall_load')[0]?.arguments)
      .toMatchObject({ sterilizerId: sterilizer, loadNumber: 1, partIds: [nosecone] });

    await expectRefusedOnHost(new RegExp(`^nosecone ${nosecone}: recalled: the biological indicator of its last cycle \\d+ \\(${escape(cycleName)}, ` +
      `sterilizer ${sterilizer} load 1, .*\\) failed; every part of that load is not sterile until reprocessed ` +
      `\\(pen sterilize --part ${nosecone} --cycle NAME --sterilizer ID --load N --indicator pass --operator NAME\\)$`));
    // A recall is not a clone: the part stays in service, to be reprocessed.
    expect(registry.status(nosecone).state).toBe('in_service');

    expect(await reprocessNosecone(2, 'pass')).toBe(2);
    const prepared = await session.prepare();
    expect(prepared.nosecone.status).toMatchObject({ id: nosecone, condition: 'ready' });
    expect(prepared.nosecone.status.text).toMatch(/load 2, .*biological indicator pass$/);
    expect((await session.treat(plan)).outcome).toBe('completed');
  });

  it(`shelf life: accepted ${policy.sterileShelfLifeDays} days less one after its cycle, refused a minute past it`, { tags: ['REQ-NOSECONE-SHELF-LIFE'] }, async () => {
    await homedSession();
    const nosecone = await recordSterileNosecone(device, store);
    const t0 = Date.parse(registry.status(nosecone).lastCycle?.at ?? '');
    const shelfMs = policy.sterileShelfLifeDays * dayMs;

    storeClock.setEpochMs(t0 + shelfMs - dayMs);
    const accepted = await session.prepare();
    expect(accepted.nosecone.status).toMatchObject({ condition: 'ready', sterileUntil: new Date(t0 + shelfMs).toISOString() });
    // That prepare cleared the fitted cartridge; a fresh one, not cleared, for the refusal (the clearance goes with it).
    await fitCartridge();

    storeClock.setEpochMs(t0 + shelfMs + 60_000);
    await expectRefusedOnHost(new RegExp(`^nosecone ${nosecone}: its sterile storage ended ${escape(readable(t0 + shelfMs))}, ` +
      `${policy.sterileShelfLifeDays} days after its last cycle \\d+ \\(${escape(cycleName)}, sterilizer ${sterilizer} load 1, .*\\): reprocess it ` +
      `\\(pen sterilize --part ${nosecone} `));
    expect(registry.status(nosecone)).toMatchObject({ condition: 'shelf_life_expired', state: 'in_service' });
    expect(motorOnAtMs).toEqual([]);
  });

  it('cartridge expiry by the store\'s date: one that expired yesterday is refused on the host; one expiring today runs', { tags: ['REQ-CARTRIDGE-EXPIRY'] }, async () => {
    await homedSession();
    // Far from the pen's own virtual date: the store's date is the one that counts, on the host and in arm.
    storeClock.setEpochMs(Date.UTC(2027, 5, 15, 9, 30));
    await recordSterileNosecone(device, store);
    const today = dayNumber(store.epochMs());

    const stale = await fitCartridge({ expiryDay: today - 1 });
    await expectRefusedOnHost(new RegExp(`^cartridge ${stale}: expired: its expiry date ${dayDate(today - 1)} has passed; do not use it$`));
    expect(registry.status(stale)).toMatchObject({ condition: 'expired', state: 'in_service', expiry: dayDate(today - 1) });
    expect(motorOnAtMs).toEqual([]);

    const fresh = await fitCartridge({ expiryDay: today });
    const prepared = await session.prepare();
    expect(prepared.cartridge.status).toMatchObject({ id: fresh, condition: 'ready', expiry: dayDate(today) });
    const auditedBefore = lastAuditId();
    expect((await session.treat(plan)).outcome).toBe('completed');
    // The pen checked the expiry against the store's date, not its own.
    expect(auditSince(auditedBefore).find((entry) => entry.command === 'arm')?.arguments).toEqual({ hostDate: dayDate(today) });
  });
});

describe('the nosecone\'s cycle limit', () => {
  const limit = policy.noseconeCycleLimit;
  const warnAt = Math.ceil((limit * policy.cycleLimitWarningPercent) / 100);

  it(`warns at ${policy.cycleLimitWarningPercent} %, refuses on the host at the limit, and the firmware refuses it when the host is bypassed`, { tags: ['REQ-NOSECONE-CYCLE-LIMIT'] }, async () => {
    expect([limit, warnAt]).toEqual([200, 180]);  // the figures this test was written for
    await homedSession();

    // A nosecone whose chip counts warnAt cycles, the last of them on record here (the others recorded elsewhere).
    const worn = await fitNosecone(noseconeChip(0xa11ce0000180n, warnAt));
    await recordSterileNosecone(device, store);
    const prepared = await session.prepare();
    expect(prepared.nosecone.usable).toBe(true);
    expect(prepared.nosecone.status).toMatchObject({
      id: worn, condition: 'ready', cyclesUsed: warnAt, cycleLimit: limit, cyclesLeft: limit - warnAt,
      warnings: [`${warnAt} of ${limit} sterilization cycles used (90 %): ${limit - warnAt} left; order a replacement nosecone`],
    });
    // That prepare's clearance goes with the cartridge.
    const cartridge = await fitCartridge();

    // Another, one cycle short: recorded, then its last cycle burnt through the pen and recorded.
    const spent = await fitNosecone(noseconeChip(0xa11ce0000199n, limit - 1));
    await recordSterileNosecone(device, store);
    expect(registry.status(spent).warnings).toEqual([`${limit - 1} of ${limit} sterilization cycles used (99 %): 1 left; order a replacement nosecone`]);
    expect(await reprocessNosecone(2, 'pass')).toBe(limit);
    await expectRefusedOnHost(new RegExp(`^nosecone ${spent}: at its limit: ${limit} of ${limit} sterilization cycles ` +
      `\\(${escape(policy.noseconeCycleLimitSource)}\\); retire it$`));
    expect(registry.status(spent)).toMatchObject({ condition: 'at_cycle_limit', cyclesLeft: 0, warnings: [] });

    // The host bypassed: cleared and armed straight through the device, the needle in the window. The pen refuses.
    await device.clearCartridge(cartridge);
    await device.depth.moveTo(1.0);
    expect((await device.status()).cartridgeCleared).toBe(true);
    const arming = device.arm(store.epochMs());
    await expect(arming).rejects.toThrow(PenRefusedError);
    await expect(arming).rejects.toMatchObject({ command: 'arm', code: 'nosecone_at_limit', detail: limit, refusedPart: { part: 'nosecone', rom: spent } });
    // Nor does a start frame sent past the host's own check run the motor.
    await expect(device.command('start_needle', { strokesPerSecond: 100 })).rejects.toMatchObject({ code: 'not_allowed_in_state' });
    await pen.clock.sleep(50);
    expect(await device.status()).toMatchObject({ state: 'idle', needleOn: false });
    expect(motorOnAtMs).toEqual([]);
  });
});
