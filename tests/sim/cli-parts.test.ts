// `pen parts` as a user runs it, each in its own process, against a registry written beforehand in this one: the
// list with cycles left, sterile until and the 90 % warning; a part's history; retiring (audited); the CSV log; errors.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RealClock, VirtualClock } from '../../hardware/clock.ts';
import { PenStore } from '../../src/store/store.ts';
import { SterilizationRegistry, type PartStatus } from '../../src/sterilization/registry.ts';
import { PenProcesses, type PenResult } from '../pen-process.ts';

const processes = new PenProcesses();
afterEach(() => processes.killAll());

const N1 = '2d00000000000a01';
const N2 = '2d00000000000a02';
const C1 = '2d00000000000c01';
const actor = { pen: { board: 'pen-r1a', buildId: '0000abcd', serial: 'SIM-0001' }, operator: 'reproc-1' };

/** A store with a sterilized nosecone (N1), one at 181 of its 200 cycles by its chip (N2), and an unused cartridge. */
function seededDb(): string {
  const db = join(processes.freshDataDir(), 'pen.db');
  const store = PenStore.open(db, new VirtualClock(new RealClock().epochMs() - 3_600_000));
  const registry = new SterilizationRegistry(store);
  registry.checkFitted({ kind: 'nosecone', id: N1, lot: '4711', expiry: null, sterilizationTally: 0, useTally: 0 }, actor);
  registry.checkFitted({ kind: 'nosecone', id: N2, lot: '4711', expiry: null, sterilizationTally: 181, useTally: 0 }, actor);
  registry.checkFitted({ kind: 'cartridge', id: C1, lot: '88', expiry: '2099-12-31', used: false }, actor);
  registry.recordCycle({ partIds: [N1, N2], cycle: '134C-3min-prevac', sterilizerId: 'AC-1', loadNumber: 12, chemicalIndicator: 'pass' }, actor);
  store.close();
  return db;
}

const pen = (args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<PenResult> => processes.run(['parts', ...args], { env });

describe('pen parts', () => {
  it('lists, shows, retires (audited) and exports the reprocessing log as CSV; clear errors with their exit codes', { tags: ['REQ-STERILIZATION-RECORD', 'REQ-AUDIT-LOG'] }, async () => {
    const db = seededDb();
    const retired = await pen(['retire', C1, '--reason', 'dropped on the floor', '--db', db], { PEN_OPERATOR: 'nurse-3' });
    expect(retired.code, retired.stderr).toBe(0);
    expect(retired.stdout).toBe(`retired cartridge ${C1}: dropped on the floor; recorded in the audit log (pen audit --command retire_part)\n`);

    const [list, json, show, csv, again, badId, unknown] = await Promise.all([
      pen(['--db', db]), pen(['list', '--all', '--json', '--db', db]), pen(['show', N1.toUpperCase(), '--db', db]),
      pen(['log', '--csv', '--db', db]), pen(['retire', C1, '--reason', 'again', '--db', db]), pen(['show', '12', '--db', db]),
      pen(['show', '2d00000000000fff', '--db', db]),
    ]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^parts registry .*pen\.db: 2 part\(s\), 1 retired or used not shown \(--all\); sterile storage 30 days, nosecone limit 200 cycles/);
    expect(list.stdout).toMatch(new RegExp(`${N1} +nosecone +ready +1 of 200 cycles, 199 left +sterile until (\\S+ \\S+ UTC)\\n {4}ready: sterile until \\1, after cycle 1 ` +
      '\\(134C-3min-prevac, sterilizer AC-1 load 12, .* UTC\\); biological indicator pending\\n'));
    expect(list.stdout).toMatch(new RegExp(`${N2} .*181 of 200 cycles, 19 left.*\\n.*\\n {4}WARNING: 181 of 200 sterilization cycles used \\(90 %\\): 19 left; order a replacement nosecone`));
    expect(list.stdout).not.toContain(C1);
    expect((JSON.parse(json.stdout) as PartStatus[]).map((part) => [part.id, part.condition, part.cyclesLeft, part.warnings.length])).toEqual([
      [N1, 'ready', 199, 0], [N2, 'ready', 19, 1], [C1, 'retired', null, 0],
    ]);

    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/first seen .* by reproc-1 on pen SIM-0001\nhistory:\n/);
    expect(show.stdout).toMatch(/registered: nosecone, lot 4711, expiry none by reproc-1 on pen SIM-0001\n/);
    expect(show.stdout).toMatch(/cycle 1: 134C-3min-prevac, sterilizer AC-1 load 12, chemical indicator pass, biological indicator pending when recorded by reproc-1 on pen SIM-0001/);

    expect(csv.code, csv.stderr).toBe(0);
    const rows = csv.stdout.split('\r\n');
    expect(rows[0]).toBe('date_time_utc,cycle_record,part_id,part_kind,lot,part_cycle_number,cycle_limit,cycle,temperature_c,hold_minutes,cycle_type,' +
      'sterilizer_id,load_number,chemical_indicator,biological_indicator,counts_as_sterile,operator,pen_serial');
    expect(rows.slice(1)).toEqual([
      expect.stringMatching(new RegExp(`^[^,]+Z,1,${N1},nosecone,4711,1,200,134C-3min-prevac,134,3,pre-vacuum,AC-1,12,pass,pending,true,reproc-1,SIM-0001$`)),
      expect.stringMatching(new RegExp(`^[^,]+Z,1,${N2},nosecone,4711,1,200,`)),
      '',
    ]);

    expect(again.code).toBe(5);
    expect(again.stderr).toMatch(new RegExp(`pen: part ${C1} was retired already, .*: dropped on the floor`));
    expect(badId.code).toBe(2);
    expect(badId.stderr).toMatch(/part id "12" is not 16 hex digits, the chip's ROM id/);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no part 2d00000000000fff on record in .*pen\.db/);
    const store = PenStore.open(db, new RealClock());
    expect(store.queryAudit({ command: 'retire_part' })).toMatchObject([{ operator: 'nurse-3', pen: null, arguments: { partId: C1, reason: 'dropped on the floor' } }]);
    store.close();
  });
});
