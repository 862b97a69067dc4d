// `pen sterilize` (src/cli/sterilize.ts): the fitted nosecone's chip tally burnt through the reprocessing role and the
// cycle recorded, chip and `pen parts` agreeing; a failed chemical indicator recorded, burning nothing and not sterile;
// a biological indicator failure recalling the load; a wrong key or no grant refused by the firmware with nothing
// recorded; options refused before any pen is contacted; a chip write that fails recording nothing. The in-process
// pen's chips kept between processes: two cycles in a row count on, and each start fits a new cartridge. In process on
// virtual time, but the spawned runs (on a served pen, or each on its own in-process pen).
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RealClock } from '../../hardware/clock.ts';
import { pen as description } from '../../hardware/description.ts';
import { romId } from '../../hardware/sim/id-chip.ts';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { PenDevice, PenRefusedError } from '../../hal/device.ts';
import type { Parts } from '../../hal/parts.ts';
import { partsFilePath, readPartsFile } from '../../src/cli/parts-file.ts';
import { main } from '../../src/cli/pen.ts';
import { sterilizeCommand, type SterilizedPart, type SterilizeFlags } from '../../src/cli/sterilize.ts';
import type { Target } from '../../src/cli/target.ts';
import { UsageError } from '../../src/cli/format.ts';
import { PenStore } from '../../src/store/store.ts';
import { SterilizationRegistry, type PartStatus, type RecordedLoadResult } from '../../src/sterilization/registry.ts';
import { PenProcesses, type PenResult } from '../pen-process.ts';
import { provisionedVirtualPen, writeProvisionedEepromFile } from './provisioned.ts';
import { servedVirtualPen } from './virtual-session.ts';

const processes = new PenProcesses();
let virtualPen: VirtualPen | null = null;
let device: PenDevice | null = null;
afterEach(async () => {
  await device?.close();
  device = null;
  await virtualPen?.stop();
  virtualPen = null;
  processes.killAll();
});

const freshDir = (): string => mkdtempSync(join(tmpdir(), 'pen-sterilize-'));

/** A provisioned virtual pen on virtual time, as a target that stays open across commands (closed after the test). */
async function virtualTarget(seed: number): Promise<{ target: Target; pen: VirtualPen; device: PenDevice }> {
  const pen = provisionedVirtualPen({ seed });
  virtualPen = pen;
  pen.start();
  const connected = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
  device = connected;
  return { pen, device: connected, target: { device: connected, where: 'test virtual pen', virtualPen: pen, close: async () => {} } };
}

/** get_parts until no chip is read or written. */
async function settled(pen: VirtualPen, connected: PenDevice): Promise<Parts> {
  let parts = await connected.parts();
  while (parts.reading.length > 0 || parts.writing || parts.nosecone.status === 'unknown') {
    await pen.clock.sleep(20);
    parts = await connected.parts();
  }
  return parts;
}

function withStore<T>(db: string, fn: (store: PenStore) => T): T {
  const store = PenStore.open(db, new RealClock());
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

const cycleFlags = (rom: string, db: string, extra: Partial<SterilizeFlags> = {}): SterilizeFlags => ({
  part: [rom], cycle: '134C-3min-prevac', sterilizer: 'AC-1', load: '12', indicator: 'pass', operator: 'R. Ortiz', db, keysDir: freshDir(), ...extra,
});

describe('pen sterilize', () => {
  it('burns the fitted nosecone\'s tally through the reprocessing role and records the cycle; a failed indicator burns nothing and is not sterile', { tags: ['REQ-STERILIZATION-RECORD'] }, async () => {
    const { target, pen, device: connected } = await virtualTarget(21);
    const db = join(freshDir(), 'pen.db');
    const rom = (await settled(pen, connected)).nosecone.rom;
    const sterilized = await sterilizeCommand(cycleFlags(rom, db), () => Promise.resolve(target)) as SterilizedPart;
    expect(sterilized.chip).toEqual({ id: rom, tallyBefore: 1, tallyAfter: 2, burnt: true });
    expect(sterilized.status).toMatchObject({ id: rom, condition: 'ready', cyclesUsed: 2, cyclesLeft: description.idChips.noseconeCycleLimit - 2 });
    expect((await settled(pen, connected)).nosecone.sterilizations).toBe(2);
    withStore(db, (store) => {
      expect(store.parts.part(rom)?.chip?.sterilizationTally).toBe(2);
      expect(store.queryAudit({ command: 'sterilize' })[0]).toMatchObject({ result: 'ok', operator: 'R. Ortiz', arguments: { grants: ['reprocessing: record_sterilization'], cycleId: 1 } });
    });

    // A failed chemical indicator: recorded (it wears the part), nothing burnt, not sterile, and no grant used.
    const failed = await sterilizeCommand(cycleFlags(rom, db, { load: '13', indicator: 'fail' }), () => Promise.resolve(target)) as SterilizedPart;
    expect(failed.chip).toEqual({ id: rom, tallyBefore: 2, tallyAfter: 2, burnt: false });
    expect(failed.status).toMatchObject({ condition: 'indicator_failed', ready: false, cyclesUsed: 2 });
    expect(failed.recorded.cycle.chemicalIndicator).toBe('fail');
    expect((await settled(pen, connected)).nosecone.sterilizations).toBe(2);
    withStore(db, (store) => {
      expect(new SterilizationRegistry(store).reprocessingLog().map((row) => [row.loadNumber, row.sterilizing])).toEqual([[12, true], [13, false]]);
      const entries = store.queryAudit({ command: 'sterilize' });
      expect(entries.map((entry) => [entry.arguments['loadNumber'], entry.result, entry.arguments['grants']])).toEqual(expect.arrayContaining([
        [12, 'ok', ['reprocessing: record_sterilization']], [13, 'ok', undefined],
      ]));
    });
  });

  it('refuses without the reprocessing key: a wrong key is refused by the firmware, a raw frame without a grant too; nothing recorded', { tags: ['REQ-ROLES'] }, async () => {
    const { target, pen, device: connected } = await virtualTarget(22);
    const db = join(freshDir(), 'pen.db');
    const rom = (await settled(pen, connected)).nosecone.rom;
    const keysDir = freshDir();
    mkdirSync(join(keysDir, 'SIM-0001'), { mode: 0o700 });
    chmodSync(keysDir, 0o700);
    writeFileSync(join(keysDir, 'SIM-0001', 'reprocessing.key'), `${'5a'.repeat(32)}\n`, { mode: 0o600 });
    const refused = sterilizeCommand(cycleFlags(rom, db, { keysDir }), () => Promise.resolve(target));
    await expect(refused).rejects.toThrow(PenRefusedError);
    await expect(refused).rejects.toThrow(/wrong_answer/);
    await expect(connected.command('record_sterilization', { noseconeRom: Uint8Array.from(Buffer.from(rom, 'hex')) })).rejects.toThrow(/role_required/);
    expect((await settled(pen, connected)).nosecone.sterilizations).toBe(1);
    expect(pen.idChips.nosecone.chip?.stats.copies).toBe(0);
    withStore(db, (store) => {
      expect(store.parts.cycles()).toEqual([]);
      expect(store.queryAudit({ command: 'sterilize' })[0]?.result).toMatch(/^refused: pen refused record_sterilization: .*wrong_answer/);
    });
  });

  it('refuses the fitted cartridge as a part to reprocess (exit 2); a failed biological indicator recalls the load and lists the sessions since', { tags: ['REQ-STERILIZATION-RECORD', 'REQ-BI-RECALL'] }, async () => {
    const { target, pen, device: connected } = await virtualTarget(23);
    const db = join(freshDir(), 'pen.db');
    const { nosecone, cartridge } = await settled(pen, connected);
    const rom = nosecone.rom;
    const cartridgeRefused = sterilizeCommand(cycleFlags(cartridge.rom, db), () => Promise.resolve(target));
    await expect(cartridgeRefused).rejects.toThrow(UsageError);
    await expect(cartridgeRefused).rejects.toThrow(/is a cartridge: cartridges are single-use, sterilized \(EtO\) by their maker, and never reprocessed/);
    withStore(db, (store) => expect(store.parts.cycles()).toEqual([]));

    await sterilizeCommand(cycleFlags(rom, db, { load: '40' }), () => Promise.resolve(target));
    const session = withStore(db, (store) => {
      const id = store.startSession({
        target: 'test', board: 'pen-r1a', firmware: '0.1.0', depthMm: 1, strokesPerSecond: 100, plannedSeconds: 10, cartridgePartId: null, noseconePartId: rom,
      });
      store.markNeedleStarted(id);
      store.endSession(id, 'completed', {});
      return id;
    });
    const recall = await sterilizeCommand({ load: '40', bi: 'fail', operator: 'R. Ortiz', db }) as RecordedLoadResult;
    // Used since the cycle, so that comes first among its reasons; the log shows the cycle no longer counts as sterile.
    expect(recall.parts.map((part: PartStatus) => [part.id, part.ready])).toEqual([[rom, false]]);
    expect(recall.sessionsAfter).toMatchObject([{ partId: rom, sessionId: session }]);
    withStore(db, (store) => {
      expect(store.queryAudit({ command: 'recall_load' })).toHaveLength(1);
      expect(new SterilizationRegistry(store).reprocessingLog().map((row) => [row.loadNumber, row.biologicalIndicator, row.sterilizing])).toEqual([[40, 'fail', false]]);
      expect(store.queryAudit({ command: 'record_biological_indicator' })[0]).toMatchObject({ result: 'ok', arguments: { sterilizerId: 'AC-1', loadNumber: 40, result: 'fail' } });
    });
    await expect(sterilizeCommand({ load: '41', bi: 'fail', db })).rejects.toThrow(/no cycle of load 41 is on record/);
  });

  it('refuses an unknown cycle, a bad load or sterilizer, and a cartridge on record with exit 2, before contacting a pen', { tags: ['REQ-STERILIZATION-RECORD'] }, async () => {
    const db = join(freshDir(), 'pen.db');
    const C1 = '2d00000000000c01';
    withStore(db, (store) => new SterilizationRegistry(store).checkFitted({ kind: 'cartridge', id: C1, lot: '88', expiry: '2099-12-31', used: false },
      { pen: null, operator: 'R. Ortiz' }));
    const errors: string[] = [];
    const original = console.error;
    console.error = (text: string) => { errors.push(text); };
    try {
      const base = ['sterilize', '--sterilizer', 'AC-1', '--indicator', 'pass', '--operator', 'R. Ortiz', '--port', 'tcp://127.0.0.1:1', '--db', db];
      expect(await main([...base, '--part', '2d00000000000a01', '--cycle', '135C-1min', '--load', '3'])).toBe(2);
      expect(await main([...base, '--part', '2d00000000000a01', '--cycle', '134C-3min-prevac', '--load', '-3'])).toBe(2);
      expect(await main([...base, '--part', '2d00000000000a01', '--cycle', '134C-3min-prevac', '--load', '3', '--sterilizer', 'AC 1'])).toBe(2);
      expect(await main([...base, '--part', C1, '--cycle', '134C-3min-prevac', '--load', '3'])).toBe(2);
      expect(await main(['sterilize', '--load', '3', '--bi', 'pending', '--db', db])).toBe(2);
    } finally {
      console.error = original;
    }
    const text = errors.join('\n');
    expect(text).toMatch(/--cycle "135C-1min" is not in config\/sterilization-cycles\.json: it has 121C-30min-gravity \(121 °C for 30 min, gravity displacement\), /);
    expect(text).toMatch(/--load must be the sterilizer's load \(batch\) number, a whole number 0–1000000000, e\.g\. --load 412 \(got "-3"\)/);
    expect(text).toMatch(/--sterilizer must be the sterilizer's id, 1–32 letters/);
    expect(text).toMatch(new RegExp(`part ${C1} is a cartridge: cartridges are single-use`));
    expect(text).toMatch(/--bi, for a load's later result, must be pass or fail \(got "pending"\)/);
    withStore(db, (store) => expect(store.parts.cycles()).toEqual([]));
  });

  it('as a user runs it: a pen process sterilizes a served pen\'s nosecone, and `pen parts` agrees with the chip', { tags: ['REQ-STERILIZATION-RECORD'] }, async () => {
    const served = await servedVirtualPen();
    try {
      const db = join(processes.dataDir, 'pen.db');
      const nosecone = served.pen.idChips.nosecone.chip;
      const rom = Buffer.from(nosecone?.rom ?? []).toString('hex');
      const env = { PEN_KEYS_DIR: freshDir() };
      const result = await processes.run(['sterilize', '--port', served.address, '--part', rom, '--cycle', '134C-18min-prion', '--sterilizer', 'AC-1',
        '--load', '7', '--indicator', 'pass', '--operator', 'R. Ortiz', '--db', db], { env });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`^sterilized nosecone ${rom} on tcp://.*: cycle 1, 134C-18min-prion \\(134 °C for 18 min, .*\\), sterilizer AC-1 load 7, ` +
        'chemical indicator pass, biological indicator pending, by R\\. Ortiz\\n  chip: sterilization tally 1 → 2, burnt through the reprocessing role\\n'));
      expect(nosecone?.memory[description.idChips.layout.markPageAddress]).toBe(0xfc);  // two tally bits cleared
      const [list, show] = await Promise.all([processes.run(['parts', '--json', '--db', db], { env }), processes.run(['parts', 'show', rom, '--db', db], { env })]);
      expect((JSON.parse(list.stdout) as PartStatus[]).map((part) => [part.id, part.condition, part.cyclesUsed])).toEqual([[rom, 'ready', 2]]);
      expect(show.stdout).toMatch(/chip last read: sterilization tally 2, use tally 0/);
    } finally {
      await served.close();
    }
  });

  it('a chip write that fails (copy_failed) exits 1 saying what to do; no cycle is recorded and the chip is as it was', { tags: ['REQ-STERILIZATION-RECORD'] }, async () => {
    const served = await servedVirtualPen();
    try {
      const db = join(processes.dataDir, 'pen.db');
      const nosecone = served.pen.idChips.nosecone.chip;
      if (nosecone === null) throw new Error('the served pen has no nosecone chip');
      nosecone.failCopies = true;
      const rom = Buffer.from(nosecone.rom).toString('hex');
      const result = await processes.run(['sterilize', '--port', served.address, '--part', rom, '--cycle', '134C-3min-prevac', '--sterilizer', 'AC-1',
        '--load', '8', '--indicator', 'pass', '--operator', 'R. Ortiz', '--db', db], { env: { PEN_KEYS_DIR: freshDir() } });
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toMatch(new RegExp(`could not burn the sterilization mark on nosecone ${rom}: the chip did not report a completed copy ` +
        'after its programming time \\(copy_failed\\); no cycle was recorded\\. Check that the nosecone is seated .*run the command again; ' +
        `if the write fails again, its chip is faulty: take the nosecone out of use \\(pen parts retire ${rom} `));
      expect(nosecone.stats.copiesFailed).toBeGreaterThan(0);
      expect(nosecone.stats.copies).toBe(0);
      expect(nosecone.memory[description.idChips.layout.markPageAddress]).toBe(0xfe);  // the one tally bit it came with
      withStore(db, (store) => {
        expect(store.parts.cycles()).toEqual([]);
        expect(store.queryAudit({ command: 'sterilize' })[0]?.result).toMatch(/^refused: the pen could not burn the sterilization mark .*\(copy_failed\)/);
      });
    } finally {
      await served.close();
    }
  });

  it('in-process, the nosecone\'s chip is kept between processes (two cycles in a row: tally 1 → 2 → 3) and each start fits a new cartridge', { tags: ['REQ-STERILIZATION-RECORD'], timeout: 60_000 }, async () => {
    const eeprom = join(processes.dataDir, 'pen', 'virtual-pen.eeprom');
    mkdirSync(dirname(eeprom), { recursive: true });
    writeProvisionedEepromFile(eeprom);
    const rom = Buffer.from(new VirtualPen().idChips.nosecone.chip?.rom ?? []).toString('hex');  // the in-process pen's own (seed 1)
    const env = { PEN_KEYS_DIR: freshDir() };
    const sterilize = (partIds: readonly string[], load: string): Promise<PenResult> => processes.run(['sterilize', ...partIds.flatMap((id) => ['--part', id]),
      '--cycle', '134C-3min-prevac', '--sterilizer', 'AC-1', '--load', load, '--indicator', 'pass', '--operator', 'R. Ortiz', '--json'], { env });
    for (const [load, tallies] of [['1', [1, 2]], ['2', [2, 3]]] as const) {
      const result = await sterilize([rom], load);
      expect(result.code, result.stderr).toBe(0);
      const { target, chip, status } = JSON.parse(result.stdout) as SterilizedPart & { target: string };
      expect(target).toBe(`in-process virtual pen (EEPROM ${eeprom})`);
      expect([chip.tallyBefore, chip.tallyAfter]).toEqual(tallies);
      expect(status).toMatchObject({ id: rom, condition: 'ready', cyclesUsed: tallies[1] });
      expect(result.stdout + result.stderr).not.toMatch(/possibly cloned/);
    }
    expect(readPartsFile(partsFilePath(eeprom))?.nosecone.memory[description.idChips.layout.markPageAddress]).toBe(0xf8);  // three tally bits
    const list = await processes.run(['parts', '--json'], { env });
    expect((JSON.parse(list.stdout) as PartStatus[]).map((part) => [part.id, part.condition, part.cyclesUsed])).toEqual([[rom, 'ready', 3]]);
    withStore(join(processes.dataDir, 'pen.db'), (store) => {
      expect(store.parts.cycles().map((cycle) => cycle.loadNumber)).toEqual([1, 2]);
      expect(store.parts.part(rom)?.state).not.toBe('flagged');
    });

    // The next start's pen reads the cartridge under the file's next serial, not the one the start before took: offered
    // both as parts to sterilize, the first is not fitted and the second is refused as the fitted cartridge.
    const cartridge = (serial: number): string => Buffer.from(romId(BigInt(serial))).toString('hex');
    const next = readPartsFile(partsFilePath(eeprom))?.nextCartridgeSerial ?? -1;
    const third = await sterilize([cartridge(next - 1), cartridge(next)], '3');
    expect(third.code, third.stderr).toBe(2);
    expect(third.stderr).toMatch(`part ${cartridge(next)} is a cartridge`);
    expect(readPartsFile(partsFilePath(eeprom))?.nextCartridgeSerial).toBe(next + 1);
  });  // four processes, each booting its own pen

  it('refuses an in-process pen whose parts file is not one (exit 2), naming the file and what to do, and leaves it as it was', async () => {
    const eeprom = join(freshDir(), 'pen.eeprom');
    const foreign = '{"kind": "something else"}\n';
    writeFileSync(partsFilePath(eeprom), foreign);
    const result = await processes.run(['sterilize', '--part', '2d00000000000a01', '--cycle', '134C-3min-prevac', '--sterilizer', 'AC-1', '--load', '3',
      '--indicator', 'pass', '--operator', 'R. Ortiz', '--eeprom', eeprom], { env: { PEN_KEYS_DIR: freshDir() } });
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain(`${partsFilePath(eeprom)} is not a parts file of the virtual pen (it does not say kind "pen virtual pen parts", ` +
      'version 1): move it away to start with new parts (the parts registry may then flag the nosecone, whose tally starts over), or give another --eeprom file');
    expect(readFileSync(partsFilePath(eeprom), 'utf8')).toBe(foreign);
    expect(existsSync(eeprom)).toBe(false);
  });
});
