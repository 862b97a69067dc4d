// Storage: SQLite (WAL, synchronous writes, migrations) for sessions, faults and the append-only audit log.
import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import type { Clock } from '../../hardware/clock.ts';

/** Where records live: $PEN_DB, else $XDG_DATA_HOME/pen/pen.db, else ~/.local/share/pen/pen.db. */
export function defaultStorePath(): string {
  const explicit = process.env['PEN_DB'];
  if (explicit !== undefined && explicit !== '') return explicit;
  const dataHome = process.env['XDG_DATA_HOME'] ?? join(homedir(), '.local', 'share');
  return join(dataHome, 'pen', 'pen.db');
}

// Each entry moves the schema one version up; applied in order, each in its own transaction.
const migrations: readonly string[] = [
  `CREATE TABLE sessions (
     id INTEGER PRIMARY KEY,
     started_at TEXT NOT NULL,
     ended_at TEXT,
     target TEXT NOT NULL,
     board TEXT NOT NULL,
     firmware TEXT NOT NULL,
     depth_mm REAL,
     strokes_per_second INTEGER,
     planned_seconds REAL,
     outcome TEXT,
     summary TEXT
   );
   CREATE TABLE faults (
     id INTEGER PRIMARY KEY,
     session_id INTEGER REFERENCES sessions(id),
     at TEXT NOT NULL,
     source TEXT NOT NULL CHECK (source IN ('pen', 'host')),
     code TEXT NOT NULL,
     text TEXT NOT NULL,
     context TEXT NOT NULL
   );
   CREATE TABLE audit_log (
     id INTEGER PRIMARY KEY,
     at TEXT NOT NULL,
     session_id INTEGER REFERENCES sessions(id),
     command TEXT NOT NULL,
     arguments TEXT NOT NULL,
     result TEXT NOT NULL
   );
   CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
   CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;`,
];

export interface SessionStart {
  readonly target: string;
  readonly board: string;
  readonly firmware: string;
  readonly depthMm: number;
  readonly strokesPerSecond: number;
  readonly plannedSeconds: number | null;
}

export interface FaultRecord {
  readonly id: number;
  readonly sessionId: number | null;
  readonly at: string;
  readonly source: 'pen' | 'host';
  readonly code: string;
  readonly text: string;
  readonly context: Record<string, unknown>;
}

export interface AuditRecord {
  readonly id: number;
  readonly at: string;
  readonly sessionId: number | null;
  readonly command: string;
  readonly arguments: Record<string, unknown>;
  readonly result: string;
}

interface FaultRow { id: number; session_id: number | null; at: string; source: 'pen' | 'host'; code: string; text: string; context: string }
interface AuditRow { id: number; at: string; session_id: number | null; command: string; arguments: string; result: string }

export class PenStore {
  private constructor(private readonly db: Database.Database, private readonly clock: Clock, readonly path: string) {}

  /** Opens (creating if needed) the store and brings its schema up to date. */
  static open(path: string, clock: Clock): PenStore {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');  // a committed record survives power loss, not only a crash
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 2000');
    const version = db.pragma('user_version', { simple: true }) as number;
    migrations.slice(version).forEach((sql, index) => {
      db.transaction(() => {
        db.exec(sql);
        db.pragma(`user_version = ${version + index + 1}`);
      })();
    });
    return new PenStore(db, clock, path);
  }

  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  private now(): string {
    return new Date(this.clock.epochMs()).toISOString();
  }

  startSession(start: SessionStart): number {
    const result = this.db
      .prepare(`INSERT INTO sessions (started_at, target, board, firmware, depth_mm, strokes_per_second, planned_seconds)
                VALUES (?, ?, ?, ?, ?, ?, ?)`)
      .run(this.now(), start.target, start.board, start.firmware, start.depthMm, start.strokesPerSecond, start.plannedSeconds);
    return Number(result.lastInsertRowid);
  }

  endSession(sessionId: number, outcome: string, summary: Record<string, unknown>): void {
    this.db.prepare('UPDATE sessions SET ended_at = ?, outcome = ?, summary = ? WHERE id = ?')
      .run(this.now(), outcome, JSON.stringify(summary), sessionId);
  }

  recordFault(sessionId: number | null, source: 'pen' | 'host', code: string, text: string, context: Record<string, unknown>): number {
    const result = this.db
      .prepare('INSERT INTO faults (session_id, at, source, code, text, context) VALUES (?, ?, ?, ?, ?, ?)')
      .run(sessionId, this.now(), source, code, text, JSON.stringify(context));
    return Number(result.lastInsertRowid);
  }

  audit(sessionId: number | null, command: string, args: Record<string, unknown>, result: string): number {
    const inserted = this.db
      .prepare('INSERT INTO audit_log (at, session_id, command, arguments, result) VALUES (?, ?, ?, ?, ?)')
      .run(this.now(), sessionId, command, JSON.stringify(args), result);
    return Number(inserted.lastInsertRowid);
  }

  faults(limit = 50): FaultRecord[] {
    const rows = this.db.prepare('SELECT * FROM faults ORDER BY id DESC LIMIT ?').all(limit) as FaultRow[];
    return rows.map((row) => ({
      id: row.id, sessionId: row.session_id, at: row.at, source: row.source, code: row.code, text: row.text,
      context: JSON.parse(row.context) as Record<string, unknown>,
    }));
  }

  auditLog(limit = 100): AuditRecord[] {
    const rows = this.db.prepare('SELECT * FROM audit_log ORDER BY id DESC LIMIT ?').all(limit) as AuditRow[];
    return rows.map((row) => ({
      id: row.id, at: row.at, sessionId: row.session_id, command: row.command, result: row.result,
      arguments: JSON.parse(row.arguments) as Record<string, unknown>,
    }));
  }

  sessionOutcome(sessionId: number): string | null {
    const row = this.db.prepare('SELECT outcome FROM sessions WHERE id = ?').get(sessionId) as { outcome: string | null } | undefined;
    return row?.outcome ?? null;
  }

  /** SQLite's own check of the file: 'ok' when sound. */
  integrityCheck(): string {
    return this.db.pragma('integrity_check', { simple: true }) as string;
  }

  close(): void {
    this.db.close();
  }
}
