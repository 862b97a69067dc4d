// Calibration records in the store: each guided calibration of a pen (depth steps, or the depth sensor) with who did
// it, the gauge and its own calibration due date, every reading, the fit, the verification, and the values before and
// after; and restorations of the default calibration. Append-only, like the audit log. The procedure and its rules
// are in src/calibration/.
import type Database from 'better-sqlite3';
import type { PenRecordIdentity } from './store.ts';

/** depth: the step calibration (technician); sensor: the depth sensor's (engineer); restore_default: nominal values put back. */
export type CalibrationKind = 'depth' | 'sensor' | 'restore_default';
/**
 * accepted: stored and verified; rejected: a fit or verification failed its acceptance criteria (the old calibration
 * kept, or restored if the new one failed verification); aborted: stopped before storing (Ctrl-C, a fault, a lost link).
 */
export type CalibrationVerdict = 'accepted' | 'rejected' | 'aborted';

/** The calibration values in force, as the pen reports them (get_calibration). */
export interface CalibrationValues {
  readonly stepsPerMm: number;
  readonly zeroOffsetMm: number;
  readonly sensorZeroMv: number;
  readonly sensorMvPerMm: number;
}

export interface CalibrationInput {
  readonly kind: CalibrationKind;
  readonly pen: PenRecordIdentity;
  readonly technician: string;
  /** The gauge's id and the date (YYYY-MM-DD) its own calibration is due; null for a restore without a gauge. */
  readonly gaugeId: string | null;
  readonly gaugeDue: string | null;
  readonly verdict: CalibrationVerdict;
  /** Why it was rejected or aborted: which criterion and which point; null when accepted. */
  readonly reason: string | null;
  /** Every reading taken, in order (the procedure's own shape: point, direction, commanded, gauge, sensor...). */
  readonly readings: readonly unknown[];
  /** The fit: slope, offset, residuals per point, backlash, predicted error; null when none was made. */
  readonly fit: unknown;
  /** The verification at points not in the fit, before and after; null when not reached. */
  readonly verification: unknown;
  readonly oldValues: CalibrationValues;
  /** What the pen holds after: null when nothing new was stored. */
  readonly newValues: CalibrationValues | null;
  /** The pen's needle-time counter at the calibration (seconds), for the calibration-due policy; null if unknown. */
  readonly needleSeconds: number | null;
}

export interface CalibrationRecord extends CalibrationInput {
  readonly id: number;
  /** ISO 8601 (toISOString). */
  readonly at: string;
}

interface CalibrationRow {
  id: number; at: string; kind: CalibrationKind; pen_board: string; pen_build: string; pen_serial: string | null; technician: string;
  gauge_id: string | null; gauge_due: string | null; verdict: CalibrationVerdict; reason: string | null; readings: string; fit: string | null;
  verification: string | null; old_values: string; new_values: string | null; needle_seconds: number | null;
}

const recordOf = (row: CalibrationRow): CalibrationRecord => ({
  id: row.id, at: row.at, kind: row.kind, pen: { board: row.pen_board, buildId: row.pen_build, serial: row.pen_serial },
  technician: row.technician, gaugeId: row.gauge_id, gaugeDue: row.gauge_due, verdict: row.verdict, reason: row.reason,
  readings: JSON.parse(row.readings) as unknown[], fit: row.fit === null ? null : JSON.parse(row.fit) as unknown,
  verification: row.verification === null ? null : JSON.parse(row.verification) as unknown,
  oldValues: JSON.parse(row.old_values) as CalibrationValues,
  newValues: row.new_values === null ? null : JSON.parse(row.new_values) as CalibrationValues, needleSeconds: row.needle_seconds,
});

export class CalibrationRecords {
  constructor(private readonly db: Database.Database, private readonly now: () => string) {}

  /** Appends a calibration record; returns it as stored. */
  add(input: CalibrationInput): CalibrationRecord {
    const at = this.now();
    const json = (value: unknown): string | null => (value === null ? null : JSON.stringify(value));
    const { lastInsertRowid } = this.db.prepare(
      `INSERT INTO calibrations (at, kind, pen_board, pen_build, pen_serial, technician, gauge_id, gauge_due, verdict, reason, readings, fit,
         verification, old_values, new_values, needle_seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(at, input.kind, input.pen.board, input.pen.buildId, input.pen.serial, input.technician, input.gaugeId, input.gaugeDue, input.verdict,
      input.reason, JSON.stringify(input.readings), json(input.fit), json(input.verification), JSON.stringify(input.oldValues),
      json(input.newValues), input.needleSeconds);
    return { ...input, id: Number(lastInsertRowid), at };
  }

  /** A pen's calibrations (by serial), oldest first; every pen's when serial is undefined. */
  history(serial?: string): CalibrationRecord[] {
    const rows = serial === undefined
      ? this.db.prepare('SELECT * FROM calibrations ORDER BY id').all() as CalibrationRow[]
      : this.db.prepare('SELECT * FROM calibrations WHERE pen_serial = ? ORDER BY id').all(serial) as CalibrationRow[];
    return rows.map(recordOf);
  }

  /** The pen's latest accepted depth calibration, which starts the calibration-due clock (a restored default does not); null if none. */
  latest(serial: string): CalibrationRecord | null {
    const row = this.db.prepare(
      `SELECT * FROM calibrations WHERE pen_serial = ? AND kind = 'depth' AND verdict = 'accepted' ORDER BY id DESC LIMIT 1`,
    ).get(serial) as CalibrationRow | undefined;
    return row === undefined ? null : recordOf(row);
  }
}
