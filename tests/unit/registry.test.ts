// The parts registry on a real SQLite file and the injected clock: first sight, a failed chemical indicator, a
// biological indicator recall, shelf life, the cycle limit and its warning, tallies that went backwards, a reused
// cartridge id, retiring, the reprocessing log, and the catalogue and policy files.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../hardware/clock.ts';
import { pen as description } from '../../hardware/description.ts';
import { registerChainFunctions } from '../../src/store/chain.ts';
import { PenStore } from '../../src/store/store.ts';
import { checkCatalogue, checkPolicy, policy, sterilizationCycles, type Policy } from '../../src/sterilization/config.ts';
import {
  historyLines, RegistryRefusedError, SterilizationRegistry, UnknownPartError, type ChipReport,
} from '../../src/sterilization/registry.ts';
import { csvCell, reprocessingCsv } from '../../src/cli/parts.ts';

const dayMs = 86_400_000;
const startMs = Date.UTC(2026, 2, 2, 9, 0, 0);
const pen = { board: 'pen-r1a', buildId: '0000abcd', serial: 'SIM-0001' };
const actor = { pen, operator: 'reproc-1' };
const smallLimit: Policy = { ...policy, noseconeCycleLimit: 10, noseconeCycleLimitSource: 'test' };

let clock: VirtualClock;
let store: PenStore;
let registry: SterilizationRegistry;

beforeEach(() => {
  clock = new VirtualClock(startMs);
  store = PenStore.open(join(mkdtempSync(join(tmpdir(), 'pen-registry-')), 'pen.db'), clock);
  registry = new SterilizationRegistry(store, policy);
});
afterEach(() => store.close());

/** Moves the injected clock to this many ms after the start. */
const later = (ms: number): void => clock.advanceTo(clock.nowMs() + ms);
const nosecone = (id: string, sterilizationTally = 0, useTally = 0): ChipReport =>
  ({ kind: 'nosecone', id, lot: '4711', expiry: null, sterilizationTally, useTally });
const cartridge = (id: string, used = false): ChipReport => ({ kind: 'cartridge', id, lot: '88', expiry: '2026-12-31', used });
const cycle = (partIds: string[], loadNumber: number, chemicalIndicator: 'pass' | 'fail' = 'pass') =>
  ({ partIds, cycle: '134C-3min-prevac', sterilizerId: 'AUTOCLAVE-1', loadNumber, chemicalIndicator });

/** A session in which the needle ran with these parts fitted. */
function treat(parts: { cartridge?: string; nosecone?: string }): number {
  const id = store.startSession({
    target: 'test', board: pen.board, firmware: '0.1.0', buildId: pen.buildId, serial: pen.serial, depthMm: 1, strokesPerSecond: 100,
    plannedSeconds: 10, cartridgePartId: parts.cartridge ?? null, noseconePartId: parts.nosecone ?? null,
  });
  store.markNeedleStarted(id);
  store.endSession(id, 'completed', {});
  return id;
}

const N1 = '2d00000000000a01';
const N2 = '2d00000000000a02';
const C1 = '2d00000000000c01';

describe('the parts registry', () => {
  it('registers a part on first sight with the pen and operator, keeps its chip marks, and says what it needs', () => {
    const fitted = registry.checkFitted(nosecone('2D-00000000000A01'), actor);
    expect(fitted).toMatchObject({ registered: true, usable: false, check: { accepted: true, possiblyCloned: false } });
    expect(fitted.status).toMatchObject({ id: N1, condition: 'never_sterilized', ready: false, cyclesUsed: 0, cycleLimit: policy.noseconeCycleLimit });
    expect(store.parts.part(N1)).toMatchObject({
      kind: 'nosecone', lot: '4711', state: 'in_service', firstSeenAt: '2026-03-02T09:00:00.000Z', firstSeenBy: actor,
      chip: { sterilizationTally: 0, useTally: 0, used: null },
    });
    expect(registry.checkFitted(cartridge(C1), actor).status).toMatchObject({ condition: 'ready', sterileUntil: '2027-01-01T00:00:00.000Z' });
    expect(() => registry.status('2d00000000000fff')).toThrow(UnknownPartError);
    expect(() => registry.status('12')).toThrow(RegistryRefusedError);
  });

  it('records a cycle whose chemical indicator failed, and does not count it as sterile until the nosecone is reprocessed', { tags: ['REQ-NOSECONE-STERILE', 'REQ-STERILIZATION-RECORD'] }, () => {
    registry.checkFitted(nosecone(N1), actor);
    const failed = registry.recordCycle(cycle([N1], 1, 'fail'), actor);
    expect(failed.cycle).toMatchObject({ cycle: '134C-3min-prevac', chemicalIndicator: 'fail', biologicalIndicator: 'pending', operator: 'reproc-1', pen });
    expect(failed.notes.join()).toMatch(/chemical indicator failed: the cycle is recorded, and the parts are not sterile/);
    expect(failed.parts[0]).toMatchObject({ condition: 'indicator_failed', ready: false, cyclesUsed: 1, sterileUntil: null });
    later(3_600_000);
    const passed = registry.recordCycle(cycle([N1], 2), actor);
    expect(passed.parts[0]).toMatchObject({ condition: 'ready', cyclesUsed: 2, sterileUntil: new Date(startMs + 3_600_000 + 30 * dayMs).toISOString() });
    // The chip burnt a tally bit for the passed cycle only: that agrees with the records.
    expect(registry.checkFitted(nosecone(N1, 1, 0), actor)).toMatchObject({ usable: true, check: { accepted: true } });
    // Used, then it needs a cycle again.
    later(60_000);
    treat({ nosecone: N1 });
    expect(registry.status(N1)).toMatchObject({ condition: 'used_since_sterilized', ready: false });
  });

  it('recalls the whole load on a failed biological indicator, names the sessions since, and only reprocessing clears it', { tags: ['REQ-BI-RECALL'] }, () => {
    for (const id of [N1, N2]) registry.checkFitted(nosecone(id), actor);
    registry.recordCycle(cycle([N1, N2], 7), actor);
    expect(registry.status(N2).ready).toBe(true);
    later(60_000);
    const session = treat({ nosecone: N1 });
    later(2 * dayMs);
    const recall = registry.recordBiologicalResult('AUTOCLAVE-1', 7, 'fail', { pen: null, operator: 'lab-2' });
    expect(recall.parts.map((part) => [part.id, part.condition])).toEqual([[N1, 'used_since_sterilized'], [N2, 'load_recalled']]);
    expect(recall.sessionsAfter).toEqual([{ partId: N1, sessionId: session, at: new Date(startMs + 60_000).toISOString() }]);
    expect(store.queryAudit({ command: 'recall_load' })[0]).toMatchObject({ operator: 'lab-2', arguments: { sterilizerId: 'AUTOCLAVE-1', loadNumber: 7, partIds: [N1, N2] } });
    expect(registry.status(N2).text).toMatch(/recalled: the biological indicator of its last cycle 1 .* failed; every part of that load is not sterile until reprocessed/);
    expect(historyLines(registry.show(N1).history).map((line) => line.text)).toContain(
      `used in session ${session} on pen SIM-0001; AFTER cycle 1 of recalled load 7 (sterilizer AUTOCLAVE-1): follow up that session's client`);
    // A later pass for the same load does not undo the recall; a new cycle does.
    registry.recordBiologicalResult('AUTOCLAVE-1', 7, 'pass', actor);
    expect(registry.status(N2).condition).toBe('load_recalled');
    registry.recordCycle(cycle([N2], 8), actor);
    expect(registry.status(N2)).toMatchObject({ condition: 'ready', cyclesUsed: 2 });
    // A BI given with the cycle is the load's result too.
    const withBi = registry.recordCycle({ ...cycle([N1], 9), biologicalIndicator: 'fail' }, actor);
    expect(withBi.parts[0]?.condition).toBe('load_recalled');
    expect(withBi.notes.join()).toMatch(/load 9 is recalled/);
    expect(() => registry.recordBiologicalResult('AUTOCLAVE-1', 99, 'fail', actor)).toThrow(/no cycle of sterilizer AUTOCLAVE-1 load 99 is on record/);
  });

  it('ends sterile storage after the shelf life, on the injected clock', { tags: ['REQ-NOSECONE-SHELF-LIFE'] }, () => {
    registry.checkFitted(nosecone(N1), actor);
    registry.recordCycle(cycle([N1], 1), actor);
    const until = new Date(startMs + policy.sterileShelfLifeDays * dayMs).toISOString();
    expect(registry.status(N1)).toMatchObject({ condition: 'ready', sterileUntil: until });
    later(policy.sterileShelfLifeDays * dayMs - 1);
    expect(registry.status(N1).ready).toBe(true);
    later(1);
    expect(registry.status(N1)).toMatchObject({ condition: 'shelf_life_expired', ready: false, sterileUntil: null });
    expect(registry.status(N1).text).toBe('its sterile storage ended 2026-04-01 09:00 UTC, 30 days after its last cycle 1 (134C-3min-prevac, sterilizer AUTOCLAVE-1 load 1, 2026-03-02 09:00 UTC): reprocess it');
    registry.recordCycle(cycle([N1], 2), actor);
    expect(registry.status(N1).ready).toBe(true);
    // A cartridge's sterility ends with its expiry day.
    registry.checkFitted({ ...cartridge(C1), expiry: '2026-04-01' }, actor);
    clock.advanceTo(Date.UTC(2026, 3, 1, 23, 59, 59) - startMs);
    expect(registry.status(C1).condition).toBe('ready');
    later(1000);
    expect(registry.status(C1)).toMatchObject({ condition: 'expired', ready: false });
  });

  it('counts every cycle toward the limit: warns from 90 %, refuses at the limit; a chip that counts more is believed', { tags: ['REQ-NOSECONE-CYCLE-LIMIT'] }, () => {
    const small = new SterilizationRegistry(store, smallLimit);
    small.checkFitted(nosecone(N1), actor);
    for (let load = 1; load <= 8; load++) small.recordCycle(cycle([N1], load, load === 3 ? 'fail' : 'pass'), actor);
    expect(small.status(N1)).toMatchObject({ cyclesUsed: 8, cyclesLeft: 2, warnings: [] });
    const ninth = small.recordCycle(cycle([N1], 9), actor).parts[0];
    expect(ninth).toMatchObject({ ready: true, cyclesUsed: 9, cyclesLeft: 1 });
    expect(ninth?.warnings).toEqual(['9 of 10 sterilization cycles used (90 %): 1 left; order a replacement nosecone']);
    expect(small.recordCycle(cycle([N1], 10), actor).parts[0]).toMatchObject({ condition: 'at_cycle_limit', ready: false, cyclesLeft: 0 });
    expect(small.status(N1).text).toBe('at its limit: 10 of 10 sterilization cycles (test); retire it');
    expect(() => small.recordCycle(cycle([N1], 11), actor)).toThrow(/at its limit: 10 of 10 sterilization cycles/);
    // Cycles recorded elsewhere: the chip's tally counts.
    small.checkFitted(nosecone(N2, 9, 0), actor);
    expect(small.status(N2)).toMatchObject({ cyclesUsed: 9, warnings: [expect.stringMatching(/^9 of 10/)] });
    expect(small.checkFitted(nosecone(N2, 10, 0), actor).check.notes.join()).toMatch(/its chip counts 10 sterilizations, the records 0/);
    expect(small.status(N2).condition).toBe('at_cycle_limit');
  });

  it('refuses and flags a nosecone whose tallies went backwards, audited; it stays refused', { tags: ['REQ-PART-CLONE-DETECTION'] }, () => {
    registry.checkFitted(nosecone(N1), actor);
    registry.recordCycle(cycle([N1], 1), actor);
    expect(registry.checkFitted(nosecone(N1, 1, 0), actor).usable).toBe(true);
    later(60_000);
    treat({ nosecone: N1 });
    later(60_000);
    registry.recordCycle(cycle([N1], 2), actor);
    expect(registry.checkFitted(nosecone(N1, 2, 1), actor).usable).toBe(true);
    const back = registry.checkFitted(nosecone(N1, 1, 1), actor);
    expect(back).toMatchObject({ usable: false, check: { accepted: false, possiblyCloned: true } });
    expect(back.check.problems).toEqual([expect.stringMatching(/^part 2d00000000000a01 possibly cloned: its sterilization tally went backwards: 1, read 2 on /)]);
    expect(back.status).toMatchObject({ state: 'flagged', condition: 'flagged', ready: false });
    expect(store.queryAudit({ command: 'flag_part' })).toMatchObject([{ operator: 'reproc-1', pen, arguments: { partId: N1 } }]);
    expect(registry.checkFitted(nosecone(N1, 2, 1), actor)).toMatchObject({ usable: false, check: { possiblyCloned: false } });
    expect(() => registry.recordCycle(cycle([N1], 3), actor)).toThrow(/is flagged: possibly cloned/);
    // The records count more uses than the chip: the same verdict, from the sessions.
    registry.checkFitted(nosecone(N2), actor);
    registry.recordCycle(cycle([N2], 4), actor);
    treat({ nosecone: N2 });
    expect(registry.checkFitted(nosecone(N2, 1, 0), actor).check.problems.join())
      .toMatch(/possibly cloned: its use tally is 0, but the records hold 1 sessions with it/);
  });

  it('refuses and flags a cartridge id already used in a session that reads unused, or a part whose identity changed', { tags: ['REQ-PART-CLONE-DETECTION', 'REQ-CARTRIDGE-SINGLE-USE'] }, () => {
    expect(registry.checkFitted(cartridge(C1), actor).usable).toBe(true);
    const session = treat({ cartridge: C1 });
    expect(registry.status(C1)).toMatchObject({ condition: 'used', ready: false });
    // Its own chip, with the used mark the firmware burnt: used, not a clone.
    expect(registry.checkFitted(cartridge(C1, true), actor)).toMatchObject({ usable: false, check: { accepted: true }, status: { condition: 'used' } });
    const clone = registry.checkFitted(cartridge(C1, false), actor);
    expect(clone).toMatchObject({ usable: false, check: { possiblyCloned: true }, status: { state: 'flagged' } });
    expect(clone.check.problems.join()).toMatch(new RegExp(`possibly cloned: its chip reads unused, but it was used in session ${session} \\(.*, pen SIM-0001\\)`));
    // A used mark seen before and gone now, with no session on record.
    const C2 = '2d00000000000c02';
    registry.checkFitted(cartridge(C2, true), actor);
    expect(registry.checkFitted(cartridge(C2, false), actor).check.problems.join()).toMatch(/reads unused, but read used on .*: the used mark cannot be undone/);
    // Another lot under a known id.
    registry.checkFitted(nosecone(N1), actor);
    expect(registry.checkFitted({ ...nosecone(N1), lot: '9999' }, actor).check.problems.join()).toMatch(/its chip says lot 9999, the records lot 4711/);
  });

  it('retires a part with its reason, audited; refuses it again, and refuses to reprocess it or a cartridge', { tags: ['REQ-STERILIZATION-RECORD', 'REQ-CARTRIDGE-SINGLE-USE'] }, () => {
    registry.checkFitted(nosecone(N1), actor);
    registry.checkFitted(cartridge(C1), actor);
    expect(() => registry.recordCycle(cycle([C1], 1), actor)).toThrow(/is a cartridge: single-use cartridges are sterilized by their maker, never reprocessed/);
    expect(() => registry.retire(N1, ' ', actor)).toThrow(RegistryRefusedError);
    const retired = registry.retire(N1, 'cracked tip', { pen: null, operator: 'nurse-3' });
    expect(retired).toMatchObject({ state: 'retired', condition: 'retired', ready: false });
    expect(store.queryAudit({ command: 'retire_part' })).toMatchObject([{ operator: 'nurse-3', pen: null, arguments: { partId: N1, reason: 'cracked tip', previousState: 'in_service' } }]);
    expect(() => registry.retire(N1, 'again', actor)).toThrow(/was retired already, .*: cracked tip/);
    expect(() => registry.recordCycle(cycle([N1], 1), actor)).toThrow(/is retired: cracked tip; it is not reprocessed/);
    expect(registry.checkFitted(nosecone(N1), actor)).toMatchObject({ usable: false, check: { possiblyCloned: false } });
    expect(registry.show(N1).history.events.map((event) => event.event)).toEqual(['registered', 'retired']);
    expect(() => registry.retire('2d00000000000fff', 'lost', actor)).toThrow(UnknownPartError);
  });

  it('writes all of a cycle or nothing: a load with one part it refuses records no cycle for the others', { tags: ['REQ-STERILIZATION-RECORD', 'REQ-RECORDS-DURABLE'] }, () => {
    registry.checkFitted(nosecone(N1), actor);
    expect(() => registry.recordCycle(cycle([N1, '2d00000000000fff'], 1), actor)).toThrow(UnknownPartError);
    expect(store.parts.cycles()).toEqual([]);
    expect(registry.status(N1).condition).toBe('never_sterilized');
  });

  it('keeps the reprocessing log: one row per part per cycle, numbered, with the load\'s indicator as it stands; CSV-safe', { tags: ['REQ-STERILIZATION-RECORD'] }, () => {
    for (const id of [N1, N2]) registry.checkFitted(nosecone(id), actor);
    registry.recordCycle(cycle([N1, N2], 1), actor);
    later(dayMs);
    registry.recordCycle({ ...cycle([N1], 2, 'fail'), cycle: '134C-18min-prion', sterilizerId: 'AC-2' }, { pen: null, operator: '=cmd()' });
    registry.recordBiologicalResult('AUTOCLAVE-1', 1, 'fail', actor);
    const rows = registry.reprocessingLog();
    expect(rows.map((row) => [row.partId, row.partCycleNumber, row.cycle, row.loadNumber, row.chemicalIndicator, row.biologicalIndicator, row.sterilizing])).toEqual([
      [N1, 1, '134C-3min-prevac', 1, 'pass', 'fail', false], [N2, 1, '134C-3min-prevac', 1, 'pass', 'fail', false],
      [N1, 2, '134C-18min-prion', 2, 'fail', 'pending', false],
    ]);
    expect(rows[2]).toMatchObject({ temperatureC: 134, holdMinutes: 18, cycleType: 'prion', penSerial: null, operator: '=cmd()' });
    expect(registry.reprocessingLog({ partId: N1, since: new Date(startMs + 1).toISOString() }).map((row) => row.partCycleNumber)).toEqual([2]);
    const csv = reprocessingCsv(rows).split('\r\n');
    expect(csv[0]).toMatch(/^date_time_utc,cycle_record,part_id,part_kind,lot,part_cycle_number,cycle_limit,cycle,temperature_c,hold_minutes,/);
    expect(csv[1]).toBe(`2026-03-02T09:00:00.000Z,1,${N1},nosecone,4711,1,${policy.noseconeCycleLimit},134C-3min-prevac,134,3,pre-vacuum,AUTOCLAVE-1,1,pass,fail,false,reproc-1,SIM-0001`);
    expect(csv[3]).toMatch(/,'=cmd\(\),$/);
    expect(csv).toHaveLength(5);  // header, three rows, and the final line end
    expect(csvCell('a "b", c')).toBe('"a ""b"", c"');
  });

  it('keeps cycles, results and part events append-only, and never deletes a part', { tags: ['REQ-STERILIZATION-RECORD'] }, () => {
    registry.checkFitted(nosecone(N1), actor);
    registry.recordCycle(cycle([N1], 1), actor);
    const raw = new Database(store.path);
    registerChainFunctions(raw);  // as the application's own connections have it (without, the chain's triggers refuse first)
    expect(() => raw.prepare("UPDATE sterilization_cycles SET chemical_indicator = 'pass'").run()).toThrow('sterilization records are append-only');
    expect(() => raw.prepare('DELETE FROM sterilization_cycle_parts').run()).toThrow('sterilization records are append-only');
    expect(() => raw.prepare("UPDATE part_events SET event = 'x'").run()).toThrow('part events are append-only');
    expect(() => raw.prepare('DELETE FROM parts').run()).toThrow('parts are retired, never deleted');
    raw.close();
  });
});

describe('the catalogue and the policy', () => {
  it('has the four steam cycles, the shelf life and spacing of config/policy.json, and the manufacturer\'s nosecone limit', { tags: ['REQ-STERILIZATION-RECORD'] }, () => {
    expect(sterilizationCycles.map((c) => [c.name, c.temperatureC, c.holdMinutes, c.type])).toEqual([
      ['121C-30min-gravity', 121, 30, 'gravity'], ['132C-4min-prevac', 132, 4, 'pre-vacuum'], ['134C-3min-prevac', 134, 3, 'pre-vacuum'],
      ['134C-18min-prion', 134, 18, 'prion'],
    ]);
    expect(policy).toMatchObject({ sterileShelfLifeDays: 30, cycleLimitWarningPercent: 90, clientSpacingDays: 42, noseconeCycleLimit: 200 });
    const stated = (description as { idChips?: { noseconeCycleLimit?: number } }).idChips?.noseconeCycleLimit;
    expect(policy.noseconeCycleLimitSource).toBe(stated === undefined ? 'config/policy.json noseconeCycleLimit' : 'hardware/pen.json idChips.noseconeCycleLimit');
    expect(checkPolicy({ sterileShelfLifeDays: 30, noseconeCycleLimit: 150, cycleLimitWarningPercent: 90, clientSpacingDays: 42 }, {}))
      .toMatchObject({ noseconeCycleLimit: 150, noseconeCycleLimitSource: 'config/policy.json noseconeCycleLimit' });
    expect(() => checkPolicy({ sterileShelfLifeDays: 0, noseconeCycleLimit: 150, cycleLimitWarningPercent: 90, clientSpacingDays: 42 }, {}))
      .toThrow('config/policy.json: sterileShelfLifeDays must be a whole number 1–3650');
    expect(() => checkCatalogue([...sterilizationCycles, sterilizationCycles[0]])).toThrow(/cycle 5: 121C-30min-gravity is named twice/);
    expect(() => registry.recordCycle({ ...cycle([N1], 1), cycle: '121C-15min' }, actor)).toThrow(/no sterilization cycle "121C-15min": the catalogue has 121C-30min-gravity/);
  });
});
