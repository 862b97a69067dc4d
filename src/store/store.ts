// Storage: SQLite (WAL, synchronous writes, migrations) for sessions, faults, the append-only audit log, and (through
// parts.ts and calibrations.ts) parts and their sterilization records, and calibrations.
import { mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { RealClock, type Clock } from '../../hardware/clock.ts';
import { CalibrationRecords } from './calibrations.ts';
import { chainHead, installChain, registerChainFunctions, verifyRecords, type ChainVerdict } from './chain.ts';
import { PartRecords } from './parts.ts';

/** Where records live: $PEN_DB, else $XDG_DATA_HOME/pen/pen.db, else ~/.local/share/pen/pen.db. */
export function defaultStorePath(): string {
  const explicit = process.env['PEN_DB'];
  if (explicit !== undefined && explicit !== '') return explicit;
  const dataHome = process.env['XDG_DATA_HOME'] ?? join(homedir(), '.local', 'share');
  return join(dataHome, 'pen', 'pen.db');
}

// Each entry moves the schema one version up; applied in order, each in its own transaction.
const migrations: readonly (string | ((db: Database.Database) => void))[] = [
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
  // 2: who and what: the pen's identity (board, firmware build, serial number once pens have one) on audit entries and
  // faults, and the operator on audit entries; rows written before stay NULL (unknown).
  `ALTER TABLE audit_log ADD COLUMN pen_board TEXT;
   ALTER TABLE audit_log ADD COLUMN pen_build TEXT;
   ALTER TABLE audit_log ADD COLUMN pen_serial TEXT;
   ALTER TABLE audit_log ADD COLUMN operator TEXT;
   ALTER TABLE faults ADD COLUMN pen_board TEXT;
   ALTER TABLE faults ADD COLUMN pen_build TEXT;
   ALTER TABLE faults ADD COLUMN pen_serial TEXT;
   CREATE INDEX audit_log_command ON audit_log (command);
   CREATE INDEX faults_pen_code ON faults (pen_board, pen_build, code);`,
  // 3: pens carry serial numbers: sessions record the pen's build and serial too (rows before stay NULL).
  `ALTER TABLE sessions ADD COLUMN pen_build TEXT;
   ALTER TABLE sessions ADD COLUMN pen_serial TEXT;
   CREATE INDEX audit_log_pen_serial ON audit_log (pen_serial, command);`,
  // 4: clients and parts. Sessions keep the client's pseudonymous reference, when the needle first ran (what counts as a
  // treatment, for session spacing and part use) and the cartridge and nosecone used. Parts (by their chip's ROM id),
  // their sterilization cycles, the biological indicator results of each sterilizer load and each part's events; all
  // but the parts' current state are append-only, like the audit log.
  `CREATE TABLE parts (
     id TEXT PRIMARY KEY CHECK (length(id) = 16),
     kind TEXT NOT NULL CHECK (kind IN ('cartridge', 'nosecone')),
     lot TEXT NOT NULL,
     expiry TEXT,
     first_seen_at TEXT NOT NULL,
     state TEXT NOT NULL DEFAULT 'in_service' CHECK (state IN ('in_service', 'retired', 'flagged')),
     state_reason TEXT,
     state_changed_at TEXT,
     chip_used INTEGER,
     chip_sterilization_tally INTEGER,
     chip_use_tally INTEGER,
     chip_seen_at TEXT,
     pen_board TEXT,
     pen_build TEXT,
     pen_serial TEXT,
     operator TEXT
   );
   CREATE TABLE sterilization_cycles (
     id INTEGER PRIMARY KEY,
     at TEXT NOT NULL,
     cycle TEXT NOT NULL,
     sterilizer_id TEXT NOT NULL,
     load_number INTEGER NOT NULL CHECK (load_number >= 0),
     chemical_indicator TEXT NOT NULL CHECK (chemical_indicator IN ('pass', 'fail')),
     biological_indicator TEXT NOT NULL CHECK (biological_indicator IN ('pending', 'pass', 'fail')),
     operator TEXT NOT NULL,
     pen_board TEXT,
     pen_build TEXT,
     pen_serial TEXT
   );
   CREATE TABLE sterilization_cycle_parts (
     cycle_id INTEGER NOT NULL REFERENCES sterilization_cycles(id),
     part_id TEXT NOT NULL REFERENCES parts(id),
     PRIMARY KEY (cycle_id, part_id)
   );
   CREATE TABLE biological_indicator_results (
     id INTEGER PRIMARY KEY,
     at TEXT NOT NULL,
     sterilizer_id TEXT NOT NULL,
     load_number INTEGER NOT NULL,
     result TEXT NOT NULL CHECK (result IN ('pass', 'fail')),
     operator TEXT NOT NULL,
     pen_board TEXT,
     pen_build TEXT,
     pen_serial TEXT
   );
   CREATE TABLE part_events (
     id INTEGER PRIMARY KEY,
     part_id TEXT NOT NULL REFERENCES parts(id),
     at TEXT NOT NULL,
     event TEXT NOT NULL,
     detail TEXT NOT NULL,
     operator TEXT,
     pen_board TEXT,
     pen_build TEXT,
     pen_serial TEXT
   );
   CREATE INDEX sterilization_cycle_parts_part ON sterilization_cycle_parts (part_id);
   CREATE INDEX sterilization_cycles_load ON sterilization_cycles (sterilizer_id, load_number);
   CREATE INDEX biological_indicator_results_load ON biological_indicator_results (sterilizer_id, load_number);
   CREATE INDEX part_events_part ON part_events (part_id);
   CREATE TRIGGER sterilization_cycles_no_update BEFORE UPDATE ON sterilization_cycles BEGIN SELECT RAISE(ABORT, 'sterilization records are append-only'); END;
   CREATE TRIGGER sterilization_cycles_no_delete BEFORE DELETE ON sterilization_cycles BEGIN SELECT RAISE(ABORT, 'sterilization records are append-only'); END;
   CREATE TRIGGER sterilization_cycle_parts_no_update BEFORE UPDATE ON sterilization_cycle_parts BEGIN SELECT RAISE(ABORT, 'sterilization records are append-only'); END;
   CREATE TRIGGER sterilization_cycle_parts_no_delete BEFORE DELETE ON sterilization_cycle_parts BEGIN SELECT RAISE(ABORT, 'sterilization records are append-only'); END;
   CREATE TRIGGER biological_indicator_results_no_update BEFORE UPDATE ON biological_indicator_results BEGIN SELECT RAISE(ABORT, 'sterilization records are append-only'); END;
   CREATE TRIGGER biological_indicator_results_no_delete BEFORE DELETE ON biological_indicator_results BEGIN SELECT RAISE(ABORT, 'sterilization records are append-only'); END;
   CREATE TRIGGER part_events_no_update BEFORE UPDATE ON part_events BEGIN SELECT RAISE(ABORT, 'part events are append-only'); END;
   CREATE TRIGGER part_events_no_delete BEFORE DELETE ON part_events BEGIN SELECT RAISE(ABORT, 'part events are append-only'); END;
   CREATE TRIGGER parts_no_delete BEFORE DELETE ON parts BEGIN SELECT RAISE(ABORT, 'parts are retired, never deleted'); END;
   ALTER TABLE sessions ADD COLUMN client_ref TEXT;
   ALTER TABLE sessions ADD COLUMN needle_started_at TEXT;
   ALTER TABLE sessions ADD COLUMN cartridge_part_id TEXT REFERENCES parts(id);
   ALTER TABLE sessions ADD COLUMN nosecone_part_id TEXT REFERENCES parts(id);
   CREATE INDEX sessions_client ON sessions (client_ref, needle_started_at);
   CREATE INDEX sessions_cartridge ON sessions (cartridge_part_id);
   CREATE INDEX sessions_nosecone ON sessions (nosecone_part_id);`,
  // 5: calibrations (src/store/calibrations.ts): each guided calibration with its readings, fit and verification as
  // JSON, the values before and after; append-only.
  `CREATE TABLE calibrations (
     id INTEGER PRIMARY KEY,
     at TEXT NOT NULL,
     kind TEXT NOT NULL CHECK (kind IN ('depth', 'sensor', 'restore_default')),
     pen_board TEXT NOT NULL,
     pen_build TEXT NOT NULL,
     pen_serial TEXT,
     technician TEXT NOT NULL,
     gauge_id TEXT,
     gauge_due TEXT,
     verdict TEXT NOT NULL CHECK (verdict IN ('accepted', 'rejected', 'aborted')),
     reason TEXT,
     readings TEXT NOT NULL,
     fit TEXT,
     verification TEXT,
     old_values TEXT NOT NULL,
     new_values TEXT,
     needle_seconds INTEGER
   );
   CREATE INDEX calibrations_pen ON calibrations (pen_serial, id);
   CREATE TRIGGER calibrations_no_update BEFORE UPDATE ON calibrations BEGIN SELECT RAISE(ABORT, 'calibration records are append-only'); END;
   CREATE TRIGGER calibrations_no_delete BEFORE DELETE ON calibrations BEGIN SELECT RAISE(ABORT, 'calibration records are append-only'); END;`,
  // 6: the tamper-evident trail (src/store/chain.ts): every row version of every record table chained in record_chain by
  // triggers, the rows already there chained first; and the role an audited command was done in (NULL: none or unknown).
  (db) => {
    db.exec('ALTER TABLE audit_log ADD COLUMN role TEXT;');
    installChain(db);
  },
];

/** The schema version this code writes and reads. */
export const currentSchemaVersion = migrations.length;

/** Which pen a record is about: its board, firmware build and serial number (null while the pen is not provisioned). */
export interface PenRecordIdentity {
  readonly board: string;
  readonly buildId: string;
  readonly serial: string | null;
}

/** Who an audit entry is about and who acted; absent parts are stored as unknown (NULL). */
export interface AuditActor {
  readonly pen?: PenRecordIdentity | null;
  readonly operator?: string | null;
  /** The role the command was done in (a keyed role whose grant it used: reprocessing, technician, engineer); null: none or unknown. */
  readonly role?: string | null;
}

/** Filters for reading the audit log; every one given must match. */
export interface AuditFilter {
  /** Matches the pen's serial number, firmware build id or board name. */
  readonly pen?: string | undefined;
  readonly sessionId?: number | undefined;
  readonly command?: string | undefined;
  /** ISO 8601 as stored (toISOString): entries at or after this instant. */
  readonly since?: string | undefined;
  /** ISO 8601 as stored (toISOString): entries before this instant. */
  readonly until?: string | undefined;
  readonly limit?: number | undefined;
}

export interface SessionStart {
  readonly target: string;
  readonly board: string;
  readonly firmware: string;
  /** The pen's firmware build id and serial number (null: not provisioned); unknown when absent. */
  readonly buildId?: string;
  readonly serial?: string | null;
  readonly depthMm: number;
  readonly strokesPerSecond: number;
  readonly plannedSeconds: number | null;
  /** The client's pseudonymous reference (src/control/spacing.ts); null or absent: not given. */
  readonly clientRef?: string | null;
  /** The parts fitted, by their chip's ROM id (src/sterilization/registry.ts); null or absent: not known. */
  readonly cartridgePartId?: string | null;
  readonly noseconePartId?: string | null;
}

/** A client's latest treatment on record: the session in which the needle ran, and when it first ran. */
export interface ClientTreatment {
  readonly sessionId: number;
  /** ISO 8601 (toISOString): when the needle first ran in that session. */
  readonly treatedAt: string;
  readonly penSerial: string | null;
}

export interface FaultRecord {
  readonly id: number;
  readonly sessionId: number | null;
  readonly at: string;
  readonly source: 'pen' | 'host';
  readonly code: string;
  readonly text: string;
  readonly context: Record<string, unknown>;
  /** The pen, when the writer knew it (null for faults recorded before schema version 2). */
  readonly pen: PenRecordIdentity | null;
}

export interface AuditRecord {
  readonly id: number;
  readonly at: string;
  readonly sessionId: number | null;
  readonly command: string;
  readonly arguments: Record<string, unknown>;
  readonly result: string;
  readonly pen: PenRecordIdentity | null;
  readonly operator: string | null;
  /** The role the command was done in; null for none, unknown, or entries before schema version 6. */
  readonly role: string | null;
}

/** Filters for reading sessions; every one given must match. */
export interface SessionFilter {
  /** ISO 8601 as stored (toISOString): sessions started at or after this instant. */
  readonly since?: string | undefined;
  /** ISO 8601 as stored (toISOString): sessions started before this instant. */
  readonly until?: string | undefined;
  /** Matches the pen's serial number, firmware build id or board name. */
  readonly pen?: string | undefined;
  readonly clientRef?: string | undefined;
  /** At most this many, newest first (default 100). */
  readonly limit?: number | undefined;
}

/** A started session as its row keeps it (columns added by later schema versions are null on older rows). */
export interface SessionRecord {
  readonly id: number;
  readonly startedAt: string;
  readonly endedAt: string | null;
  readonly target: string;
  readonly board: string;
  readonly firmware: string;
  readonly penBuild: string | null;
  readonly penSerial: string | null;
  readonly depthMm: number | null;
  readonly strokesPerSecond: number | null;
  readonly plannedSeconds: number | null;
  /** null while the session has not ended (or its process died before ending it). */
  readonly outcome: string | null;
  readonly summary: Record<string, unknown> | null;
  readonly clientRef: string | null;
  /** When the needle first ran: a session with it is a treatment. */
  readonly needleStartedAt: string | null;
  readonly cartridgePartId: string | null;
  readonly noseconePartId: string | null;
}

interface SessionRow {
  id: number; started_at: string; ended_at: string | null; target: string; board: string; firmware: string; depth_mm: number | null;
  strokes_per_second: number | null; planned_seconds: number | null; outcome: string | null; summary: string | null; pen_build: string | null;
  pen_serial: string | null; client_ref: string | null; needle_started_at: string | null; cartridge_part_id: string | null; nosecone_part_id: string | null;
}

interface PenColumns { pen_board: string | null; pen_build: string | null; pen_serial: string | null }
interface FaultRow extends PenColumns { id: number; session_id: number | null; at: string; source: 'pen' | 'host'; code: string; text: string; context: string }
interface AuditRow extends PenColumns {
  id: number; at: string; session_id: number | null; command: string; arguments: string; result: string; operator: string | null;
  role: string | null;
}

const penOf = (row: PenColumns): PenRecordIdentity | null =>
  row.pen_board === null || row.pen_build === null ? null : { board: row.pen_board, buildId: row.pen_build, serial: row.pen_serial };

const faultOf = (row: FaultRow): FaultRecord => ({
  id: row.id, sessionId: row.session_id, at: row.at, source: row.source, code: row.code, text: row.text,
  context: JSON.parse(row.context) as Record<string, unknown>, pen: penOf(row),
});

const auditOf = (row: AuditRow): AuditRecord => ({
  id: row.id, at: row.at, sessionId: row.session_id, command: row.command, result: row.result,
  arguments: JSON.parse(row.arguments) as Record<string, unknown>, pen: penOf(row), operator: row.operator, role: row.role,
});

const sessionOf = (row: SessionRow): SessionRecord => ({
  id: row.id, startedAt: row.started_at, endedAt: row.ended_at, target: row.target, board: row.board, firmware: row.firmware,
  penBuild: row.pen_build, penSerial: row.pen_serial, depthMm: row.depth_mm, strokesPerSecond: row.strokes_per_second,
  plannedSeconds: row.planned_seconds, outcome: row.outcome, summary: row.summary === null ? null : JSON.parse(row.summary) as Record<string, unknown>,
  clientRef: row.client_ref, needleStartedAt: row.needle_started_at, cartridgePartId: row.cartridge_part_id, noseconePartId: row.nosecone_part_id,
});

/**
 * A WHERE clause of the conditions whose value is given (each names its parameter), ANDed, and the parameters with
 * the limit (default 100).
 */
function filtered(limit: number | undefined, conditions: readonly (readonly [sql: string, name: string, value: string | number | undefined])[]): {
  readonly where: string; readonly params: Record<string, string | number>;
} {
  const params: Record<string, string | number> = { limit: limit ?? 100 };
  const used = conditions.filter(([, , value]) => value !== undefined);
  for (const [, name, value] of used) params[name] = value ?? '';
  return { where: used.length === 0 ? '' : `WHERE ${used.map(([sql]) => sql).join(' AND ')}`, params };
}

/** Runs `action` again every 10 ms while SQLite reports the database busy, for at most `limitMs`. */
function retryWhileBusy<T>(action: () => T, limitMs: number): T {
  const deadline = Date.now() + limitMs;
  for (;;) {
    try {
      return action();
    } catch (error) {
      const busy = error instanceof Database.SqliteError && error.code.startsWith('SQLITE_BUSY');
      if (!busy || Date.now() >= deadline) throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);  // a synchronous sleep: opening is synchronous
    }
  }
}

export class PenStore {
  /** Parts, their sterilization cycles and the loads' biological indicators (src/store/parts.ts). */
  readonly parts: PartRecords;
  /** Guided calibrations and restorations of the default (src/store/calibrations.ts). */
  readonly calibrations: CalibrationRecords;

  private constructor(private readonly db: Database.Database, private readonly clock: Clock, readonly path: string) {
    this.parts = new PartRecords(db, () => this.now());
    this.calibrations = new CalibrationRecords(db, () => this.now());
  }

  /** Opens (creating if needed) the store and brings its schema up to date. */
  static open(path: string, clock: Clock): PenStore {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const db = new Database(path);
    // Before anything writes: the chain's triggers (src/store/chain.ts) call these on every write, migrations included.
    registerChainFunctions(db, () => new Date(clock.epochMs()).toISOString());
    // First: another pen process may be creating or migrating the same file right now, and then this one waits for it.
    db.pragma('busy_timeout = 5000');
    // Switching a new file to WAL takes an exclusive lock that SQLite does not wait for (no busy handler: two processes
    // doing it at once would deadlock), so a process that loses the race tries again.
    retryWhileBusy(() => db.pragma('journal_mode = WAL'), 5000);
    db.pragma('synchronous = FULL');  // a committed record survives power loss, not only a crash
    db.pragma('foreign_keys = ON');
    // One migration per immediate (write-locked) transaction that reads the version inside it, so that of two processes
    // opening an old or new store at once, the second sees the first's work instead of migrating again.
    const migrateOnce = db.transaction((): boolean => {
      const version = db.pragma('user_version', { simple: true }) as number;
      const migration = migrations[version];
      if (migration === undefined) return false;
      if (typeof migration === 'string') db.exec(migration);
      else migration(db);
      db.pragma(`user_version = ${version + 1}`);
      return true;
    });
    while (migrateOnce.immediate()) { /* until the schema is current */ }
    return new PenStore(db, clock, path);
  }

  /**
   * Opens a store (a backup, an export, another site's file) only to read and verify it: nothing is migrated or
   * written. Refuses a file whose schema is not the current one, naming both versions (open it with PenStore.open,
   * which upgrades it, to read an older one).
   */
  static openReadOnly(path: string, clock: Clock = new RealClock()): PenStore {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    registerChainFunctions(db, () => new Date(clock.epochMs()).toISOString());
    db.pragma('busy_timeout = 5000');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version !== currentSchemaVersion) {
      db.close();
      throw new Error(`${path} has schema version ${version}, this pen reads version ${currentSchemaVersion}: ` +
        (version < currentSchemaVersion ? 'open it once with any pen command (pen audit, say), which upgrades it, first' : 'use a newer pen to read it'));
    }
    return new PenStore(db, clock, path);
  }

  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  /** The time records are stamped with, from the clock the store was opened with (ms since 1970). */
  epochMs(): number {
    return this.clock.epochMs();
  }

  private now(): string {
    return new Date(this.clock.epochMs()).toISOString();
  }

  /**
   * Runs fn in one transaction: every write in it is committed together or not at all, and what it reads cannot change
   * under it (another process's writes wait). Nested calls become savepoints.
   */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  startSession(start: SessionStart): number {
    const result = this.db
      .prepare(`INSERT INTO sessions (started_at, target, board, firmware, depth_mm, strokes_per_second, planned_seconds, pen_build, pen_serial,
                  client_ref, cartridge_part_id, nosecone_part_id)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(this.now(), start.target, start.board, start.firmware, start.depthMm, start.strokesPerSecond, start.plannedSeconds,
        start.buildId ?? null, start.serial ?? null, start.clientRef ?? null, start.cartridgePartId ?? null, start.noseconePartId ?? null);
    return Number(result.lastInsertRowid);
  }

  /** Marks the session as a treatment: the needle ran in it (the first call only; later ones keep the first time). */
  markNeedleStarted(sessionId: number): void {
    this.db.prepare('UPDATE sessions SET needle_started_at = ? WHERE id = ? AND needle_started_at IS NULL').run(this.now(), sessionId);
  }

  /** The client's latest session in which the needle ran, or null. */
  lastClientTreatment(clientRef: string): ClientTreatment | null {
    const row = this.db.prepare(
      `SELECT id, needle_started_at, pen_serial FROM sessions WHERE client_ref = ? AND needle_started_at IS NOT NULL
       ORDER BY needle_started_at DESC, id DESC LIMIT 1`,
    ).get(clientRef) as { id: number; needle_started_at: string; pen_serial: string | null } | undefined;
    return row === undefined ? null : { sessionId: row.id, treatedAt: row.needle_started_at, penSerial: row.pen_serial };
  }

  endSession(sessionId: number, outcome: string, summary: Record<string, unknown>): void {
    this.db.prepare('UPDATE sessions SET ended_at = ?, outcome = ?, summary = ? WHERE id = ?')
      .run(this.now(), outcome, JSON.stringify(summary), sessionId);
  }

  recordFault(
    sessionId: number | null, source: 'pen' | 'host', code: string, text: string, context: Record<string, unknown>,
    pen: PenRecordIdentity | null = null,
  ): number {
    const result = this.db
      .prepare('INSERT INTO faults (session_id, at, source, code, text, context, pen_board, pen_build, pen_serial) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(sessionId, this.now(), source, code, text, JSON.stringify(context), pen?.board ?? null, pen?.buildId ?? null, pen?.serial ?? null);
    return Number(result.lastInsertRowid);
  }

  /**
   * Records a fault the pen reports as latched now, unless this latch is on record already: a pen fault with the same
   * code for the same pen (its identity, or a treatment session's board on the same target), recorded at a pen uptime
   * no later than now's (so the pen has not reset since), with no successful clear_fault audited since for this pen or
   * an unknown one. context.uptimeMs is the pen's uptime now. Returns the record of this latch, and whether it is new.
   */
  recordLatchedFault(
    pen: PenRecordIdentity, target: string, code: string, text: string, context: Record<string, unknown> & { readonly uptimeMs: number },
  ): { readonly fault: FaultRecord; readonly recorded: boolean } {
    return this.db.transaction(() => {
      const last = this.db.prepare(
        `SELECT f.* FROM faults f LEFT JOIN sessions s ON s.id = f.session_id
         WHERE f.source = 'pen' AND f.code = @code AND (
           (f.pen_board = @board AND f.pen_build = @build AND f.pen_serial IS @serial) OR
           (f.pen_board IS NULL AND s.board = @board AND s.target = @target))
         ORDER BY f.id DESC LIMIT 1`,
      ).get({ code, board: pen.board, build: pen.buildId, serial: pen.serial, target }) as FaultRow | undefined;
      if (last !== undefined) {
        const then = JSON.parse(last.context) as { uptimeMs?: unknown };
        const cleared = this.db.prepare(
          `SELECT 1 FROM audit_log WHERE command = 'clear_fault' AND result = 'ok' AND at >= @at AND (
             pen_board IS NULL OR (pen_board = @board AND pen_build = @build AND pen_serial IS @serial)) LIMIT 1`,
        ).get({ at: last.at, board: pen.board, build: pen.buildId, serial: pen.serial });
        if (typeof then.uptimeMs === 'number' && then.uptimeMs <= context.uptimeMs && cleared === undefined) {
          return { fault: faultOf(last), recorded: false };
        }
      }
      const id = this.recordFault(null, 'pen', code, text, context, pen);
      const row = this.db.prepare('SELECT * FROM faults WHERE id = ?').get(id) as FaultRow;
      return { fault: faultOf(row), recorded: true };
    })();
  }

  audit(sessionId: number | null, command: string, args: Record<string, unknown>, result: string, actor: AuditActor = {}): number {
    const { pen = null, operator = null, role = null } = actor;
    const inserted = this.db
      .prepare(`INSERT INTO audit_log (at, session_id, command, arguments, result, pen_board, pen_build, pen_serial, operator, role)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(this.now(), sessionId, command, JSON.stringify(args), result, pen?.board ?? null, pen?.buildId ?? null, pen?.serial ?? null, operator, role);
    return Number(inserted.lastInsertRowid);
  }

  faults(limit = 50): FaultRecord[] {
    const rows = this.db.prepare('SELECT * FROM faults ORDER BY id DESC LIMIT ?').all(limit) as FaultRow[];
    return rows.map(faultOf);
  }

  auditLog(limit = 100): AuditRecord[] {
    return this.queryAudit({ limit });
  }

  /** The audit log, newest first, filtered. */
  queryAudit(filter: AuditFilter = {}): AuditRecord[] {
    const { where, params } = filtered(filter.limit, [
      ['@pen IN (pen_serial, pen_build, pen_board)', 'pen', filter.pen],
      ['session_id = @sessionId', 'sessionId', filter.sessionId],
      ['command = @command', 'command', filter.command],
      ['at >= @since', 'since', filter.since],
      ['at < @until', 'until', filter.until],
    ]);
    const sql = `SELECT * FROM audit_log ${where} ORDER BY id DESC LIMIT @limit`;
    return (this.db.prepare(sql).all(params) as AuditRow[]).map(auditOf);
  }

  /** Started sessions, newest first, filtered. */
  sessions(filter: SessionFilter = {}): SessionRecord[] {
    const { where, params } = filtered(filter.limit, [
      ['@pen IN (pen_serial, pen_build, board)', 'pen', filter.pen],
      ['client_ref = @clientRef', 'clientRef', filter.clientRef],
      ['started_at >= @since', 'since', filter.since],
      ['started_at < @until', 'until', filter.until],
    ]);
    const sql = `SELECT * FROM sessions ${where} ORDER BY started_at DESC, id DESC LIMIT @limit`;
    return (this.db.prepare(sql).all(params) as SessionRow[]).map(sessionOf);
  }

  /** The newest entry of command about this pen (same board, build and serial; null serial matches null), or null. */
  latestAudit(command: string, pen: PenRecordIdentity): AuditRecord | null {
    const row = this.db.prepare(
      `SELECT * FROM audit_log WHERE command = @command AND pen_serial IS @serial AND (@serial IS NOT NULL OR (pen_board = @board AND pen_build = @build))
       ORDER BY id DESC LIMIT 1`,
    ).get({ command, serial: pen.serial, board: pen.board, build: pen.buildId }) as AuditRow | undefined;
    return row === undefined ? null : auditOf(row);
  }

  /** The pen a session was run on, as its row keeps it (build and serial are null for sessions before schema 3). */
  sessionPen(sessionId: number): { readonly board: string; readonly buildId: string | null; readonly serial: string | null } | null {
    const row = this.db.prepare('SELECT board, pen_build, pen_serial FROM sessions WHERE id = ?').get(sessionId) as
      { board: string; pen_build: string | null; pen_serial: string | null } | undefined;
    return row === undefined ? null : { board: row.board, buildId: row.pen_build, serial: row.pen_serial };
  }

  sessionOutcome(sessionId: number): string | null {
    const row = this.db.prepare('SELECT outcome FROM sessions WHERE id = ?').get(sessionId) as { outcome: string | null } | undefined;
    return row?.outcome ?? null;
  }

  /**
   * Walks the tamper-evident trail (src/store/chain.ts): every ledger entry's hash and link, and every record row against
   * its latest entry; names the first row or entry that does not verify.
   */
  verify(): ChainVerdict {
    return verifyRecords(this.db);
  }

  /** The trail's length and last hash: written down elsewhere, it lets a later verify show nothing was rewritten up to it. */
  chainHead(): { readonly entries: number; readonly headHash: string | null } {
    return chainHead(this.db);
  }

  /**
   * Copies the store to `path` with SQLite's online backup: a consistent snapshot even while other processes write (the
   * copy is of one moment, trail included, so it verifies on its own). onProgress gets pages copied and pages in all.
   */
  async backupTo(path: string, onProgress?: (done: number, total: number) => void): Promise<void> {
    const { totalPages } = await this.db.backup(path, {
      progress: ({ totalPages: total, remainingPages }) => {
        onProgress?.(total - remainingPages, total);
        return 100;  // pages per step: the default; between steps other connections may write
      },
    });
    onProgress?.(totalPages, totalPages);  // better-sqlite3 calls progress between steps only, not when done
  }

  /** SQLite's own check of the file: 'ok' when sound. */
  integrityCheck(): string {
    return this.db.pragma('integrity_check', { simple: true }) as string;
  }

  close(): void {
    this.db.close();
  }
}
