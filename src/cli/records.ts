// `pen records`: the records an auditor checks. `verify` walks the tamper-evident chain (src/store/chain.ts) of the store,
// or of an export; `export` writes a consistent snapshot (SQLite's online backup, not a copy of a live WAL file), CSV and
// JSON of every table, and a manifest carrying the chain head, which is worth keeping somewhere else.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { Command, Option } from 'commander';
import { RealClock } from '../../hardware/clock.ts';
import { operatorName } from '../store/actor.ts';
import { chainHead, registerChainFunctions, verifyRecords, type ChainProblem, type ChainVerdict } from '../store/chain.ts';
import { defaultStorePath, PenStore } from '../store/store.ts';
import { ExitCode, UsageError } from './format.ts';
import { csvCell } from './parts.ts';

const manifestName = 'manifest.json';
const snapshotName = 'pen.db';
const manifestFormat = 'pen-records-export';

/** A file of an export and its SHA-256, as the manifest lists it. */
interface ExportedFile {
  readonly file: string;
  readonly sha256: string;
}

interface Manifest {
  readonly format: typeof manifestFormat;
  readonly version: 1;
  readonly exportedAt: string;
  readonly exportedBy: string;
  readonly host: string;
  readonly source: string;
  readonly schemaVersion: number;
  readonly database: ExportedFile & { readonly bytes: number };
  readonly tables: Readonly<Record<string, { readonly rows: number; readonly csv: ExportedFile; readonly json: ExportedFile }>>;
  readonly chain: { readonly entries: number; readonly headHash: string | null };
  readonly verified: { readonly ok: boolean; readonly firstProblem: ChainProblem | null };
}

/** The store or export could not be opened as one (missing, not a store, too old): exit 3. */
class CannotOpenError extends Error {}

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

/** A read-only connection to a store file that must exist and carry the record chain, with the chain's SQL function. */
function openForReading(path: string): Database.Database {
  if (!existsSync(path)) throw new CannotOpenError(`no store at ${path}: give --db PATH (the default is ${defaultStorePath()})`);
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    db.pragma('schema_version');  // reads the header: not a database fails here
  } catch (error) {
    throw new CannotOpenError(`${path} is not a pen store: ${error instanceof Error ? error.message : String(error)}`);
  }
  const hasChain = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'record_chain'").get() as { n: number };
  if (hasChain.n === 0) {
    const version = db.pragma('user_version', { simple: true }) as number;
    db.close();
    throw new CannotOpenError(`${path} is a pen store of schema version ${version}, from before the record chain: open it once with any pen command ` +
      '(pen audit, for one) to bring it up to date, then verify it');
  }
  registerChainFunctions(db);
  return db;
}

function problemText(problem: ChainProblem): string {
  return `${problem.seq === null ? '' : `chain entry ${problem.seq}: `}${problem.table} row ${problem.rowId}: ${problem.problem}`;
}

function verdictLines(verdict: ChainVerdict, where: string): string[] {
  if (verdict.ok) {
    return [`${where}: verified: ${verdict.entries} chain entries, ${verdict.rowsChecked} rows, all as the application wrote them; head ${verdict.headHash ?? '(empty chain)'}`];
  }
  const more = verdict.problemCount > 1 ? ` (${verdict.problemCount - 1} more problem${verdict.problemCount === 2 ? '' : 's'})` : '';
  const unlisted = verdict.problemCount - verdict.problems.length;
  return [
    `${where}: DOES NOT VERIFY: the first row that does not: ${verdict.firstProblem === null ? 'unknown' : problemText(verdict.firstProblem)}${more}`,
    ...verdict.problems.slice(1).map((p) => `  also: ${problemText(p)}`),
    ...(unlisted > 0 ? [`  and ${unlisted} more not listed (--json lists the same first ${verdict.problems.length})`] : []),
  ];
}

/** The tables of a store file, with their columns, in name order. */
function tableNames(db: Database.Database): string[] {
  return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
}

function cellText(value: unknown): string | number | boolean | null {
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  if (typeof value === 'bigint') return value.toString();
  if (Buffer.isBuffer(value)) return value.toString('hex');
  return JSON.stringify(value);
}

/** Writes one table as CSV (RFC 4180, a header row) and JSON (an array of row objects), in rowid order. */
function writeTable(db: Database.Database, table: string, folder: string): { rows: number; csv: ExportedFile; json: ExportedFile } {
  const statement = db.prepare(`SELECT * FROM "${table.replaceAll('"', '""')}" ORDER BY rowid`);
  const columns = statement.columns().map((c) => c.name);
  const rows = statement.all() as Record<string, unknown>[];
  const csv = `${[columns.join(','), ...rows.map((row) => columns.map((c) => csvCell(cellText(row[c]))).join(','))].join('\r\n')}\r\n`;
  const json = `${JSON.stringify(rows.map((row) => Object.fromEntries(columns.map((c) => [c, cellText(row[c])]))), null, 1)}\n`;
  const csvFile = join('tables', `${table}.csv`);
  const jsonFile = join('tables', `${table}.json`);
  writeFileSync(join(folder, csvFile), csv);
  writeFileSync(join(folder, jsonFile), json);
  return { rows: rows.length, csv: { file: csvFile, sha256: sha256(csv) }, json: { file: jsonFile, sha256: sha256(json) } };
}

interface ExportFlags { readonly out: string; readonly db?: string; readonly json?: boolean }

/** `pen records export --out DIR`: snapshot, tables, manifest (written last: its presence marks a whole export). */
async function exportCommand(flags: ExportFlags, setExit: (code: number) => void): Promise<void> {
  const out = resolve(flags.out);
  if (existsSync(out) && readdirSync(out).length > 0) {
    throw new UsageError(`--out ${out} exists and is not empty: give a new folder (an export is never written over another)`);
  }
  const source = resolve(flags.db ?? defaultStorePath());
  if (!existsSync(source)) throw new CannotOpenError(`no store at ${source}: give --db PATH`);
  mkdirSync(join(out, 'tables'), { recursive: true });
  const partial = join(out, `${snapshotName}.partial`);
  const store = PenStore.open(source, new RealClock());
  try {
    let shown = 0;
    await store.backupTo(partial, (done, total) => {
      // Progress on anything that takes a while: a line per tenth of the pages, on stderr.
      if (total > 0 && done * 10 >= (shown + 1) * total) {
        shown = Math.floor((done * 10) / total);
        process.stderr.write(`export: copied ${done} of ${total} pages\n`);
      }
    });
  } finally {
    store.close();
  }
  renameSync(partial, join(out, snapshotName));
  const snapshotBytes = readFileSync(join(out, snapshotName));
  const db = openForReading(join(out, snapshotName));
  let manifest: Manifest;
  try {
    const tables: Record<string, Manifest['tables'][string]> = {};
    for (const table of tableNames(db)) tables[table] = writeTable(db, table, out);
    const verdict = verifyRecords(db);
    manifest = {
      format: manifestFormat, version: 1, exportedAt: new Date().toISOString(), exportedBy: operatorName(), host: hostname(), source,
      schemaVersion: db.pragma('user_version', { simple: true }) as number,
      database: { file: snapshotName, sha256: sha256(snapshotBytes), bytes: snapshotBytes.length },
      tables, chain: chainHead(db), verified: { ok: verdict.ok, firstProblem: verdict.firstProblem },
    };
  } finally {
    db.close();
  }
  writeFileSync(join(out, `${manifestName}.partial`), `${JSON.stringify(manifest, null, 2)}\n`);
  renameSync(join(out, `${manifestName}.partial`), join(out, manifestName));
  const rows = Object.values(manifest.tables).reduce((sum, t) => sum + t.rows, 0);
  if (flags.json === true) {
    console.log(JSON.stringify({ out, ...manifest }, null, 2));
  } else {
    console.log(`exported ${rows} rows of ${Object.keys(manifest.tables).length} tables from ${source} to ${out}`);
    console.log(`chain: ${manifest.chain.entries} entries, head ${manifest.chain.headHash ?? '(empty)'}`);
    console.log('keep the head somewhere else (a ticket, an email): `pen records verify --expect-head HEAD` then shows the chain was not rewritten since');
    if (!manifest.verified.ok && manifest.verified.firstProblem !== null) console.log(`THE RECORDS DO NOT VERIFY: ${problemText(manifest.verified.firstProblem)}`);
  }
  setExit(manifest.verified.ok ? ExitCode.ok : ExitCode.failure);
}

interface VerifyFlags { readonly db?: string; readonly from?: string; readonly expectHead?: string; readonly json?: boolean }

/** The export's own files against its manifest: each problem in words. */
function checkExportFiles(folder: string): { manifest: Manifest; problems: string[] } {
  const path = join(folder, manifestName);
  if (!existsSync(path)) throw new CannotOpenError(`${folder} is not a whole export: it has no ${manifestName} (pen records export writes it last)`);
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(path, 'utf8')) as Manifest;
  } catch (error) {
    throw new CannotOpenError(`${path} is not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  // Read from a file, so its format is whatever the file says, whatever the type claims.
  if ((manifest.format as string) !== manifestFormat) throw new CannotOpenError(`${path} is not a pen records export manifest (format ${JSON.stringify(manifest.format)})`);
  const problems: string[] = [];
  const files: ExportedFile[] = [manifest.database, ...Object.values(manifest.tables).flatMap((t) => [t.csv, t.json])];
  for (const file of files) {
    const at = join(folder, file.file);
    if (!existsSync(at)) problems.push(`${file.file} is missing`);
    else if (sha256(readFileSync(at)) !== file.sha256) problems.push(`${file.file} changed since the export (its SHA-256 is not the manifest's)`);
  }
  return { manifest, problems };
}

function verifyCommand(flags: VerifyFlags, setExit: (code: number) => void): void {
  if (flags.from !== undefined && flags.db !== undefined) throw new UsageError('give --db (a store) or --from (an export), not both');
  if (flags.expectHead !== undefined && !/^[0-9a-f]{64}$/.test(flags.expectHead)) {
    throw new UsageError(`--expect-head takes a chain head as an export printed it: 64 lower-case hex digits (got "${flags.expectHead}")`);
  }
  const problems: string[] = [];
  let where: string;
  let dbPath: string;
  let manifest: Manifest | null = null;
  if (flags.from !== undefined) {
    const folder = resolve(flags.from);
    where = `the export in ${folder}`;
    const checked = checkExportFiles(folder);
    manifest = checked.manifest;
    problems.push(...checked.problems);
    dbPath = join(folder, manifest.database.file);
  } else {
    dbPath = resolve(flags.db ?? defaultStorePath());
    where = `the store ${dbPath}`;
  }
  const db = openForReading(dbPath);
  let verdict: ChainVerdict;
  let headFound: boolean | null = null;
  try {
    verdict = verifyRecords(db);
    if (manifest !== null && (verdict.entries !== manifest.chain.entries || verdict.headHash !== manifest.chain.headHash)) {
      problems.push(`the chain (${verdict.entries} entries, head ${verdict.headHash ?? 'none'}) is not the one the manifest names ` +
        `(${manifest.chain.entries} entries, head ${manifest.chain.headHash ?? 'none'})`);
    }
    if (flags.expectHead !== undefined) {
      headFound = db.prepare('SELECT 1 FROM record_chain WHERE hash = ?').get(flags.expectHead) !== undefined;
      if (!headFound) problems.push(`no chain entry ends in the expected head ${flags.expectHead}: the chain was rewritten since that head was kept, or it is another store's`);
    }
  } finally {
    db.close();
  }
  const ok = verdict.ok && problems.length === 0;
  if (flags.json === true) {
    console.log(JSON.stringify({ where, ok, chain: verdict, exportProblems: problems, expectedHeadFound: headFound }, null, 2));
  } else {
    for (const line of verdictLines(verdict, where)) console.log(line);
    for (const problem of problems) console.log(`  ${problem}`);
    if (verdict.ok && problems.length > 0) console.log(`${where}: DOES NOT VERIFY (see above)`);
    if (ok && headFound === true) console.log(`the expected head ${flags.expectHead ?? ''} is in the chain: nothing before it was rewritten`);
  }
  setExit(ok ? ExitCode.ok : ExitCode.failure);
}

export const recordsExitHelp = 'Exit codes: 0 verified (export: written, and the records verify), 1 the records do not verify (the first row ' +
  'that does not is named), 2 bad usage, 3 the store or export cannot be opened.';

/** Runs a records command, turning a store or export that cannot be opened into exit 3 with the reason. */
function guarded<A extends unknown[]>(setExit: (code: number) => void, run: (...args: A) => void | Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await run(...args);
    } catch (error) {
      if (!(error instanceof CannotOpenError)) throw error;
      console.error(`pen records: ${error.message}`);
      setExit(ExitCode.link);
    }
  };
}

export function addRecordsCommand(program: Command, options: { readonly dbOption: () => Option; readonly jsonOption: () => Option }, setExit: (code: number) => void): void {
  const records = program
    .command('records')
    .description('the records an auditor checks: every session, fault, audit entry, calibration and sterilization record is chained ' +
      '(SHA-256 over its content and the previous entry); verify the chain, or export a consistent snapshot with its head');
  records
    .command('verify')
    .description(`walk the chain and compare every row with it; name the first row that does not verify. ${recordsExitHelp}`)
    .option('--from <dir>', 'verify an export (pen records export) instead of the store: its files against its manifest, then its snapshot')
    .option('--expect-head <hash>', 'a chain head kept elsewhere from an earlier export: it must still be in the chain')
    .addOption(options.dbOption()).addOption(options.jsonOption())
    .action(guarded(setExit, (flags: VerifyFlags) => verifyCommand(flags, setExit)));
  records
    .command('export')
    .description('a consistent snapshot of the store (SQLite\'s online backup: safe while pens run), CSV and JSON of every table and a ' +
      `manifest with each file's SHA-256 and the chain head. ${recordsExitHelp}`)
    .requiredOption('--out <dir>', 'a new or empty folder')
    .addOption(options.dbOption()).addOption(options.jsonOption())
    .action(guarded(setExit, (flags: ExportFlags) => exportCommand(flags, setExit)));
}
