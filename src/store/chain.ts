// The records' tamper-evident trail (in the spirit of 21 CFR Part 11 audit trails): every row written to a chained
// table is copied, by SQLite triggers in the writer's own transaction, into the append-only ledger record_chain, each
// entry hashed (SHA-256) over its content and the previous entry's hash; and the check that walks the ledger and the
// tables and names the first row or entry that does not verify.
//
// The hash comes from an application-defined SQL function (pen_chain_hash, with pen_now for the entry's time from the
// store's clock) registered on every connection the application opens. A person with the sqlite3 shell has neither,
// so every write through the triggers fails ("no such function"); to edit a record they must drop the triggers, and
// then the edit is not chained, which verifyRecords reports. A forger who also rewrites the ledger from the edited
// entry to its end (the algorithm is no secret) is caught only against a head hash kept elsewhere (chainHead).
import { createHash } from 'node:crypto';  // createHash('sha256')
import type Database from 'better-sqlite3';

/**
 * The chained tables and their columns, in the fixed order of each entry's content (a JSON object). A migration that
 * adds a column to one of these must add it here, recreate the table's triggers (chainTriggersSql) and chain every
 * existing row again as an 'update' (chainExistingRows), or every old row will read as edited.
 */
const chained: readonly { readonly table: string; readonly rowId: string; readonly columns: readonly string[] }[] = [
  { table: 'parts', rowId: 'id', columns: ['id', 'kind', 'lot', 'expiry', 'first_seen_at', 'state', 'state_reason', 'state_changed_at', 'chip_used',
    'chip_sterilization_tally', 'chip_use_tally', 'chip_seen_at', 'pen_board', 'pen_build', 'pen_serial', 'operator'] },
  { table: 'sessions', rowId: 'id', columns: ['id', 'started_at', 'ended_at', 'target', 'board', 'firmware', 'depth_mm', 'strokes_per_second',
    'planned_seconds', 'outcome', 'summary', 'pen_build', 'pen_serial', 'client_ref', 'needle_started_at', 'cartridge_part_id', 'nosecone_part_id'] },
  { table: 'faults', rowId: 'id', columns: ['id', 'session_id', 'at', 'source', 'code', 'text', 'context', 'pen_board', 'pen_build', 'pen_serial'] },
  { table: 'audit_log', rowId: 'id', columns: ['id', 'at', 'session_id', 'command', 'arguments', 'result', 'pen_board', 'pen_build', 'pen_serial',
    'operator', 'role'] },
  { table: 'calibrations', rowId: 'id', columns: ['id', 'at', 'kind', 'pen_board', 'pen_build', 'pen_serial', 'technician', 'gauge_id', 'gauge_due',
    'verdict', 'reason', 'readings', 'fit', 'verification', 'old_values', 'new_values', 'needle_seconds'] },
  { table: 'sterilization_cycles', rowId: 'id', columns: ['id', 'at', 'cycle', 'sterilizer_id', 'load_number', 'chemical_indicator',
    'biological_indicator', 'operator', 'pen_board', 'pen_build', 'pen_serial'] },
  // No single id: the row is named by its cycle and part.
  { table: 'sterilization_cycle_parts', rowId: "cycle_id || '/' || part_id", columns: ['cycle_id', 'part_id'] },
  { table: 'biological_indicator_results', rowId: 'id', columns: ['id', 'at', 'sterilizer_id', 'load_number', 'result', 'operator', 'pen_board',
    'pen_build', 'pen_serial'] },
  { table: 'part_events', rowId: 'id', columns: ['id', 'part_id', 'at', 'event', 'detail', 'operator', 'pen_board', 'pen_build', 'pen_serial'] },
];

/** The tables whose every row version is chained, in the order their existing rows were chained at the upgrade. */
export const chainedTables: readonly string[] = chained.map((entry) => entry.table);

/** The previous hash of the first entry. */
export const genesisHash = '0'.repeat(64);

/** One place that something does not verify: a ledger entry (seq) or a row of a table (seq null: it has no entry). */
export interface ChainProblem {
  readonly seq: number | null;
  readonly table: string;
  readonly rowId: string;
  readonly problem: string;
}

export interface ChainVerdict {
  readonly ok: boolean;
  /** Ledger entries walked. */
  readonly entries: number;
  /** Table rows compared with their latest entry. */
  readonly rowsChecked: number;
  /** The last entry's hash (null for an empty ledger): kept elsewhere, it shows later that nothing was rewritten up to it. */
  readonly headHash: string | null;
  /** The earliest problem in ledger order (rows added behind the application's back, which have no entry, come last). */
  readonly firstProblem: ChainProblem | null;
  /** The first problems in ledger order, at most problemsKept of them; problemCount says how many there are. */
  readonly problems: readonly ChainProblem[];
  readonly problemCount: number;
}

const problemsKept = 20;

/** A ledger entry as stored. */
interface Entry { seq: number; at: string; tbl: string; row_id: string; action: string; content: string; prev_hash: string; hash: string }

/**
 * An entry's hash: SHA-256, lower-case hex, of the UTF-8 bytes of JSON.stringify([seq, at, table, rowId, action, prevHash,
 * content]): a JSON array without whitespace, seq a number and the rest strings (content is the row's JSON as text).
 * The same function computes it in the triggers (through pen_chain_hash) and in verifyRecords.
 */
export function entryHash(seq: number, at: string, table: string, rowId: string, action: string, prevHash: string, content: string): string {
  return createHash('sha256').update(JSON.stringify([seq, at, table, rowId, action, prevHash, content]), 'utf8').digest('hex');
}

/**
 * Registers the SQL functions the triggers call: pen_chain_hash (entryHash) and pen_now (the entry's time, ISO 8601
 * from the store's clock; the wall clock when none is given). Must run on every connection before anything writes or
 * migrates through it.
 */
export function registerChainFunctions(db: Database.Database, now: () => string = () => new Date().toISOString()): void {
  db.function('pen_chain_hash', { deterministic: true }, (seq: unknown, at: unknown, table: unknown, rowId: unknown, action: unknown,
    prevHash: unknown, content: unknown) => entryHash(Number(seq), String(at), String(table), String(rowId), String(action), String(prevHash), String(content)));
  db.function('pen_now', () => now());
}

/** The row's content as SQL over `alias` (NEW in a trigger): its columns in order; a BLOB (never written by the application) as hex. */
function contentSql(columns: readonly string[], alias: string): string {
  const pairs = columns.map((column) => `'${column}', iif(typeof(${alias}.${column}) = 'blob', 'blob:' || hex(${alias}.${column}), ${alias}.${column})`);
  return `json_object(${pairs.join(', ')})`;
}

/** The row's name in the ledger, as SQL over `alias`. */
function rowIdSql(rowId: string, alias: string): string {
  return rowId === 'id' ? `CAST(${alias}.id AS TEXT)` : rowId.replace(/\b(cycle_id|part_id)\b/g, `${alias}.$1`);
}

/**
 * An INSERT of one entry for the row `alias` of `table`. The entry's values are computed once, in a subquery that
 * OFFSET 0 keeps from being merged into the outer query, so pen_now() is read once for both the time and the hash.
 */
function appendEntrySql(table: string, action: 'insert' | 'update', alias: string, from: string): string {
  const spec = chained.find((entry) => entry.table === table);
  if (spec === undefined) throw new Error(`${table} is not a chained table`);
  return `INSERT INTO record_chain (seq, at, tbl, row_id, action, content, prev_hash, hash)
    SELECT e.seq, e.at, '${table}', e.row_id, '${action}', e.content, e.prev_hash,
           pen_chain_hash(e.seq, e.at, '${table}', e.row_id, '${action}', e.prev_hash, e.content)
    FROM (SELECT coalesce((SELECT max(seq) FROM record_chain), 0) + 1 AS seq, pen_now() AS at, ${rowIdSql(spec.rowId, alias)} AS row_id,
                 ${contentSql(spec.columns, alias)} AS content,
                 coalesce((SELECT hash FROM record_chain ORDER BY seq DESC LIMIT 1), '${genesisHash}') AS prev_hash
          ${from} LIMIT -1 OFFSET 0) AS e`;
}

/** The AFTER INSERT and AFTER UPDATE triggers that chain every row version of a table. */
export function chainTriggersSql(table: string): string {
  return `CREATE TRIGGER ${table}_chain_insert AFTER INSERT ON ${table} BEGIN ${appendEntrySql(table, 'insert', 'NEW', '')}; END;
    CREATE TRIGGER ${table}_chain_update AFTER UPDATE ON ${table} BEGIN ${appendEntrySql(table, 'update', 'NEW', '')}; END;`;
}

/** Chains every row of the table as it is now, in rowid order (the upgrade's genesis entries). */
export function chainExistingRows(db: Database.Database, table: string, action: 'insert' | 'update'): number {
  const append = db.prepare(appendEntrySql(table, action, 'r', `FROM ${table} AS r WHERE r.rowid = ?`));
  let count = 0;
  // Named, since SQLite calls a rowid that is an INTEGER PRIMARY KEY by the column's name.
  for (const { rowNumber } of db.prepare(`SELECT rowid AS rowNumber FROM ${table} ORDER BY rowid`).all() as { rowNumber: number }[]) {
    append.run(rowNumber);
    count += 1;
  }
  return count;
}

/**
 * Schema version 6: the ledger (append-only, like the audit log), the triggers on every chained table, and an entry for
 * every row already there so that an upgraded store verifies from the start. Runs in the migration's transaction.
 */
export function installChain(db: Database.Database): void {
  db.exec(`CREATE TABLE record_chain (
      seq INTEGER PRIMARY KEY,
      at TEXT NOT NULL,
      tbl TEXT NOT NULL,
      row_id TEXT NOT NULL,
      action TEXT NOT NULL CHECK (action IN ('insert', 'update')),
      content TEXT NOT NULL,
      prev_hash TEXT NOT NULL,
      hash TEXT NOT NULL
    );
    CREATE INDEX record_chain_row ON record_chain (tbl, row_id, seq);
    CREATE TRIGGER record_chain_no_update BEFORE UPDATE ON record_chain BEGIN SELECT RAISE(ABORT, 'the record chain is append-only'); END;
    CREATE TRIGGER record_chain_no_delete BEFORE DELETE ON record_chain BEGIN SELECT RAISE(ABORT, 'the record chain is append-only'); END;
    ${chainedTables.map(chainTriggersSql).join('\n')}`);
  for (const table of chainedTables) chainExistingRows(db, table, 'insert');
}

/** How long the ledger is and its last entry's hash. */
export function chainHead(db: Database.Database): { readonly entries: number; readonly headHash: string | null } {
  return inOneSnapshot(db, () => {
    const head = db.prepare('SELECT seq, hash FROM record_chain ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: string } | undefined;
    const { entries } = db.prepare('SELECT count(*) AS entries FROM record_chain').get() as { entries: number };
    return { entries, headHash: head?.hash ?? null };
  });
}

/**
 * Runs several reads on one snapshot of the database (a read transaction: WAL keeps it whole while other processes
 * write), so that a store being written is judged as it stood at one instant; within an open transaction, as it is.
 */
function inOneSnapshot<T>(db: Database.Database, read: () => T): T {
  return db.inTransaction ? read() : db.transaction(read).deferred();
}

/** The columns whose values differ between two contents, in words: `result is "forged", was "ok"`. */
function differences(chainedContent: string, current: string): string {
  try {
    const before = JSON.parse(chainedContent) as Record<string, unknown>;
    const now = JSON.parse(current) as Record<string, unknown>;
    const columns = [...new Set([...Object.keys(before), ...Object.keys(now)])];
    const changed = columns.filter((column) => JSON.stringify(before[column]) !== JSON.stringify(now[column]));
    if (changed.length === 0) return '';
    return changed.slice(0, 3).map((column) => `${column} is ${JSON.stringify(now[column] ?? null)}, was ${JSON.stringify(before[column] ?? null)}`)
      .join('; ') + (changed.length > 3 ? `; and ${changed.length - 3} more column(s)` : '');
  } catch {
    return 'the entry\'s content is not readable';
  }
}

/** Equal contents: byte for byte, else as parsed JSON (a newer SQLite may write the same values differently). */
function sameContent(chainedContent: string, current: string): boolean {
  if (chainedContent === current) return true;
  try {
    return JSON.stringify(JSON.parse(chainedContent)) === JSON.stringify(JSON.parse(current));
  } catch {
    return false;
  }
}

/**
 * Walks the ledger (seq contiguous from 1, each entry's hash recomputed, each linked to the one before) and compares
 * every row of every chained table with its latest entry. Reads only; needs no application function, so a read-only
 * copy verifies too. One pass over the ledger and one per table, with the latest entries in memory.
 */
export function verifyRecords(db: Database.Database): ChainVerdict {
  return inOneSnapshot(db, () => verifyInSnapshot(db));
}

function verifyInSnapshot(db: Database.Database): ChainVerdict {
  const problems: (ChainProblem & { order: number })[] = [];
  // Within one seq: the entry's own problems before those of the row it chains.
  const problem = (seq: number | null, table: string, rowId: string, text: string, order = 0): void => {
    problems.push({ seq, table, rowId, problem: text, order });
  };
  const ledger = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'record_chain'").get();
  if (ledger === undefined) {
    problem(null, 'record_chain', '', 'the store has no record chain (schema before version 6, or the ledger table was dropped)');
    return verdictOf(problems, 0, 0, null);
  }
  const latest = new Map<string, Map<string, { seq: number; content: string }>>(chainedTables.map((table) => [table, new Map()]));
  let entries = 0;
  let previous: Entry | null = null;
  for (const entry of db.prepare('SELECT seq, at, tbl, row_id, action, content, prev_hash, hash FROM record_chain ORDER BY seq').iterate() as
    IterableIterator<Entry>) {
    entries += 1;
    const where = `entry ${entry.seq} (${entry.tbl} row ${entry.row_id})`;
    const expectedSeq = (previous?.seq ?? 0) + 1;
    if (entry.seq !== expectedSeq) {
      // Named by the first missing entry, whose table and row are gone with it.
      problem(expectedSeq, 'record_chain', String(expectedSeq), previous === null
        ? `the record chain starts at entry ${entry.seq}, not 1: entries 1 to ${entry.seq - 1} were deleted behind the application's back`
        : `the record chain jumps from entry ${previous.seq} to ${entry.seq}: ${entry.seq - previous.seq === 2 ? `entry ${expectedSeq} was` : `entries ${expectedSeq} to ${entry.seq - 1} were`} deleted behind the application's back`);
    }
    const recomputed = entryHash(entry.seq, entry.at, entry.tbl, entry.row_id, entry.action, entry.prev_hash, entry.content);
    if (recomputed !== entry.hash) {
      problem(entry.seq, entry.tbl, entry.row_id, `${where} does not match its own hash: the entry was edited behind the application's back`);
    }
    const expectedPrevious = previous?.hash ?? genesisHash;
    if (entry.prev_hash !== expectedPrevious && entry.seq === expectedSeq) {
      problem(entry.seq, entry.tbl, entry.row_id, previous === null
        ? `${where} is the first entry but does not start from the genesis hash: entries before it were removed or it was replaced`
        : `${where} does not link to entry ${previous.seq}: entry ${previous.seq} was rewritten, replaced or moved behind the application's back`);
    }
    const rows = latest.get(entry.tbl);
    if (rows === undefined) problem(entry.seq, entry.tbl, entry.row_id, `${where} names a table that is not chained: the entry was forged`);
    else rows.set(entry.row_id, { seq: entry.seq, content: entry.content });
    previous = entry;
  }
  let rowsChecked = 0;
  for (const spec of chained) {
    const rows = latest.get(spec.table) as Map<string, { seq: number; content: string }>;
    let current: IterableIterator<{ row_id: string; content: string }>;
    try {
      current = db.prepare(`SELECT ${rowIdSql(spec.rowId, 'r')} AS row_id, ${contentSql(spec.columns, 'r')} AS content FROM ${spec.table} AS r ORDER BY r.rowid`)
        .iterate() as IterableIterator<{ row_id: string; content: string }>;
    } catch (error) {
      problem(null, spec.table, '', `the table ${spec.table} cannot be read as chained (${error instanceof Error ? error.message : String(error)}): ` +
        'it was dropped or altered behind the application\'s back');
      continue;
    }
    for (const row of current) {
      rowsChecked += 1;
      const entry = rows.get(row.row_id);
      if (entry === undefined) {
        problem(null, spec.table, row.row_id, `${spec.table} row ${row.row_id} is in no record chain entry: the row was added behind the application's back`);
        continue;
      }
      rows.delete(row.row_id);
      if (!sameContent(entry.content, row.content)) {
        const what = differences(entry.content, row.content);
        problem(entry.seq, spec.table, row.row_id, `${spec.table} row ${row.row_id} differs from its last chained version (entry ${entry.seq})` +
          `${what === '' ? '' : `: ${what}`}; the row was edited behind the application's back`, 1);
      }
    }
    for (const [rowId, entry] of rows) {
      problem(entry.seq, spec.table, rowId, `${spec.table} row ${rowId} is chained (entry ${entry.seq}) but no longer in the table: ` +
        'the row was deleted behind the application\'s back', 1);
    }
  }
  return verdictOf(problems, entries, rowsChecked, previous?.hash ?? null);
}

function verdictOf(found: (ChainProblem & { order: number })[], entries: number, rowsChecked: number, headHash: string | null): ChainVerdict {
  const sorted = found.sort((a, b) => (a.seq ?? Infinity) - (b.seq ?? Infinity) || a.order - b.order);
  const problems = sorted.slice(0, problemsKept).map(({ seq, table, rowId, problem }) => ({ seq, table, rowId, problem }));
  return { ok: sorted.length === 0, entries, rowsChecked, headHash, firstProblem: problems[0] ?? null, problems, problemCount: sorted.length };
}
