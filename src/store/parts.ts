// Part records in the store: parts by their chip's ROM id, sterilization cycles, biological indicator results per
// sterilizer load, part events, and the sessions each part was used in. Rows in and out; the rules are in
// src/sterilization/registry.ts.
import type Database from 'better-sqlite3';
import type { PenRecordIdentity } from './store.ts';

export type PartKind = 'cartridge' | 'nosecone';
/** in_service: usable as far as the records go (its status says whether it is ready now); retired and flagged are final. */
export type PartState = 'in_service' | 'retired' | 'flagged';
export type ChemicalIndicator = 'pass' | 'fail';
export type BiologicalIndicator = 'pending' | 'pass' | 'fail';

/** Who wrote a record: the operator always, the pen when one was connected. */
export interface RecordActor {
  readonly pen: PenRecordIdentity | null;
  readonly operator: string;
}

/** What a part's chip said when last read (each field null when that kind of part does not carry it). */
export interface ChipSeen {
  readonly at: string;
  readonly used: boolean | null;
  readonly sterilizationTally: number | null;
  readonly useTally: number | null;
}

export interface PartRecord {
  /** The chip's ROM id: 16 lower-case hex digits. */
  readonly id: string;
  readonly kind: PartKind;
  readonly lot: string;
  /** YYYY-MM-DD, the last day the part may be used; null when it has none. */
  readonly expiry: string | null;
  readonly firstSeenAt: string;
  readonly firstSeenBy: RecordActor;
  readonly state: PartState;
  readonly stateReason: string | null;
  readonly stateChangedAt: string | null;
  readonly chip: ChipSeen | null;
}

export interface NewPart {
  readonly id: string;
  readonly kind: PartKind;
  readonly lot: string;
  readonly expiry: string | null;
}

export interface CycleRecord {
  readonly id: number;
  readonly at: string;
  /** The catalogue name (config/sterilization-cycles.json). */
  readonly cycle: string;
  readonly sterilizerId: string;
  readonly loadNumber: number;
  readonly chemicalIndicator: ChemicalIndicator;
  /** As recorded with the cycle; later results for the load are in BiologicalResult records. */
  readonly biologicalIndicator: BiologicalIndicator;
  readonly partIds: readonly string[];
  readonly operator: string;
  readonly pen: PenRecordIdentity | null;
}

export interface NewCycle {
  readonly cycle: string;
  readonly sterilizerId: string;
  readonly loadNumber: number;
  readonly chemicalIndicator: ChemicalIndicator;
  readonly biologicalIndicator: BiologicalIndicator;
  readonly partIds: readonly string[];
}

/** A biological indicator read for a whole sterilizer load. */
export interface BiologicalResult {
  readonly id: number;
  readonly at: string;
  readonly sterilizerId: string;
  readonly loadNumber: number;
  readonly result: 'pass' | 'fail';
  readonly operator: string;
  readonly pen: PenRecordIdentity | null;
}

/** A session in which the part was fitted and the needle ran. */
export interface PartUse {
  readonly sessionId: number;
  /** When the needle first ran in it. */
  readonly at: string;
  readonly penSerial: string | null;
}

export interface PartEvent {
  readonly id: number;
  readonly partId: string;
  readonly at: string;
  /** registered, retired, flagged, ... */
  readonly event: string;
  readonly detail: Record<string, unknown>;
  readonly operator: string | null;
  readonly pen: PenRecordIdentity | null;
}

/** Everything on record about one part, oldest first in each list. */
export interface PartHistory {
  readonly part: PartRecord;
  readonly cycles: readonly CycleRecord[];
  /** Biological indicator results of the loads the part was in. */
  readonly loadResults: readonly BiologicalResult[];
  readonly uses: readonly PartUse[];
  readonly events: readonly PartEvent[];
}

interface PenColumns { pen_board: string | null; pen_build: string | null; pen_serial: string | null }
interface PartRow extends PenColumns {
  id: string; kind: PartKind; lot: string; expiry: string | null; first_seen_at: string; state: PartState; state_reason: string | null;
  state_changed_at: string | null; chip_used: number | null; chip_sterilization_tally: number | null; chip_use_tally: number | null;
  chip_seen_at: string | null; operator: string | null;
}
interface CycleRow extends PenColumns {
  id: number; at: string; cycle: string; sterilizer_id: string; load_number: number; chemical_indicator: ChemicalIndicator;
  biological_indicator: BiologicalIndicator; operator: string; part_ids: string;
}
interface ResultRow extends PenColumns { id: number; at: string; sterilizer_id: string; load_number: number; result: 'pass' | 'fail'; operator: string }
interface EventRow extends PenColumns { id: number; part_id: string; at: string; event: string; detail: string; operator: string | null }

const penOf = (row: PenColumns): PenRecordIdentity | null =>
  row.pen_board === null || row.pen_build === null ? null : { board: row.pen_board, buildId: row.pen_build, serial: row.pen_serial };
const penValues = (pen: PenRecordIdentity | null): [string | null, string | null, string | null] =>
  [pen?.board ?? null, pen?.buildId ?? null, pen?.serial ?? null];

const partOf = (row: PartRow): PartRecord => ({
  id: row.id, kind: row.kind, lot: row.lot, expiry: row.expiry, firstSeenAt: row.first_seen_at,
  firstSeenBy: { pen: penOf(row), operator: row.operator ?? 'unknown' },
  state: row.state, stateReason: row.state_reason, stateChangedAt: row.state_changed_at,
  chip: row.chip_seen_at === null ? null : {
    at: row.chip_seen_at, used: row.chip_used === null ? null : row.chip_used !== 0,
    sterilizationTally: row.chip_sterilization_tally, useTally: row.chip_use_tally,
  },
});
const cycleOf = (row: CycleRow): CycleRecord => ({
  id: row.id, at: row.at, cycle: row.cycle, sterilizerId: row.sterilizer_id, loadNumber: row.load_number,
  chemicalIndicator: row.chemical_indicator, biologicalIndicator: row.biological_indicator,
  partIds: row.part_ids.split(',').filter((id) => id !== ''), operator: row.operator, pen: penOf(row),
});
const resultOf = (row: ResultRow): BiologicalResult => ({
  id: row.id, at: row.at, sterilizerId: row.sterilizer_id, loadNumber: row.load_number, result: row.result, operator: row.operator, pen: penOf(row),
});
const eventOf = (row: EventRow): PartEvent => ({
  id: row.id, partId: row.part_id, at: row.at, event: row.event, detail: JSON.parse(row.detail) as Record<string, unknown>,
  operator: row.operator, pen: penOf(row),
});

const cycleSelect = `SELECT c.*, (SELECT group_concat(part_id) FROM (SELECT part_id FROM sterilization_cycle_parts WHERE cycle_id = c.id ORDER BY part_id)) AS part_ids
                     FROM sterilization_cycles c`;

export class PartRecords {
  constructor(private readonly db: Database.Database, private readonly now: () => string) {}

  part(id: string): PartRecord | null {
    const row = this.db.prepare('SELECT * FROM parts WHERE id = ?').get(id) as PartRow | undefined;
    return row === undefined ? null : partOf(row);
  }

  /** Every part, in the order first seen. */
  all(): PartRecord[] {
    return (this.db.prepare('SELECT * FROM parts ORDER BY first_seen_at, id').all() as PartRow[]).map(partOf);
  }

  /** Registers a part first seen now, with a `registered` event. */
  register(part: NewPart, actor: RecordActor): PartRecord {
    return this.db.transaction(() => {
      const at = this.now();
      this.db.prepare(`INSERT INTO parts (id, kind, lot, expiry, first_seen_at, pen_board, pen_build, pen_serial, operator)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
        .run(part.id, part.kind, part.lot, part.expiry, at, ...penValues(actor.pen), actor.operator);
      this.addEvent(part.id, 'registered', { kind: part.kind, lot: part.lot, expiry: part.expiry }, actor);
      return this.part(part.id) as PartRecord;
    })();
  }

  /** Keeps what the part's chip said now (its one-way marks), for the next cross-check. */
  chipSeen(id: string, chip: Omit<ChipSeen, 'at'>): void {
    this.db.prepare('UPDATE parts SET chip_used = ?, chip_sterilization_tally = ?, chip_use_tally = ?, chip_seen_at = ? WHERE id = ?')
      .run(chip.used === null ? null : chip.used ? 1 : 0, chip.sterilizationTally, chip.useTally, this.now(), id);
  }

  /** Moves the part to a final state (retired, flagged) with the reason, and records the event with its detail. */
  setState(id: string, state: Exclude<PartState, 'in_service'>, reason: string, actor: RecordActor, detail: Record<string, unknown> = {}): void {
    this.db.transaction(() => {
      const at = this.now();
      this.db.prepare('UPDATE parts SET state = ?, state_reason = ?, state_changed_at = ? WHERE id = ?').run(state, reason, at, id);
      this.addEvent(id, state, { reason, ...detail }, actor);
    })();
  }

  addEvent(partId: string, event: string, detail: Record<string, unknown>, actor: RecordActor): number {
    const result = this.db.prepare('INSERT INTO part_events (part_id, at, event, detail, operator, pen_board, pen_build, pen_serial) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(partId, this.now(), event, JSON.stringify(detail), actor.operator, ...penValues(actor.pen));
    return Number(result.lastInsertRowid);
  }

  /** Records one cycle of a load for the parts in it; a biological indicator read with it is also the load's result. */
  recordCycle(cycle: NewCycle, actor: RecordActor): CycleRecord {
    return this.db.transaction(() => {
      const at = this.now();
      const inserted = this.db.prepare(`INSERT INTO sterilization_cycles
          (at, cycle, sterilizer_id, load_number, chemical_indicator, biological_indicator, operator, pen_board, pen_build, pen_serial)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
        .run(at, cycle.cycle, cycle.sterilizerId, cycle.loadNumber, cycle.chemicalIndicator, cycle.biologicalIndicator, actor.operator, ...penValues(actor.pen));
      const id = Number(inserted.lastInsertRowid);
      const link = this.db.prepare('INSERT INTO sterilization_cycle_parts (cycle_id, part_id) VALUES (?, ?)');
      for (const partId of cycle.partIds) link.run(id, partId);
      if (cycle.biologicalIndicator !== 'pending') this.recordBiologicalResult(cycle.sterilizerId, cycle.loadNumber, cycle.biologicalIndicator, actor);
      return cycleOf(this.db.prepare(`${cycleSelect} WHERE c.id = ?`).get(id) as CycleRow);
    })();
  }

  recordBiologicalResult(sterilizerId: string, loadNumber: number, result: 'pass' | 'fail', actor: RecordActor): BiologicalResult {
    const inserted = this.db.prepare(`INSERT INTO biological_indicator_results (at, sterilizer_id, load_number, result, operator, pen_board, pen_build, pen_serial)
                                      VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(this.now(), sterilizerId, loadNumber, result, actor.operator, ...penValues(actor.pen));
    return resultOf(this.db.prepare('SELECT * FROM biological_indicator_results WHERE id = ?').get(Number(inserted.lastInsertRowid)) as ResultRow);
  }

  /** The cycles recorded for a sterilizer load, oldest first. */
  loadCycles(sterilizerId: string, loadNumber: number): CycleRecord[] {
    return (this.db.prepare(`${cycleSelect} WHERE c.sterilizer_id = ? AND c.load_number = ? ORDER BY c.at, c.id`).all(sterilizerId, loadNumber) as CycleRow[])
      .map(cycleOf);
  }

  /** Every cycle, or those the part went through, oldest first. */
  cycles(partId?: string): CycleRecord[] {
    const rows = partId === undefined
      ? this.db.prepare(`${cycleSelect} ORDER BY c.at, c.id`).all()
      : this.db.prepare(`${cycleSelect} WHERE c.id IN (SELECT cycle_id FROM sterilization_cycle_parts WHERE part_id = ?) ORDER BY c.at, c.id`).all(partId);
    return (rows as CycleRow[]).map(cycleOf);
  }

  /** Every biological indicator result, oldest first. */
  biologicalResults(): BiologicalResult[] {
    return (this.db.prepare('SELECT * FROM biological_indicator_results ORDER BY at, id').all() as ResultRow[]).map(resultOf);
  }

  /** The biological indicator results of the loads of these cycles, oldest first. */
  resultsForLoads(cycles: readonly CycleRecord[]): BiologicalResult[] {
    const loads = [...new Set(cycles.map((cycle) => JSON.stringify([cycle.sterilizerId, cycle.loadNumber])))];
    if (loads.length === 0) return [];
    const rows = this.db.prepare(`SELECT r.* FROM biological_indicator_results r
        WHERE EXISTS (SELECT 1 FROM json_each(?) l WHERE json_extract(l.value, '$[0]') = r.sterilizer_id AND json_extract(l.value, '$[1]') = r.load_number)
        ORDER BY r.at, r.id`).all(`[${loads.join(',')}]`) as ResultRow[];
    return rows.map(resultOf);
  }

  /** The sessions in which the needle ran with this part fitted (as cartridge or nosecone), oldest first. */
  uses(partId: string): PartUse[] {
    const rows = this.db.prepare(`SELECT id, needle_started_at, pen_serial FROM sessions
        WHERE (cartridge_part_id = @id OR nosecone_part_id = @id) AND needle_started_at IS NOT NULL ORDER BY needle_started_at, id`)
      .all({ id: partId }) as { id: number; needle_started_at: string; pen_serial: string | null }[];
    return rows.map((row) => ({ sessionId: row.id, at: row.needle_started_at, penSerial: row.pen_serial }));
  }

  /** Everything on record about the part, or null if it is not registered. */
  history(id: string): PartHistory | null {
    const part = this.part(id);
    if (part === null) return null;
    const cycles = this.cycles(id);
    const events = (this.db.prepare('SELECT * FROM part_events WHERE part_id = ? ORDER BY at, id').all(id) as EventRow[]).map(eventOf);
    return { part, cycles, loadResults: this.resultsForLoads(cycles), uses: this.uses(id), events };
  }
}
