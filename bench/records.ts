// The records' write rate with the tamper-evident chain on and off, one writer and four: each writer a process of its
// own (as `pen` processes are), appending audit entries and faults through the store for a fixed time, each record
// its own committed transaction (synchronous = FULL, WAL). "Off" drops the chain's triggers from a copy of the schema,
// so the difference is what the chain costs.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { RealClock } from '../hardware/clock.ts';
import { PenStore } from '../src/store/store.ts';
import { progress, round, type Figure } from './figure.ts';

const seconds = 3;

/** Creates a store, without its chain triggers when chained is false; its path. */
function freshStore(folder: string, chained: boolean): string {
  const path = join(folder, `${chained ? 'chained' : 'plain'}.db`);
  PenStore.open(path, new RealClock()).close();
  if (!chained) {
    const db = new Database(path);
    const triggers = db.prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name != 'record_chain' AND sql LIKE '%record_chain%'").all() as { name: string }[];
    if (triggers.length === 0) throw new Error('found no chain triggers to drop: the "off" figure would not be without the chain');
    for (const { name } of triggers) db.exec(`DROP TRIGGER "${name}"`);
    db.close();
  }
  return path;
}

/** writers processes append to path for `seconds`; the records all of them committed, per second. */
async function rate(path: string, writers: number): Promise<number> {
  const counts = await Promise.all(Array.from({ length: writers }, () => new Promise<number>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'tests/fixtures/store-writer.ts', path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let lines = 0;
    let started = false;
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      // Counted from the first record on, so that each process's start-up is not in the figure.
      if (!started) {
        started = true;
        setTimeout(() => child.kill('SIGTERM'), seconds * 1000);
        return;
      }
      for (const byte of chunk) if (byte === 0x0a) lines += 1;
    });
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    child.on('exit', () => (started ? resolve(lines * 2) : reject(new Error(`a writer wrote nothing: ${stderr}`))));  // two records a line
  })));
  return counts.reduce((sum, n) => sum + n, 0) / seconds;
}

export async function measure(): Promise<Figure[]> {
  const folder = mkdtempSync(join(tmpdir(), 'pen-records-bench-'));
  const figures: Figure[] = [];
  try {
    for (const writers of [1, 4]) {
      for (const chained of [false, true]) {
        progress(`${writers} writer${writers === 1 ? '' : 's'}, chain ${chained ? 'on' : 'off'}: ${seconds} s`);
        const perSecond = await rate(freshStore(join(folder, `${writers}`), chained), writers);
        figures.push({
          name: `records_per_second_${writers}_writer${writers === 1 ? '' : 's'}_chain_${chained ? 'on' : 'off'}`, value: round(perSecond, 0), unit: 'records/s',
          note: `fault + audit entry, each committed (WAL, synchronous FULL), ${writers} process${writers === 1 ? '' : 'es'}`,
        });
        const check = new Database(join(folder, `${writers}`, `${chained ? 'chained' : 'plain'}.db`), { readonly: true });
        if (chained) {
          const entries = (check.prepare('SELECT count(*) AS n FROM record_chain').get() as { n: number }).n;
          if (entries === 0) throw new Error('the chained store has no chain entries: the "on" figure would not be with the chain');
        }
        check.close();
      }
    }
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
  return figures;
}
