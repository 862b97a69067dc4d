// The audit log from the command line: who acted (the operator) on which pen (its identity), and `pen audit` to read it.
import { RealClock } from '../../hardware/clock.ts';
import { defaultStorePath, PenStore, type AuditFilter, type AuditRecord, type PenRecordIdentity } from '../store/store.ts';

import { numberOption, UsageError } from './format.ts';

export function describePen(pen: PenRecordIdentity | null): string {
  if (pen === null) return 'pen unknown';
  return `${pen.board} build ${pen.buildId}${pen.serial === null ? '' : ` serial ${pen.serial}`}`;
}

export interface AuditFlags {
  readonly db?: string;
  readonly json?: boolean;
  readonly pen?: string;
  readonly session?: string;
  readonly command?: string;
  readonly since?: string;
  readonly until?: string;
  readonly limit: string;
}

/** An ISO 8601 date or date-time, as the store writes it (UTC, milliseconds); a usage error otherwise. */
export function isoOption(value: string | undefined, name: string): string | undefined {
  if (value === undefined) return undefined;
  const ms = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(value.trim()) ? Date.parse(value.trim()) : NaN;
  if (Number.isNaN(ms)) throw new UsageError(`${name} must be an ISO 8601 date or time, e.g. ${name} 2026-11-25 or ${name} 2026-11-25T14:30:00Z (got "${value}")`);
  return new Date(ms).toISOString();
}

function wholeOption(value: string | undefined, name: string, min: number): number | undefined {
  const number = numberOption(value, name, String(Math.max(min, 1)));
  if (number !== undefined && (!Number.isInteger(number) || number < min)) throw new UsageError(`${name} must be a whole number ≥ ${min} (got ${value ?? ''})`);
  return number;
}

export function auditFilter(flags: AuditFlags): AuditFilter {
  const since = isoOption(flags.since, '--since');
  const until = isoOption(flags.until, '--until');
  if (since !== undefined && until !== undefined && since >= until) throw new UsageError(`--since ${since} is not before --until ${until}`);
  return {
    pen: flags.pen, sessionId: wholeOption(flags.session, '--session', 1), command: flags.command, since, until,
    limit: wholeOption(flags.limit, '--limit', 1) ?? 50,
  };
}

export function describeAuditRecord(record: AuditRecord): string {
  const { target, ...rest } = record.arguments;
  const session = record.sessionId === null ? '' : `  session ${record.sessionId}`;
  const where = typeof target === 'string' ? ` on ${target}` : '';
  const details = Object.keys(rest).length === 0 ? '' : `\n    ${JSON.stringify(rest)}`;
  return `${record.at}  #${record.id}  ${record.command}  ${record.result}  by ${record.operator ?? 'unknown operator'}  ` +
    `(${describePen(record.pen)}${where})${session}${details}`;
}

/** `pen audit`: the append-only audit log, newest first, filtered. */
export function auditCommand(flags: AuditFlags): void {
  const filter = auditFilter(flags);
  const store = PenStore.open(flags.db ?? defaultStorePath(), new RealClock());
  try {
    const records = store.queryAudit(filter);
    if (flags.json === true) console.log(JSON.stringify(records, null, 2));
    else if (records.length === 0) console.log(`no audit entries match in ${store.path}`);
    else for (const record of records) console.log(describeAuditRecord(record));
  } finally {
    store.close();
  }
}
