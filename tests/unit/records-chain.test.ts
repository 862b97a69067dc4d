// The records' tamper-evident trail (src/store/chain.ts): a store written through the application verifies; rows and
// chain entries edited, deleted, added or reordered behind its back (a raw SQLite connection, as a person with the
// sqlite3 shell has) are named; an upgraded store verifies from its genesis entries; backups and read-only opens; the
// started-sessions getter.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../hardware/clock.ts';
import { chainedTables, entryHash, genesisHash } from '../../src/store/chain.ts';
import type { CalibrationInput } from '../../src/store/calibrations.ts';
import { PenStore, type PenRecordIdentity } from '../../src/store/store.ts';

const tags = ['REQ-AUDIT-LOG', 'REQ-RECORDS-DURABLE', 'REQ-RECORDS-TAMPER-EVIDENT'];
const freshPath = (): string => join(mkdtempSync(join(tmpdir(), 'pen-chain-')), 'pen.db');
const startMs = Date.UTC(2026, 10, 26, 9, 0, 0);
const pen: PenRecordIdentity = { board: 'pen-r1a', buildId: '0000abcd', serial: 'PN-0001' };
const N1 = '2d00000000000a01';
const C1 = '2d00000000000c01';

const calibration: CalibrationInput = {
  kind: 'depth', pen, technician: 'tech-1', gaugeId: 'G-7', gaugeDue: '2027-01-01', verdict: 'accepted', reason: null,
  readings: [{ pointMm: 1, gaugeMm: 1.002 }], fit: { slope: 1.001 }, verification: { errorsUm: [3, -2] },
  oldValues: { stepsPerMm: 1600, zeroOffsetMm: 0, sensorZeroMv: 500, sensorMvPerMm: 800 },
  newValues: { stepsPerMm: 1601.6, zeroOffsetMm: 0.01, sensorZeroMv: 500, sensorMvPerMm: 800 }, needleSeconds: 3600,
};

interface Written { readonly store: PenStore; readonly clock: VirtualClock; readonly writes: number; readonly auditIds: number[]; readonly faultId: number }

/** A store written through the application only: every kind of record, each write counted (one chain entry per row written). */
function writeThroughApplication(path = freshPath()): Written {
  const clock = new VirtualClock(startMs);
  const store = PenStore.open(path, clock);
  let writes = 0;
  const tick = (rows: number): void => { writes += rows; clock.advanceTo(clock.nowMs() + 1000); };
  const actor = { pen, operator: 'reproc-1' };
  store.parts.register({ id: N1, kind: 'nosecone', lot: '4711', expiry: null }, actor); tick(2);        // the part and its event
  store.parts.register({ id: C1, kind: 'cartridge', lot: '88', expiry: '2027-12-31' }, actor); tick(2);
  store.parts.chipSeen(N1, { used: null, sterilizationTally: 1, useTally: 0 }); tick(1);                 // the part, updated
  store.parts.recordCycle({ cycle: '134C-3min-prevac', sterilizerId: 'AC-1', loadNumber: 7, chemicalIndicator: 'pass', biologicalIndicator: 'pass',
    partIds: [N1] }, actor); tick(3);                                                                      // cycle, its part, the load's result
  const session = store.startSession({ target: 'tcp://pen', board: pen.board, firmware: '0.1.0', buildId: pen.buildId, serial: pen.serial,
    depthMm: 1.25, strokesPerSecond: 100, plannedSeconds: 60, clientRef: 'C-1042', cartridgePartId: C1, noseconePartId: N1 }); tick(1);
  store.markNeedleStarted(session); tick(1);
  const auditIds = [
    store.audit(session, 'arm', {}, 'ok', { pen, operator: 'ann' }),
    store.audit(null, 'set_depth_calibration', { old: 1600, new: 1601.6 }, 'ok', { pen, operator: 'tech-1', role: 'technician' }),
    store.audit(null, 'provision', { serial: 'PN-0001' }, 'ok', { pen, operator: 'eng-1', role: 'engineer' }),
  ];
  tick(3);
  const faultId = store.recordFault(session, 'pen', 'estop', 'the emergency stop loop is open', { depthMm: 1.25 }, pen); tick(1);
  store.endSession(session, 'faulted', { strokes: 1234 }); tick(1);
  store.parts.setState(C1, 'retired', 'single use', actor); tick(2);                                     // the part updated, its event
  store.calibrations.add(calibration); tick(1);
  store.audit(null, 'home', {}, 'ok', { pen, operator: 'ann' }); tick(1);
  return { store, clock, writes, auditIds, faultId };
}

/** What a person with the sqlite3 shell has: a plain connection, without the application's SQL functions. */
function attacker(path: string): Database.Database {
  return new Database(path);
}

/** Drops every trigger, as a person must before editing records (append-only triggers, chain triggers). */
function dropTriggers(raw: Database.Database): void {
  const triggers = raw.prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger'").all() as { name: string }[];
  for (const { name } of triggers) raw.exec(`DROP TRIGGER ${name}`);
}

/** The seq of the latest chain entry of a row. */
function latestSeq(raw: Database.Database, table: string, rowId: string): number {
  return (raw.prepare('SELECT max(seq) AS seq FROM record_chain WHERE tbl = ? AND row_id = ?').get(table, rowId) as { seq: number }).seq;
}

describe('the tamper-evident trail', () => {
  it('verifies a store written through the application, one chain entry per row written, with who, what, when and which pen', { tags }, () => {
    const { store, writes, auditIds } = writeThroughApplication();
    const verdict = store.verify();
    expect(verdict).toMatchObject({ ok: true, entries: writes, firstProblem: null, problems: [], problemCount: 0 });
    expect(verdict.headHash).toMatch(/^[0-9a-f]{64}$/);
    expect(store.chainHead()).toEqual({ entries: writes, headHash: verdict.headHash });
    const raw = new Database(store.path, { readonly: true });
    // Every current row is checked, and each entry's content names every column of its table (none left out of the chain).
    const rows = chainedTables.reduce((sum, table) => sum + (raw.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n, 0);
    expect(verdict.rowsChecked).toBe(rows);
    for (const table of chainedTables) {
      const columns = (raw.prepare(`SELECT name FROM pragma_table_info('${table}')`).all() as { name: string }[]).map((c) => c.name);
      const entry = raw.prepare('SELECT content FROM record_chain WHERE tbl = ? ORDER BY seq DESC LIMIT 1').get(table) as { content: string };
      expect(Object.keys(JSON.parse(entry.content) as object), table).toEqual(columns);
    }
    // The entry of an audited service command: the role, the operator, the pen, the time of the store's clock.
    const entry = raw.prepare("SELECT * FROM record_chain WHERE tbl = 'audit_log' AND row_id = ?").get(String(auditIds[1])) as
      { seq: number; at: string; action: string; content: string; prev_hash: string; hash: string };
    expect(entry.action).toBe('insert');
    expect(JSON.parse(entry.content)).toMatchObject({ command: 'set_depth_calibration', role: 'technician', operator: 'tech-1', pen_serial: 'PN-0001',
      pen_build: '0000abcd', pen_board: 'pen-r1a' });
    expect(entry.at).toBe((JSON.parse(entry.content) as { at: string }).at);
    // The first entry starts from the genesis hash; sessions and parts are chained again as they are updated.
    expect((raw.prepare('SELECT prev_hash FROM record_chain WHERE seq = 1').get() as { prev_hash: string }).prev_hash).toBe(genesisHash);
    expect(raw.prepare("SELECT action FROM record_chain WHERE tbl = 'sessions' ORDER BY seq").all()).toEqual(
      [{ action: 'insert' }, { action: 'update' }, { action: 'update' }]);
    raw.close();
    expect(store.queryAudit({ command: 'provision' })[0]).toMatchObject({ role: 'engineer', operator: 'eng-1' });
    store.close();
  });

  it('refuses a write through a plain sqlite3 connection: the chain\'s function is missing, the append-only triggers hold', { tags }, () => {
    const { store } = writeThroughApplication();
    const raw = attacker(store.path);
    expect(() => raw.prepare("INSERT INTO audit_log (at, command, arguments, result) VALUES ('2026-01-01T00:00:00.000Z', 'arm', '{}', 'ok')").run())
      .toThrow(/no such function: pen_/);
    expect(() => raw.prepare("UPDATE sessions SET outcome = 'completed'").run()).toThrow(/no such function: pen_/);
    expect(() => raw.prepare("UPDATE audit_log SET result = 'forged'").run()).toThrow(/no such function: pen_|append-only/);
    expect(() => raw.prepare('DELETE FROM audit_log').run()).toThrow('the audit log is append-only');
    expect(() => raw.prepare('DELETE FROM record_chain').run()).toThrow('the record chain is append-only');
    expect(() => raw.prepare("UPDATE record_chain SET content = '{}'").run()).toThrow('the record chain is append-only');
    raw.close();
    expect(store.verify().ok).toBe(true);
    store.close();
  });

  describe('behind the application\'s back, with the triggers dropped', () => {
    it('names an edited audit row, with the column and both values', { tags }, () => {
      const { store, auditIds } = writeThroughApplication();
      const raw = attacker(store.path);
      dropTriggers(raw);
      const id = String(auditIds[0]);
      const seq = latestSeq(raw, 'audit_log', id);
      raw.prepare("UPDATE audit_log SET result = 'refused: forged' WHERE id = ?").run(auditIds[0]);
      raw.close();
      const verdict = store.verify();
      expect(verdict.ok).toBe(false);
      expect(verdict.firstProblem).toMatchObject({ seq, table: 'audit_log', rowId: id });
      expect(verdict.firstProblem?.problem).toContain('edited behind the application\'s back');
      expect(verdict.firstProblem?.problem).toContain('result is "refused: forged", was "ok"');
      expect(verdict.problemCount).toBe(1);
      store.close();
    });

    it('names a deleted fault row', { tags }, () => {
      const { store, faultId } = writeThroughApplication();
      const raw = attacker(store.path);
      dropTriggers(raw);
      const seq = latestSeq(raw, 'faults', String(faultId));
      raw.prepare('DELETE FROM faults WHERE id = ?').run(faultId);
      raw.close();
      const verdict = store.verify();
      expect(verdict.firstProblem).toMatchObject({ seq, table: 'faults', rowId: String(faultId) });
      expect(verdict.firstProblem?.problem).toContain('deleted behind the application\'s back');
      expect(verdict.problemCount).toBe(1);
      store.close();
    });

    it('names an added audit row', { tags }, () => {
      const { store } = writeThroughApplication();
      const raw = attacker(store.path);
      dropTriggers(raw);
      const added = raw.prepare("INSERT INTO audit_log (at, command, arguments, result, operator, role) VALUES ('2026-11-26T09:00:05.000Z', 'clear_fault', '{}', 'ok', 'ann', 'engineer')").run();
      raw.close();
      const verdict = store.verify();
      expect(verdict.firstProblem).toMatchObject({ seq: null, table: 'audit_log', rowId: String(added.lastInsertRowid) });
      expect(verdict.firstProblem?.problem).toContain('added behind the application\'s back');
      expect(verdict.problemCount).toBe(1);
      store.close();
    });

    it('names both rows of two audit entries swapped (reordered), the earlier first', { tags }, () => {
      const { store, auditIds } = writeThroughApplication();
      const [first, second] = auditIds as [number, number];
      const raw = attacker(store.path);
      dropTriggers(raw);
      const columns = 'at, session_id, command, arguments, result, pen_board, pen_build, pen_serial, operator, role';
      const row = (id: number): unknown[] => Object.values(raw.prepare(`SELECT ${columns} FROM audit_log WHERE id = ?`).get(id) as object);
      const update = raw.prepare(`UPDATE audit_log SET (${columns}) = (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) WHERE id = ?`);
      const [a, b] = [row(first), row(second)];
      raw.transaction(() => { update.run(...b, first); update.run(...a, second); })();
      raw.close();
      const verdict = store.verify();
      expect(verdict.problems.map((p) => [p.table, p.rowId])).toEqual([['audit_log', String(first)], ['audit_log', String(second)]]);
      expect(verdict.firstProblem?.problem).toContain('command is "set_depth_calibration", was "arm"');
      store.close();
    });

    it('names a chain entry whose content was edited, at its seq', { tags }, () => {
      const { store, auditIds } = writeThroughApplication();
      const raw = attacker(store.path);
      dropTriggers(raw);
      const id = String(auditIds[0]);
      const seq = latestSeq(raw, 'audit_log', id);
      raw.prepare("UPDATE record_chain SET content = replace(content, '\"result\":\"ok\"', '\"result\":\"refused\"') WHERE seq = ?").run(seq);
      raw.close();
      const verdict = store.verify();
      expect(verdict.firstProblem).toMatchObject({ seq, table: 'audit_log', rowId: id });
      expect(verdict.firstProblem?.problem).toContain(`entry ${seq} (audit_log row ${id}) does not match its own hash`);
      store.close();
    });

    it('names the gap a deleted chain entry leaves', { tags }, () => {
      const { store, faultId } = writeThroughApplication();
      const raw = attacker(store.path);
      dropTriggers(raw);
      const seq = latestSeq(raw, 'faults', String(faultId));
      raw.prepare('DELETE FROM record_chain WHERE seq = ?').run(seq);
      raw.close();
      const verdict = store.verify();
      expect(verdict.firstProblem).toMatchObject({ seq, table: 'record_chain', rowId: String(seq) });
      expect(verdict.firstProblem?.problem).toContain(`jumps from entry ${seq - 1} to ${seq + 1}: entry ${seq} was deleted`);
      // The fault row is no longer in any entry either.
      expect(verdict.problems).toContainEqual(expect.objectContaining({ seq: null, table: 'faults', rowId: String(faultId) }));
      store.close();
    });

    it('names the next link when a forger rewrites one entry and its hash to match an edited row', { tags }, () => {
      const { store, auditIds } = writeThroughApplication();
      const raw = attacker(store.path);
      dropTriggers(raw);
      const id = auditIds[0] as number;
      const seq = latestSeq(raw, 'audit_log', String(id));
      raw.prepare("UPDATE audit_log SET result = 'refused: forged' WHERE id = ?").run(id);
      const entry = raw.prepare('SELECT * FROM record_chain WHERE seq = ?').get(seq) as
        { seq: number; at: string; tbl: string; row_id: string; action: string; content: string; prev_hash: string };
      const content = entry.content.replace('"result":"ok"', '"result":"refused: forged"');
      raw.prepare('UPDATE record_chain SET content = ?, hash = ? WHERE seq = ?')
        .run(content, entryHash(entry.seq, entry.at, entry.tbl, entry.row_id, entry.action, entry.prev_hash, content), seq);
      raw.close();
      const verdict = store.verify();
      expect(verdict.firstProblem).toMatchObject({ seq: seq + 1 });
      expect(verdict.firstProblem?.problem).toContain(`does not link to entry ${seq}`);
      expect(verdict.problemCount).toBe(1);
      store.close();
    });
  });

  it('upgrades a version 5 store with rows to version 6, chaining every row already there, and verifies', { tags }, () => {
    const path = freshPath();
    const { store: written } = writeThroughApplication(path);
    written.close();
    // Back to version 5 as it was in the field: no ledger, no chain triggers, no role column.
    const raw = new Database(path);
    dropTriggers(raw);
    raw.exec('DROP TABLE record_chain; ALTER TABLE audit_log DROP COLUMN role;');
    raw.pragma('user_version = 5');
    const rows = chainedTables.map((table) => (raw.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n);
    raw.close();
    const clock = new VirtualClock(Date.UTC(2026, 11, 1, 8, 0, 0));
    const store = PenStore.open(path, clock);
    expect(store.schemaVersion).toBe(6);
    const total = rows.reduce((sum, n) => sum + n, 0);
    expect(store.verify()).toMatchObject({ ok: true, entries: total, rowsChecked: total });
    const check = new Database(path, { readonly: true });
    // Table by table in rowid order, stamped with the upgrade's time.
    const genesis = check.prepare('SELECT tbl, action, at FROM record_chain ORDER BY seq').all() as { tbl: string; action: string; at: string }[];
    expect(genesis.map((entry) => entry.tbl)).toEqual(chainedTables.flatMap((table, i) => Array<string>(rows[i] ?? 0).fill(table)));
    expect(new Set(genesis.map((entry) => `${entry.action} ${entry.at}`))).toEqual(new Set(['insert 2026-12-01T08:00:00.000Z']));
    check.close();
    expect(store.auditLog()[0]).toMatchObject({ command: 'home', role: null });
    // Writing on from there chains on.
    store.audit(null, 'stop', {}, 'ok', { pen, operator: 'ann', role: null });
    expect(store.verify()).toMatchObject({ ok: true, entries: total + 1 });
    store.close();
  });

  it('backs up a live store to a snapshot that verifies on its own, read-only; refuses to read a store of another schema version', { tags }, async () => {
    const { store } = writeThroughApplication();
    const backup = join(mkdtempSync(join(tmpdir(), 'pen-backup-')), 'copy.db');
    const progress: [number, number][] = [];
    await store.backupTo(backup, (done, total) => progress.push([done, total]));
    expect(progress.at(-1)?.[0]).toBe(progress.at(-1)?.[1]);
    const head = store.chainHead();
    store.audit(null, 'home', {}, 'ok', { pen, operator: 'ann' });  // after the snapshot: not in it
    store.close();
    const copy = PenStore.openReadOnly(backup, new VirtualClock());
    expect(copy.schemaVersion).toBe(6);
    expect(copy.verify()).toMatchObject({ ok: true, entries: head.entries, headHash: head.headHash });
    expect(() => copy.audit(null, 'arm', {}, 'ok')).toThrow(/readonly/);
    copy.close();
    const old = new Database(backup);
    old.pragma('user_version = 5');
    old.close();
    expect(() => PenStore.openReadOnly(backup, new VirtualClock())).toThrow(/schema version 5, this pen reads version 6/);
  });
});

describe('started sessions', () => {
  it('are listed newest first, with every column, filtered by time, pen and client', { tags: ['REQ-RECORDS-DURABLE'] }, () => {
    const clock = new VirtualClock(startMs);
    const store = PenStore.open(':memory:', clock);
    const start = (serial: string | null, clientRef: string | null): number =>
      store.startSession({ target: 'tcp://pen', board: 'pen-r1a', firmware: '0.1.0', buildId: 'aaaa0001', serial, depthMm: 1, strokesPerSecond: 100,
        plannedSeconds: 30, clientRef, cartridgePartId: null, noseconePartId: null });
    const first = start('SN-1', 'C-1');
    store.markNeedleStarted(first);
    store.endSession(first, 'completed', { strokes: 3000 });
    clock.advanceTo(60_000);
    const second = start('SN-2', 'C-2');
    clock.advanceTo(120_000);
    const third = start('SN-1', null);
    const ids = (filter: Parameters<PenStore['sessions']>[0]): number[] => store.sessions(filter).map((session) => session.id);
    expect(ids({})).toEqual([third, second, first]);
    expect(ids({ limit: 2 })).toEqual([third, second]);
    expect(ids({ pen: 'SN-1' })).toEqual([third, first]);
    expect(ids({ pen: 'aaaa0001' })).toEqual([third, second, first]);
    expect(ids({ clientRef: 'C-2' })).toEqual([second]);
    expect(ids({ since: '2026-11-26T09:01:00.000Z' })).toEqual([third, second]);
    expect(ids({ until: '2026-11-26T09:01:00.000Z' })).toEqual([first]);
    expect(store.sessions({ clientRef: 'C-1' })).toEqual([{
      id: first, startedAt: '2026-11-26T09:00:00.000Z', endedAt: '2026-11-26T09:00:00.000Z', target: 'tcp://pen', board: 'pen-r1a', firmware: '0.1.0',
      penBuild: 'aaaa0001', penSerial: 'SN-1', depthMm: 1, strokesPerSecond: 100, plannedSeconds: 30, outcome: 'completed', summary: { strokes: 3000 },
      clientRef: 'C-1', needleStartedAt: '2026-11-26T09:00:00.000Z', cartridgePartId: null, noseconePartId: null,
    }]);
    expect(store.sessions({ pen: 'SN-2' })[0]).toMatchObject({ endedAt: null, outcome: null, summary: null, needleStartedAt: null });
    store.close();
  });
});
