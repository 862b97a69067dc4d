// `pen parts`: the parts registry from the command line, no pen needed: the parts and their state (cycles left,
// sterile until, warnings), one part's history, retiring a part (audited), and the reprocessing log as CSV.
import { Option, type Command } from 'commander';
import { RealClock } from '../../hardware/clock.ts';
import { defaultStorePath, PenStore } from '../store/store.ts';
import { operatorName } from '../store/actor.ts';
import { catalogueFile, policyFile } from '../sterilization/config.ts';
import {
  historyLines, normalizePartId, readableTime as readable, RegistryRefusedError, SterilizationRegistry, type PartStatus, type ReprocessingLogRow,
} from '../sterilization/registry.ts';
import { isoOption } from './audit.ts';
import { UsageError } from './format.ts';


/** A part id argument, or a usage error naming the format. */
function partIdArgument(text: string): string {
  try {
    return normalizePartId(text);
  } catch (error) {
    if (error instanceof RegistryRefusedError) throw new UsageError(error.message);
    throw error;
  }
}

/** Opens the registry on the store (--db, else the default), runs fn, closes it. */
function withRegistry<T>(db: string | undefined, fn: (registry: SterilizationRegistry, store: PenStore) => T): T {
  const store = PenStore.open(db ?? defaultStorePath(), new RealClock());
  try {
    return fn(new SterilizationRegistry(store), store);
  } finally {
    store.close();
  }
}

/** The cycle count, for nosecones: "181 of 200 cycles, 19 left". */
function describeCycles(status: PartStatus): string {
  if (status.cyclesUsed === null || status.cycleLimit === null) return 'single-use';
  return `${status.cyclesUsed} of ${status.cycleLimit} cycles, ${status.cyclesLeft ?? 0} left`;
}

/** Two or more lines: id, kind, condition, cycles and sterile-until; then the reason when not ready, and each warning. */
export function describePartStatus(status: PartStatus): string {
  const until = status.sterileUntil === null ? '' : `  sterile until ${readable(status.sterileUntil)}`;
  const lines = [`${status.id}  ${status.kind.padEnd(9)}  ${status.condition.replaceAll('_', ' ').padEnd(21)}  ${describeCycles(status)}${until}`];
  lines.push(`    ${status.ready ? 'ready: ' : 'NOT READY: '}${status.text}`);
  for (const warning of status.warnings) lines.push(`    WARNING: ${warning}`);
  return lines.join('\n');
}

const csvColumns: readonly (readonly [string, keyof ReprocessingLogRow])[] = [
  ['date_time_utc', 'at'], ['cycle_record', 'cycleId'], ['part_id', 'partId'], ['part_kind', 'partKind'], ['lot', 'lot'],
  ['part_cycle_number', 'partCycleNumber'], ['cycle_limit', 'cycleLimit'], ['cycle', 'cycle'], ['temperature_c', 'temperatureC'],
  ['hold_minutes', 'holdMinutes'], ['cycle_type', 'cycleType'], ['sterilizer_id', 'sterilizerId'], ['load_number', 'loadNumber'],
  ['chemical_indicator', 'chemicalIndicator'], ['biological_indicator', 'biologicalIndicator'], ['counts_as_sterile', 'sterilizing'],
  ['operator', 'operator'], ['pen_serial', 'penSerial'],
];

/**
 * One CSV cell (RFC 4180): quoted when it holds a comma, quote or line break. Text that a spreadsheet would take for a
 * formula (starting with =, +, -, @, tab or CR) gets a leading apostrophe, so that opening the log runs nothing.
 */
export function csvCell(value: string | number | boolean | null): string {
  if (value === null) return '';
  let text = typeof value === 'string' ? value : String(value);
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** The reprocessing log as CSV: a header row, then one row per part per cycle, CRLF line ends. */
export function reprocessingCsv(rows: readonly ReprocessingLogRow[]): string {
  const lines = [csvColumns.map(([name]) => name).join(','), ...rows.map((row) => csvColumns.map(([, key]) => csvCell(row[key])).join(','))];
  return `${lines.join('\r\n')}\r\n`;
}

function describeLogRow(row: ReprocessingLogRow): string {
  return `${readable(row.at)}  ${row.partId}  #${row.partCycleNumber}/${row.cycleLimit}  ${row.cycle}  sterilizer ${row.sterilizerId} load ${row.loadNumber}  ` +
    `CI ${row.chemicalIndicator}  BI ${row.biologicalIndicator}${row.sterilizing ? '' : '  NOT STERILE'}  by ${row.operator}` +
    (row.penSerial === null ? '' : ` on pen ${row.penSerial}`);
}

interface ListFlags { readonly db?: string; readonly json?: boolean; readonly all?: boolean; readonly kind?: string }
interface ShowFlags { readonly db?: string; readonly json?: boolean }
interface RetireFlags { readonly db?: string; readonly json?: boolean; readonly reason: string }
interface LogFlags { readonly db?: string; readonly json?: boolean; readonly csv?: boolean; readonly part?: string; readonly since?: string; readonly until?: string }

/** Parts worth listing by default: not retired, and not used-up cartridges (`--all` lists them too). */
const inService = (status: PartStatus): boolean => status.state !== 'retired' && status.condition !== 'used';

function listCommand(flags: ListFlags): void {
  if (flags.kind !== undefined && flags.kind !== 'cartridge' && flags.kind !== 'nosecone') {
    throw new UsageError(`--kind must be cartridge or nosecone (got "${flags.kind}")`);
  }
  withRegistry(flags.db, (registry, store) => {
    const all = registry.list().filter((status) => flags.kind === undefined || status.kind === flags.kind);
    const shown = flags.all === true ? all : all.filter(inService);
    if (flags.json === true) {
      console.log(JSON.stringify(shown, null, 2));
      return;
    }
    const hidden = all.length - shown.length;
    const { policy } = registry;
    console.log(`parts registry ${store.path}: ${shown.length} part(s)${hidden > 0 ? `, ${hidden} retired or used not shown (--all)` : ''}; ` +
      `sterile storage ${policy.sterileShelfLifeDays} days, nosecone limit ${policy.noseconeCycleLimit} cycles (${policy.noseconeCycleLimitSource}), ` +
      `warning from ${policy.cycleLimitWarningPercent} %`);
    for (const status of shown) console.log(describePartStatus(status));
  });
}

function showCommand(id: string, flags: ShowFlags): void {
  const partId = partIdArgument(id);
  withRegistry(flags.db, (registry) => {
    const { history, status } = registry.show(partId);
    if (flags.json === true) {
      console.log(JSON.stringify({ status, history }, null, 2));
      return;
    }
    const { part } = history;
    console.log(describePartStatus(status));
    const serial = part.firstSeenBy.pen?.serial ?? null;
    console.log(`    ${part.kind}, lot ${part.lot}, expiry ${part.expiry ?? 'none'}; first seen ${readable(part.firstSeenAt)} by ${part.firstSeenBy.operator}` +
      (serial === null ? '' : ` on pen ${serial}`));
    console.log('history:');
    for (const line of historyLines(history)) console.log(`  ${readable(line.at)}  ${line.text}`);
  });
}

function retireCommand(id: string, flags: RetireFlags): void {
  const partId = partIdArgument(id);
  if (flags.reason.trim() === '') throw new UsageError('--reason needs some text: why the part is taken out of use (e.g. --reason "cracked tip")');
  withRegistry(flags.db, (registry) => {
    const status = registry.retire(partId, flags.reason, { pen: null, operator: operatorName() });
    console.log(flags.json === true ? JSON.stringify(status, null, 2)
      : `retired ${status.kind} ${status.id}: ${flags.reason.trim()}; recorded in the audit log (pen audit --command retire_part)`);
  });
}

function logCommand(flags: LogFlags): void {
  if (flags.csv === true && flags.json === true) throw new UsageError('--csv and --json are two formats of the same log: give one');
  const since = isoOption(flags.since, '--since');
  const until = isoOption(flags.until, '--until');
  const partId = flags.part === undefined ? undefined : partIdArgument(flags.part);
  withRegistry(flags.db, (registry, store) => {
    const rows = registry.reprocessingLog({
      ...(partId === undefined ? {} : { partId }), ...(since === undefined ? {} : { since }), ...(until === undefined ? {} : { until }),
    });
    if (flags.csv === true) process.stdout.write(reprocessingCsv(rows));
    else if (flags.json === true) console.log(JSON.stringify(rows, null, 2));
    else if (rows.length === 0) console.log(`no sterilization cycles match in ${store.path}`);
    else for (const row of rows) console.log(describeLogRow(row));
  });
}

/** Registers `pen parts` (list, the default), `pen parts show ID`, `pen parts retire ID`, `pen parts log`. */
export function addPartsCommand(program: Command, options: { readonly dbOption: () => Option; readonly jsonOption: () => Option }): void {
  const parts = program
    .command('parts')
    .description('the parts registry (cartridges and nosecones, by their ID chips): state, cycles left, sterile until, warnings at the ' +
      `cycle limit; history, retiring, and the reprocessing log. Cycles are named in ${catalogueFile}; shelf life and limits in ${policyFile}`);
  parts
    .command('list', { isDefault: true })
    .description('the parts in service and their state (the default of pen parts): not ready ones say why and what to do; warnings at the cycle limit')
    .option('--all', 'also retired parts and used cartridges')
    .addOption(new Option('--kind <kind>', 'only cartridges or only nosecones').choices(['cartridge', 'nosecone']))
    .addOption(options.dbOption()).addOption(options.jsonOption())
    .action((flags: ListFlags) => listCommand(flags));
  parts
    .command('show')
    .description("a part's state and its history: first seen, sterilization cycles, biological indicator results of its loads, sessions, retiring")
    .argument('<id>', "the part's chip ROM id, 16 hex digits")
    .addOption(options.dbOption()).addOption(options.jsonOption())
    .action((id: string, flags: ShowFlags) => showCommand(id, flags));
  parts
    .command('retire')
    .description('take a part out of use for good (worn, damaged, lost), with the reason; recorded with the operator in the audit log')
    .argument('<id>', "the part's chip ROM id, 16 hex digits")
    .requiredOption('--reason <text>', 'why, e.g. "cracked tip"')
    .addOption(options.dbOption()).addOption(options.jsonOption())
    .action((id: string, flags: RetireFlags) => retireCommand(id, flags));
  parts
    .command('log')
    .description('the reprocessing log a clinic keeps: one row per part per sterilization cycle, oldest first, with the load\'s biological ' +
      'indicator as it stands now (--csv for a spreadsheet)')
    .option('--csv', 'comma-separated values with a header row (RFC 4180)')
    .option('--part <id>', 'only this part')
    .option('--since <iso>', 'cycles at or after this time (ISO 8601)')
    .option('--until <iso>', 'cycles before this time (ISO 8601)')
    .addOption(options.dbOption()).addOption(options.jsonOption())
    .action((flags: LogFlags) => logCommand(flags));
}
