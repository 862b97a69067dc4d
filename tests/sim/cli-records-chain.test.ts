// `pen records verify` and `pen records export` as a user runs them, each in its own process, against a store written
// beforehand through the application and then changed behind its back through raw SQLite, as a person with the file
// and the sqlite3 tool could.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { RealClock } from '../../hardware/clock.ts';
import { chainedTables, chainExistingRows, registerChainFunctions } from '../../src/store/chain.ts';
import { PenStore } from '../../src/store/store.ts';
import { PenProcesses, type PenResult } from '../pen-process.ts';

const processes = new PenProcesses();
afterEach(() => processes.killAll());

const actor = { pen: { board: 'pen-r1a', buildId: '0000abcd', serial: 'SIM-0001' }, operator: 'tech-7' };

/** A store with a session, its fault and three audit entries, written through the application. */
function writtenStore(): string {
  const db = join(processes.freshDataDir(), 'pen.db');
  const store = PenStore.open(db, new RealClock());
  const session = store.startSession({ target: 'tcp://bench', board: 'pen-r1a', firmware: '0.1.0', depthMm: 1, strokesPerSecond: 100, plannedSeconds: 60 });
  store.recordFault(session, 'pen', 'estop', 'the emergency stop loop is open', { depthMm: 1 });
  for (const command of ['home', 'arm', 'start_needle']) store.audit(session, command, { target: 'tcp://bench' }, 'ok', actor);
  store.endSession(session, 'faulted', { reason: 'e-stop' });
  store.close();
  return db;
}

/** An attacker's edit: the append-only and chain triggers dropped, then one statement, through a plain connection. */
function editBehindTheBack(db: string, sql: string): void {
  const raw = new Database(db);
  for (const { name } of raw.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'").all() as { name: string }[]) raw.exec(`DROP TRIGGER "${name}"`);
  raw.exec(sql);
  raw.close();
}

const records = (args: readonly string[]): Promise<PenResult> => processes.run(['records', ...args]);

describe('pen records', () => {
  it('verifies a store the application wrote, then names the audit row edited behind its back (exit 1)', { tags: ['REQ-AUDIT-LOG', 'REQ-RECORDS-TAMPER-EVIDENT'] }, async () => {
    const db = writtenStore();
    const clean = await records(['verify', '--db', db]);
    expect(clean.code, clean.stderr).toBe(0);
    expect(clean.stdout).toMatch(/verified: \d+ chain entries, \d+ rows, all as the application wrote them; head [0-9a-f]{64}/);

    const raw = new Database(db);
    expect(() => raw.exec("UPDATE audit_log SET result = 'refused' WHERE command = 'arm'")).toThrow();  // the triggers stop a plain edit
    raw.close();
    editBehindTheBack(db, "UPDATE audit_log SET result = 'refused' WHERE command = 'arm'");
    const armRow = (new Database(db, { readonly: true }).prepare("SELECT id FROM audit_log WHERE command = 'arm'").get() as { id: number }).id;
    const tampered = await records(['verify', '--db', db, '--json']);
    expect(tampered.code, tampered.stderr).toBe(1);
    const verdict = JSON.parse(tampered.stdout) as { ok: boolean; chain: { firstProblem: { table: string; rowId: string; problem: string } } };
    expect(verdict.ok).toBe(false);
    expect(verdict.chain.firstProblem).toMatchObject({ table: 'audit_log', rowId: String(armRow) });
    const text = await records(['verify', '--db', db]);
    expect(text.stdout).toMatch(new RegExp(`DOES NOT VERIFY: .*audit_log row ${armRow}`));
  });

  it('exports a consistent snapshot while a writer is writing, which verifies; a changed CSV, a foreign head and a rewritten chain (against the kept head) are caught', { tags: ['REQ-AUDIT-LOG', 'REQ-RECORDS-DURABLE', 'REQ-RECORDS-TAMPER-EVIDENT'] }, async () => {
    const db = writtenStore();
    const writer = spawn(process.execPath, ['--import', 'tsx', 'tests/fixtures/store-writer.ts', db], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      await new Promise<void>((resolve) => writer.stdout.once('data', () => resolve()));
      const out = join(processes.freshDataDir(), 'export');
      const exported = await records(['export', '--out', out, '--db', db, '--json']);
      expect(exported.code, exported.stderr).toBe(0);
      const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { chain: { entries: number; headHash: string }; tables: Record<string, { rows: number }> };
      expect(manifest.chain.headHash).toMatch(/^[0-9a-f]{64}$/);
      expect(manifest.tables['audit_log']?.rows).toBeGreaterThanOrEqual(3);
      for (const file of ['pen.db', 'tables/audit_log.csv', 'tables/audit_log.json', 'tables/record_chain.csv']) expect(existsSync(join(out, file)), file).toBe(true);

      const fromExport = await records(['verify', '--from', out]);
      expect(fromExport.code, fromExport.stdout).toBe(0);
      // The live store, still being written, has the exported head in its chain: nothing before it was rewritten.
      const live = await records(['verify', '--db', db, '--expect-head', manifest.chain.headHash]);
      expect(live.code, live.stdout).toBe(0);
      expect(live.stdout).toContain('is in the chain: nothing before it was rewritten');

      const csv = join(out, 'tables/faults.csv');
      writeFileSync(csv, readFileSync(csv, 'utf8').replace('estop', 'none'));
      const changed = await records(['verify', '--from', out]);
      expect(changed.code).toBe(1);
      expect(changed.stdout).toContain('tables/faults.csv changed since the export');

      const foreign = await records(['verify', '--db', db, '--expect-head', 'f'.repeat(64)]);
      expect(foreign.code).toBe(1);
      expect(foreign.stdout).toContain('no chain entry ends in the expected head');

      // A forger with this code: an edit, then the whole chain rebuilt around it. The store verifies on its own; the head
      // kept from the export is no longer in it.
      writer.kill('SIGKILL');
      await new Promise((resolve) => writer.once('exit', resolve));
      const raw = new Database(db);
      registerChainFunctions(raw);
      raw.exec("DROP TRIGGER record_chain_no_delete; DROP TRIGGER audit_log_no_update; UPDATE audit_log SET result = 'refused' WHERE command = 'arm'; DELETE FROM record_chain");
      for (const table of chainedTables) chainExistingRows(raw, table, 'insert');
      raw.close();
      const rewritten = await records(['verify', '--db', db]);
      expect(rewritten.code, rewritten.stdout).toBe(0);
      const againstHead = await records(['verify', '--db', db, '--expect-head', manifest.chain.headHash]);
      expect(againstHead.code).toBe(1);
      expect(againstHead.stdout).toContain('the chain was rewritten since that head was kept');
    } finally {
      writer.kill('SIGKILL');
    }
  });

  it('says what is wrong: a non-empty --out (2), --db with --from (2), a bad head (2), no store (3), a file that is no store (3)', async () => {
    const db = writtenStore();
    const folder = processes.freshDataDir();
    writeFileSync(join(folder, 'something'), 'x');
    const notAStore = join(folder, 'notes.txt');
    writeFileSync(notAStore, 'not a database, just text that is long enough to be read as a header\n'.repeat(4));
    const [nonEmpty, both, badHead, missing, notDb, noOut] = await Promise.all([
      records(['export', '--out', folder, '--db', db]),
      records(['verify', '--db', db, '--from', folder]),
      records(['verify', '--db', db, '--expect-head', 'xyz']),
      records(['verify', '--db', join(folder, 'absent.db')]),
      records(['verify', '--db', notAStore]),
      records(['export', '--db', db]),
    ]);
    expect(nonEmpty.code).toBe(2);
    expect(nonEmpty.stderr).toContain('exists and is not empty');
    expect(both.code).toBe(2);
    expect(badHead.code).toBe(2);
    expect(badHead.stderr).toContain('64 lower-case hex digits');
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('no store at');
    expect(notDb.code).toBe(3);
    expect(notDb.stderr).toContain('is not a pen store');
    expect(noOut.code).toBe(2);
    expect(noOut.stderr).toContain('--out');
  });
});
