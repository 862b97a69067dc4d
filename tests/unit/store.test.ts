// The SQLite store: schema migrations, WAL with synchronous writes, the append-only audit log, and a kill -9 mid-write.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../hardware/clock.ts';
import { registerChainFunctions } from '../../src/store/chain.ts';
import { PenStore } from '../../src/store/store.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const freshPath = (): string => join(mkdtempSync(join(tmpdir(), 'pen-store-')), 'pen.db');

// The schema as version 1 wrote it (stores in the field): migrations must carry these forward.
const version1Schema = `
  CREATE TABLE sessions (id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, ended_at TEXT, target TEXT NOT NULL, board TEXT NOT NULL,
    firmware TEXT NOT NULL, depth_mm REAL, strokes_per_second INTEGER, planned_seconds REAL, outcome TEXT, summary TEXT);
  CREATE TABLE faults (id INTEGER PRIMARY KEY, session_id INTEGER REFERENCES sessions(id), at TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('pen', 'host')), code TEXT NOT NULL, text TEXT NOT NULL, context TEXT NOT NULL);
  CREATE TABLE audit_log (id INTEGER PRIMARY KEY, at TEXT NOT NULL, session_id INTEGER REFERENCES sessions(id), command TEXT NOT NULL,
    arguments TEXT NOT NULL, result TEXT NOT NULL);
  CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
  CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;`;

describe('the store', () => {
  it('creates its schema once, in WAL mode with full synchronous writes, and reopens at the same version', { tags: ['REQ-RECORDS-DURABLE'] }, () => {
    const path = freshPath();
    const store = PenStore.open(path, new VirtualClock());
    expect(store.schemaVersion).toBe(6);
    store.close();
    const raw = new Database(path);
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();
    const again = PenStore.open(path, new VirtualClock());
    expect(again.schemaVersion).toBe(6);
    expect(again.integrityCheck()).toBe('ok');
    again.close();
  });

  it('keeps the audit log append-only', { tags: ['REQ-AUDIT-LOG'] }, () => {
    const store = PenStore.open(freshPath(), new VirtualClock());
    store.audit(null, 'arm', {}, 'ok');
    const raw = new Database(store.path);
    registerChainFunctions(raw);  // as the application's own connections have it (without, the chain's triggers refuse first)
    expect(() => raw.prepare("UPDATE audit_log SET result = 'forged'").run()).toThrow('the audit log is append-only');
    expect(() => raw.prepare('DELETE FROM audit_log').run()).toThrow('the audit log is append-only');
    raw.close();
    expect(store.auditLog()).toMatchObject([{ command: 'arm', result: 'ok' }]);
    store.close();
  });

  it('upgrades a version 1 store in place, keeping its rows, with pen and operator unknown on them', { tags: ['REQ-RECORDS-DURABLE'] }, () => {
    const path = freshPath();
    const raw = new Database(path);
    raw.exec(version1Schema);
    raw.pragma('user_version = 1');
    raw.prepare("INSERT INTO audit_log (at, session_id, command, arguments, result) VALUES ('2026-01-01T00:00:00.000Z', NULL, 'home', '{}', 'ok')").run();
    raw.prepare("INSERT INTO sessions (started_at, target, board, firmware) VALUES ('2026-01-01T00:00:00.000Z', 't', 'pen-r1a', '0.1.0')").run();
    raw.close();
    const store = PenStore.open(path, new VirtualClock());
    expect(store.schemaVersion).toBe(6);
    // A session from before: kept, with no client and no parts, and never counted as a treatment.
    expect(store.sessionPen(1)).toEqual({ board: 'pen-r1a', buildId: null, serial: null });
    expect(store.lastClientTreatment('C-1042')).toBeNull();
    expect(store.auditLog()).toMatchObject([{ command: 'home', pen: null, operator: null }]);
    store.audit(null, 'stop', {}, 'ok', { pen: { board: 'pen-r1a', buildId: '0000abcd', serial: null }, operator: 'ann' });
    expect(store.auditLog()[0]).toMatchObject({ command: 'stop', pen: { board: 'pen-r1a', buildId: '0000abcd', serial: null }, operator: 'ann' });
    const check = new Database(path);
    registerChainFunctions(check);
    expect(() => check.prepare("UPDATE audit_log SET operator = 'forged'").run()).toThrow('the audit log is append-only');
    check.close();
    store.close();
  });

  it('keeps the pen\'s build and serial on sessions, and finds the newest entry of a command for one pen', { tags: ['REQ-RECORDS-DURABLE'] }, () => {
    const store = PenStore.open(freshPath(), new VirtualClock());
    const provisioned = { board: 'pen-r1a', buildId: '0000abcd', serial: 'PN-0001' };
    const blank = { board: 'pen-r1a', buildId: '0000abcd', serial: null };
    const session = store.startSession({ target: 't', board: 'pen-r1a', firmware: '0.1.0', buildId: '0000abcd', serial: 'PN-0001', depthMm: 1, strokesPerSecond: 100, plannedSeconds: 10 });
    expect(store.sessionPen(session)).toEqual({ board: 'pen-r1a', buildId: '0000abcd', serial: 'PN-0001' });
    expect(store.latestAudit('auth_refusals', provisioned)).toBeNull();
    store.audit(null, 'auth_refusals', { n: 1 }, 'recorded', { pen: provisioned });
    store.audit(null, 'auth_refusals', { n: 2 }, 'recorded', { pen: blank });
    store.audit(null, 'auth_refusals', { n: 3 }, 'recorded', { pen: { ...provisioned, serial: 'PN-0002' } });
    expect(store.latestAudit('auth_refusals', provisioned)?.arguments).toEqual({ n: 1 });
    expect(store.latestAudit('auth_refusals', blank)?.arguments).toEqual({ n: 2 });
    expect(store.latestAudit('auth_refusals', { ...blank, buildId: 'ffff0000' })).toBeNull();
    store.close();
  });

  it('filters the audit log by pen (serial, build or board), session, command and time, newest first', { tags: ['REQ-AUDIT-LOG'] }, () => {
    const clock = new VirtualClock(Date.UTC(2026, 0, 10, 9, 0, 0));
    const store = PenStore.open(':memory:', clock);
    const a = { board: 'pen-r1a', buildId: 'aaaa0001', serial: 'SN-1' };
    const b = { board: 'pen-r2', buildId: 'bbbb0002', serial: null };
    const session = store.startSession({ target: 't', board: 'pen-r1a', firmware: '0.1.0', depthMm: 1, strokesPerSecond: 100, plannedSeconds: 10 });
    store.audit(null, 'home', {}, 'ok', { pen: a });
    clock.advanceTo(60_000);
    store.audit(session, 'arm', {}, 'ok', { pen: a });
    clock.advanceTo(120_000);
    store.audit(null, 'home', {}, 'ok', { pen: b });
    const ids = (filter: Parameters<PenStore['queryAudit']>[0]): number[] => store.queryAudit(filter).map((entry) => entry.id);
    expect(ids({})).toEqual([3, 2, 1]);
    expect(ids({ pen: 'SN-1' })).toEqual([2, 1]);
    expect(ids({ pen: 'bbbb0002' })).toEqual([3]);
    expect(ids({ pen: 'pen-r2' })).toEqual([3]);
    expect(ids({ sessionId: session })).toEqual([2]);
    expect(ids({ command: 'home', limit: 1 })).toEqual([3]);
    expect(ids({ since: '2026-01-10T09:01:00.000Z' })).toEqual([3, 2]);
    expect(ids({ until: '2026-01-10T09:01:00.000Z' })).toEqual([1]);
    store.close();
  });

  it('records a fault latched on the pen once per latch: again after a reset, a clear, or on another pen', { tags: ['REQ-RECORDS-DURABLE'] }, () => {
    const clock = new VirtualClock();
    const store = PenStore.open(':memory:', clock);
    const pen = { board: 'pen-r1a', buildId: 'aaaa0001', serial: null };
    let wallMs = 0;
    const later = (): void => clock.advanceTo(wallMs += 1000);
    const seen = (uptimeMs: number, which = pen, code = 'estop'): boolean => {
      later();
      return store.recordLatchedFault(which, 'tcp://p', code, 'text', { uptimeMs }).recorded;
    };
    const audit = (result: string, known = true): void => {
      later();
      store.audit(null, 'clear_fault', {}, result, known ? { pen } : {});
    };
    expect(seen(1000)).toBe(true);
    expect(seen(5000)).toBe(false);                                   // the same latch, seen later
    expect(seen(6000, { ...pen, buildId: 'bbbb0002' })).toBe(true);  // another pen
    expect(seen(7000, pen, 'over_temperature')).toBe(true);           // another code
    expect(seen(200)).toBe(true);                                     // uptime went back: the pen reset
    audit('refused: the cause persists');
    expect(seen(300)).toBe(false);                                    // a refused clear changes nothing
    audit('ok');
    expect(seen(400)).toBe(true);                                     // cleared since: a new latch
    expect(seen(450)).toBe(false);
    audit('ok', false);                                               // a clear by a host that did not name the pen
    expect(seen(500)).toBe(true);
    // A treatment session's record (its board, on the same target) is the same pen's.
    const session = store.startSession({ target: 'tcp://q', board: 'pen-r1a', firmware: '0.1.0', depthMm: 1, strokesPerSecond: 100, plannedSeconds: 10 });
    store.recordFault(session, 'pen', 'heartbeat_lost', 'text', { uptimeMs: 900 });
    later();
    expect(store.recordLatchedFault(pen, 'tcp://q', 'heartbeat_lost', 'text', { uptimeMs: 950 }).recorded).toBe(false);
    expect(store.recordLatchedFault(pen, 'tcp://other', 'heartbeat_lost', 'text', { uptimeMs: 950 }).recorded).toBe(true);
    expect(store.faults(100).filter((f) => f.pen !== null)).toHaveLength(7);
    store.close();
  });

  it('stamps records with the clock it was given', () => {
    const clock = new VirtualClock(Date.UTC(2026, 10, 25, 12, 0, 0));
    const store = PenStore.open(':memory:', clock);
    clock.advanceTo(1500);
    store.recordFault(null, 'pen', 'estop', 'the emergency stop loop is open', { depthMm: 1 });
    expect(store.faults()[0]).toMatchObject({ at: '2026-11-25T12:00:01.500Z', code: 'estop', context: { depthMm: 1 } });
    store.close();
  });

  // Several `pen` processes start together (a status reader, pen sim, pen run): each must find the schema current, and
  // none may apply a migration another one already applied.
  it('is opened by six processes at the same moment, on a new store and on a version 1 store, each finding it current', { tags: ['REQ-RECORDS-DURABLE'], timeout: 30_000 }, async () => {
    const fresh = freshPath();
    const old = freshPath();
    const raw = new Database(old);
    raw.exec(version1Schema);
    raw.pragma('user_version = 1');
    raw.prepare("INSERT INTO audit_log (at, session_id, command, arguments, result) VALUES ('2026-01-01T00:00:00.000Z', NULL, 'home', '{}', 'ok')").run();
    raw.close();
    const newest = PenStore.open(':memory:', new VirtualClock()).schemaVersion;
    for (const path of [fresh, old]) {
      const openers = Array.from({ length: 6 }, () => spawn('node', ['--import', 'tsx', 'tests/fixtures/store-opener.ts', path], { cwd: root }));
      const outputs = openers.map((child) => {
        let text = '';
        child.stdout.on('data', (chunk: Buffer) => { text += chunk.toString(); });
        return { ready: new Promise<void>((resolve) => { const poll = setInterval(() => { if (text.includes('ready')) { clearInterval(poll); resolve(); } }, 5); }),
          done: new Promise<string>((resolve) => child.once('close', () => resolve(text))) };
      });
      await Promise.all(outputs.map((output) => output.ready));
      for (const child of openers) child.stdin.write('go\n');
      const results = await Promise.all(outputs.map((output) => output.done));
      expect(results.map((text) => text.replace('ready\n', '').trim()), path).toEqual(Array(6).fill(`version ${newest}`));
      const check = new Database(path);
      expect(check.pragma('integrity_check', { simple: true })).toBe('ok');
      check.close();
      // Migrated once: the old store's row chained once (a second genesis would show as a second entry).
      const verified = PenStore.openReadOnly(path, new VirtualClock());
      expect(verified.verify(), path).toMatchObject({ ok: true, entries: path === old ? 1 : 0 });
      verified.close();
    }
  });

  it('loses nothing committed when the writer is killed -9 mid-write', { tags: ['REQ-RECORDS-DURABLE'] }, async () => {
    const path = freshPath();
    const writer = spawn('node', ['--import', 'tsx', 'tests/fixtures/store-writer.ts', path], { cwd: root });
    const committed: [number, number][] = [];
    let buffer = '';
    writer.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        const [fault, audit] = line.split(' ').map(Number);
        if (fault !== undefined && audit !== undefined) committed.push([fault, audit]);
      }
    });
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (committed.length >= 200) resolve();
        else setTimeout(check, 10);
      };
      check();
    });
    writer.kill('SIGKILL');
    await new Promise((resolve) => writer.once('exit', resolve));
    const store = PenStore.open(path, new VirtualClock());
    expect(store.integrityCheck()).toBe('ok');
    const raw = new Database(path, { readonly: true });
    const faultIds = new Set((raw.prepare('SELECT id FROM faults').all() as { id: number }[]).map((row) => row.id));
    const auditIds = new Set((raw.prepare('SELECT id FROM audit_log').all() as { id: number }[]).map((row) => row.id));
    raw.close();
    for (const [fault, audit] of committed) {
      expect(faultIds.has(fault)).toBe(true);
      expect(auditIds.has(audit)).toBe(true);
    }
    // Each row and its chain entry were committed together: the trail verifies up to the last write that made it.
    expect(store.verify()).toMatchObject({ ok: true, problemCount: 0, rowsChecked: 1 + faultIds.size + auditIds.size });
    store.close();
  });
});
