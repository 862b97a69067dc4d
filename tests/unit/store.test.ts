// The SQLite store: schema migrations, WAL with synchronous writes, the append-only audit log, and a kill -9 mid-write.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../hardware/clock.ts';
import { PenStore } from '../../src/store/store.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const freshPath = (): string => join(mkdtempSync(join(tmpdir(), 'pen-store-')), 'pen.db');

describe('the store', () => {
  it('creates its schema once, in WAL mode with full synchronous writes, and reopens at the same version', () => {
    const path = freshPath();
    const store = PenStore.open(path, new VirtualClock());
    expect(store.schemaVersion).toBe(1);
    store.close();
    const raw = new Database(path);
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();
    const again = PenStore.open(path, new VirtualClock());
    expect(again.schemaVersion).toBe(1);
    expect(again.integrityCheck()).toBe('ok');
    again.close();
  });

  it('keeps the audit log append-only', () => {
    const store = PenStore.open(freshPath(), new VirtualClock());
    store.audit(null, 'arm', {}, 'ok');
    const raw = new Database(store.path);
    expect(() => raw.prepare("UPDATE audit_log SET result = 'forged'").run()).toThrow('the audit log is append-only');
    expect(() => raw.prepare('DELETE FROM audit_log').run()).toThrow('the audit log is append-only');
    raw.close();
    expect(store.auditLog()).toMatchObject([{ command: 'arm', result: 'ok' }]);
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

  it('loses nothing committed when the writer is killed -9 mid-write', async () => {
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
    store.close();
  });
});
