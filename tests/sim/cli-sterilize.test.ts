// `pen sterilize` (src/cli/sterilize.ts): the fitted nosecone's chip tally burnt through the reprocessing role and the
// cycle recorded, chip and `pen parts` agreeing; a failed chemical indicator recorded, burning nothing and not sterile;
// a biological indicator failure recalling the load; a wrong key or no grant refused by the firmware with nothing
// recorded; options refused before any pen is contacted. In process on virtual time, but one spawned run on a served pen.
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RealClock } from '../../hardware/clock.ts';
import { pen as description } from '../../hardware/description.ts';
import type { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { PenDevice, PenRefusedError } from '../../hal/device.ts';
import type { Parts } from '../../hal/parts.ts';
import { main } from '../../src/cli/pen.ts';
import { sterilizeCommand, type SterilizedPart, type SterilizeFlags } from '../../src/cli/sterilize.ts';
import type { Target } from '../../src/cli/target.ts';
import { UsageError } from '../../src/cli/format.ts';
import { PenStore } from '../../src/store/store.ts';
import { SterilizationRegistry, type PartStatus, type RecordedLoadResult } from '../../src/sterilization/registry.ts';
import { PenProcesses } from '../pen-process.ts';
import { provisionedVirtualPen } from './provisioned.ts';
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
  it('burns the fitted nosecone\'s tally through the reprocessing role and records the cycle; a failed indicator burns nothing and is not sterile', async () => {
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

  it('refuses without the reprocessing key: a wrong key is refused by the firmware, a raw frame without a grant too; nothing recorded', async () => {
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

  it('refuses the fitted cartridge as a part to reprocess (exit 2); a failed biological indicator recalls the load and lists the sessions since', async () => {
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

  it('refuses an unknown cycle, a bad load or sterilizer, and a cartridge on record with exit 2, before contacting a pen', async () => {
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

  it('as a user runs it: a pen process sterilizes a served pen\'s nosecone, and `pen parts` agrees with the chip', async () => {
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
});
