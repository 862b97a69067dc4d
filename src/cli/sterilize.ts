// `pen sterilize`: a steam sterilization cycle of the nosecone fitted to a pen, burnt into its ID chip's one-way tally
// (record_sterilization, through the reprocessing role) and recorded in the parts registry; and, without a pen, a
// load's biological indicator result read days later (a failure recalls the load).
import { Option, type Command } from 'commander';
import { RealClock } from '../../hardware/clock.ts';
import { writeResultInfo } from '../../hardware/generated/protocol.ts';
import { PenRefusedError, type PenDevice } from '../../hal/device.ts';
import type { NoseconeChip } from '../../hal/parts.ts';
import { defaultKeysDir, KeyFiles } from '../provision/keys.ts';
import { auditAuthCounters } from '../provision/auth-audit.ts';
import { operatorName, penRecordIdentity, serviceRole } from '../store/actor.ts';
import { defaultStorePath, PenStore } from '../store/store.ts';
import type { BiologicalIndicator, ChemicalIndicator, RecordActor } from '../store/parts.ts';
import { catalogueFile, cycleNamed, describeCatalogue, policyFile } from '../sterilization/config.ts';
import {
  noseconeReport, normalizePartId, RegistryRefusedError, SterilizationRegistry, type PartStatus, type RecordedCycle, type RecordedLoadResult,
} from '../sterilization/registry.ts';
import { UsageError } from './format.ts';
import { describePartStatus } from './parts.ts';
import { keysDirOption } from './provision.ts';
import { openTarget, type Target } from './target.ts';

export interface SterilizeFlags {
  readonly part?: readonly string[];
  readonly cycle?: string;
  readonly sterilizer?: string;
  readonly load?: string;
  readonly indicator?: string;
  readonly bi?: string;
  readonly operator?: string;
  readonly port?: string;
  readonly firmware?: string;
  readonly db?: string;
  readonly keysDir?: string;
  readonly json?: boolean;
}

/** A cycle of fitted parts to burn and record. */
export interface CycleRequest {
  readonly partIds: readonly string[];
  readonly cycle: string;
  readonly sterilizerId: string;
  readonly loadNumber: number;
  readonly chemicalIndicator: ChemicalIndicator;
  readonly biologicalIndicator: BiologicalIndicator;
  readonly operator: string;
}

/** A biological indicator result for a load on record; sterilizerId null: the one sterilizer that has such a load. */
export interface LoadResultRequest {
  readonly sterilizerId: string | null;
  readonly loadNumber: number;
  readonly result: 'pass' | 'fail';
  readonly operator: string;
}

const sterilizerIdPattern = /^[A-Za-z0-9._-]{1,32}$/;
const maxLoadNumber = 1_000_000_000;

/** The load number, a whole number 0–1000000000, or a usage error saying so. */
function loadOption(text: string | undefined): number {
  if (text === undefined) throw new UsageError('--load is needed: the sterilizer\'s load (batch) number, a whole number 0–1000000000, e.g. --load 412');
  if (!/^\d{1,10}$/.test(text) || Number(text) > maxLoadNumber) {
    throw new UsageError(`--load must be the sterilizer's load (batch) number, a whole number 0–1000000000, e.g. --load 412 (got "${text}")`);
  }
  return Number(text);
}

function choice<T extends string>(text: string, name: string, allowed: readonly T[]): T {
  const found = allowed.find((value) => value === text);
  if (found === undefined) throw new UsageError(`${name} must be ${allowed.join(' or ')} (got "${text}")`);
  return found;
}

function operatorOption(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const name = text.trim();
  if (!/^[\x20-\x7e\u00a0-\uffff]{1,64}$/.test(name)) throw new UsageError(`--operator must be 1–64 printable characters: who ran the cycle (got "${text}")`);
  return name;
}

/** The options checked against the catalogue, the policy and their formats, before any pen or record is touched (exit 2). */
export function parseSterilizeFlags(flags: SterilizeFlags): CycleRequest | LoadResultRequest {
  const loadNumber = loadOption(flags.load);
  const operator = operatorOption(flags.operator);
  if (flags.sterilizer !== undefined && !sterilizerIdPattern.test(flags.sterilizer)) {
    throw new UsageError(`--sterilizer must be the sterilizer's id, 1–32 letters, digits, ".", "_" or "-", e.g. --sterilizer AC-1 (got "${flags.sterilizer}")`);
  }
  const cycleOptions = [['--part', flags.part], ['--cycle', flags.cycle], ['--indicator', flags.indicator]] as const;
  if (cycleOptions.every(([, value]) => value === undefined)) {
    // The later biological indicator result of a load already on record: no pen needed.
    if (flags.bi === undefined) throw new UsageError('give a cycle (--part ID --cycle NAME --sterilizer ID --load N --indicator pass|fail --operator NAME), or a load\'s biological indicator result (--load N --bi pass|fail)');
    const result = choice(flags.bi, '--bi, for a load\'s later result,', ['pass', 'fail'] as const);
    return { sterilizerId: flags.sterilizer ?? null, loadNumber, result, operator: operator ?? operatorName() };
  }
  const missing = [...cycleOptions, ['--sterilizer', flags.sterilizer], ['--operator', operator]].filter(([, value]) => value === undefined).map(([name]) => name);
  if (missing.length > 0) throw new UsageError(`recording a cycle also needs ${missing.join(', ')} (see pen sterilize --help)`);
  const cycle = flags.cycle ?? '';
  if (cycleNamed(cycle) === undefined) throw new UsageError(`--cycle "${cycle}" is not in ${catalogueFile}: it has ${describeCatalogue()}`);
  const partIds = [...new Set((flags.part ?? []).map((id) => {
    try {
      return normalizePartId(id);
    } catch (error) {
      if (error instanceof RegistryRefusedError) throw new UsageError(`--part: ${error.message}`);
      throw error;
    }
  }))];
  return {
    partIds, cycle, sterilizerId: flags.sterilizer ?? '', loadNumber, operator: operator ?? '',
    chemicalIndicator: choice(flags.indicator ?? '', '--indicator (the chemical indicator)', ['pass', 'fail'] as const),
    biologicalIndicator: flags.bi === undefined ? 'pending' : choice(flags.bi, '--bi', ['pending', 'pass', 'fail'] as const),
  };
}

const cartridgeRefusal = (id: string): UsageError =>
  new UsageError(`part ${id} is a cartridge: cartridges are single-use, sterilized (EtO) by their maker, and never reprocessed; give the nosecone's id`);

/** Refuses, before a pen is contacted, a part the registry knows as a cartridge. */
export function refuseKnownCartridges(store: PenStore, partIds: readonly string[]): void {
  for (const id of partIds) if (store.parts.history(id)?.part.kind === 'cartridge') throw cartridgeRefusal(id);
}

/** Burns the next bit of the fitted nosecone's sterilization tally (reprocessing role) and returns the chip read back. */
async function burnSterilizationMark(device: PenDevice, before: NoseconeChip): Promise<NoseconeChip> {
  try {
    await device.serviceCommand('record_sterilization', { noseconeRom: Uint8Array.from(Buffer.from(before.rom, 'hex')) });
  } catch (error) {
    if (!(error instanceof PenRefusedError && error.code === 'not_allowed_in_state' && error.refusedPart !== null)) throw error;
    throw new Error(`the pen refuses to record a sterilization of nosecone ${before.rom} while a session holds it (the cartridge fitted ` +
      'for that session is still in): a nosecone is sterilized off the pen. Take the cartridge out, then run the command again; nothing was recorded');
  }
  const after = await device.settledParts();
  if (after.lastWrite !== 'ok') {
    const text = Object.values(writeResultInfo).find((info) => info.name === after.lastWrite)?.text ?? after.lastWrite;
    throw new Error(`the pen could not burn the sterilization mark on nosecone ${before.rom}: ${text} (${after.lastWrite}); no cycle was recorded. ` +
      'Check that the nosecone is seated and its contacts are clean, and run the command again; if the write fails again, its chip is faulty: ' +
      `take the nosecone out of use (pen parts retire ${before.rom} --reason "ID chip write fails")`);
  }
  const { nosecone } = after;
  if (nosecone.rom !== before.rom || nosecone.status !== 'ok' || nosecone.sterilizations !== before.sterilizations + 1) {
    throw new Error(`after the write, the pen reads nosecone ${nosecone.rom || '(none)'} (${nosecone.statusText}) with sterilization tally ${nosecone.sterilizations}, ` +
      `not ${before.rom} with ${before.sterilizations + 1}; nothing was recorded: check the nosecone and run the command again`);
  }
  return nosecone;
}

export interface SterilizedPart {
  readonly recorded: RecordedCycle;
  /** The nosecone's chip tally before and after; burnt: whether this cycle burnt a bit (chemical indicator pass). */
  readonly chip: { readonly id: string; readonly tallyBefore: number; readonly tallyAfter: number; readonly burnt: boolean };
  /** The part's status after the cycle, with the chip as read after the write. */
  readonly status: PartStatus;
}

/**
 * One cycle of the nosecone fitted to the pen: its chip read afresh and cross-checked against the records, then, with a
 * chemical indicator pass, the tally bit burnt and read back, then the cycle recorded. Chip first: a crash between the
 * two leaves a chip that counts one more than the records, which the registry accepts (counted toward the limit; the
 * part is not sterile by the records until a cycle is recorded); the other order would leave records counting a cycle
 * the chip lacks, which the cross-check takes for a clone. A failed chemical indicator records the cycle, burns nothing.
 */
export async function sterilizeFitted(device: PenDevice, store: PenStore, request: CycleRequest): Promise<SterilizedPart> {
  refuseKnownCartridges(store, request.partIds);
  const registry = new SterilizationRegistry(store);
  const actor: RecordActor = { pen: penRecordIdentity(device.identity), operator: request.operator };
  await device.parts(['nosecone']);
  const parts = await device.settledParts();  // the cartridge is read whenever its switch sees one fitted; a nosecone has no switch
  for (const id of request.partIds) if (parts.cartridge.rom === id) throw cartridgeRefusal(id);
  const nosecone = parts.nosecone;
  const pen = device.identity.serial === '' ? 'this pen' : `pen ${device.identity.serial}`;
  const fittedText = nosecone.rom === '' ? `no nosecone chip reads (${nosecone.status}: ${nosecone.statusText})` : `its nosecone is ${nosecone.rom}`;
  const notFitted = request.partIds.filter((id) => id !== nosecone.rom);
  if (notFitted.length > 0) {
    throw new RegistryRefusedError(`part ${notFitted.join(', ')} is not fitted to ${pen}: ${fittedText}. Fit the nosecone to sterilize and run the command again; ` +
      'a pen holds one nosecone, so record the nosecones of a load one at a time with the same --sterilizer and --load');
  }
  if (nosecone.status !== 'ok') throw new RegistryRefusedError(`nosecone ${nosecone.rom} on ${pen} does not read good: ${nosecone.statusText} (${nosecone.status}); nothing recorded`);
  const fitted = registry.checkFitted(noseconeReport(nosecone), actor);
  if (!fitted.check.accepted) throw new RegistryRefusedError(`nosecone ${nosecone.rom} refused: ${fitted.check.problems.join('; ')}`);
  // The registry's own refusals of a cycle, checked before the chip is written so that a refused cycle burns nothing.
  if (['at_cycle_limit', 'expired', 'retired', 'flagged'].includes(fitted.status.condition)) {
    throw new RegistryRefusedError(`nosecone ${nosecone.rom}: ${fitted.status.text}; no further cycles are recorded for it`);
  }
  const burnt = request.chemicalIndicator === 'pass';
  const after = burnt ? await burnSterilizationMark(device, nosecone) : nosecone;
  const recorded = registry.recordCycle({
    partIds: [nosecone.rom], cycle: request.cycle, sterilizerId: request.sterilizerId, loadNumber: request.loadNumber,
    chemicalIndicator: request.chemicalIndicator, biologicalIndicator: request.biologicalIndicator,
  }, actor);
  // The tally as read after the write, kept with the part (the next cross-check starts from it).
  const status = burnt ? registry.checkFitted(noseconeReport(after), actor).status : registry.status(nosecone.rom);
  return { recorded, chip: { id: nosecone.rom, tallyBefore: nosecone.sterilizations, tallyAfter: after.sterilizations, burnt }, status };
}

/** Records a load's biological indicator result (a failure recalls it, audited by the registry), with the audit entry. */
export function recordLoadResult(store: PenStore, request: LoadResultRequest): RecordedLoadResult {
  let sterilizerId = request.sterilizerId;
  if (sterilizerId === null) {
    const sterilizers = [...new Set(store.parts.cycles().filter((cycle) => cycle.loadNumber === request.loadNumber).map((cycle) => cycle.sterilizerId))];
    if (sterilizers.length === 0) throw new RegistryRefusedError(`no cycle of load ${request.loadNumber} is on record in ${store.path}: record the load's cycles first`);
    if (sterilizers.length > 1) throw new UsageError(`load ${request.loadNumber} is on record for sterilizers ${sterilizers.join(', ')}: give --sterilizer ID`);
    sterilizerId = sterilizers[0] ?? '';
  }
  const actor: RecordActor = { pen: null, operator: request.operator };
  const details = { sterilizerId, loadNumber: request.loadNumber, result: request.result };
  try {
    const recorded = new SterilizationRegistry(store).recordBiologicalResult(sterilizerId, request.loadNumber, request.result, actor);
    store.audit(null, 'record_biological_indicator', { ...details, partIds: recorded.parts.map((part) => part.id) }, 'ok', actor);
    return recorded;
  } catch (error) {
    store.audit(null, 'record_biological_indicator', details, `refused: ${error instanceof Error ? error.message : String(error)}`, actor);
    throw error;
  }
}

function describeLoadResult(recorded: RecordedLoadResult): string {
  const { result } = recorded.result;
  const load = `sterilizer ${recorded.result.sterilizerId} load ${recorded.result.loadNumber}`;
  const lines = [result === 'fail'
    ? `biological indicator FAILED for ${load}: the load is recalled; ${recorded.parts.length} part(s) not sterile until reprocessed (audited: recall_load)`
    : `biological indicator passed for ${load}: recorded for its ${recorded.parts.length} part(s)`];
  for (const part of recorded.parts) lines.push(describePartStatus(part));
  if (result === 'fail') {
    lines.push(recorded.sessionsAfter.length === 0 ? 'no session used a part of the load since: no client to follow up'
      : 'sessions that used a part of the load since (follow up their clients):');
    for (const use of recorded.sessionsAfter) lines.push(`  session ${use.sessionId}  ${use.at}  part ${use.partId}`);
  }
  return lines.join('\n');
}

export function describeSterilized(where: string, result: SterilizedPart): string {
  const { cycle, spec, notes } = result.recorded;
  const { chip } = result;
  const head = cycle.chemicalIndicator === 'pass'
    ? `sterilized nosecone ${chip.id} on ${where}`
    : `recorded a cycle with a FAILED chemical indicator for nosecone ${chip.id} on ${where}: not sterile, nothing burnt on its chip`;
  return [
    `${head}: cycle ${cycle.id}, ${spec.name} (${spec.text}), sterilizer ${cycle.sterilizerId} load ${cycle.loadNumber}, ` +
      `chemical indicator ${cycle.chemicalIndicator}, biological indicator ${cycle.biologicalIndicator}, by ${cycle.operator}`,
    chip.burnt ? `  chip: sterilization tally ${chip.tallyBefore} → ${chip.tallyAfter}, burnt through the reprocessing role` : `  chip: sterilization tally ${chip.tallyAfter}, unchanged`,
    describePartStatus(result.status),
    ...notes.map((note) => `  note: ${note}`),
  ].join('\n');
}

/**
 * The cycle form on a pen: the target opened (opener, for tests), keys from the key files, the cycle done, and an audit
 * entry `sterilize` with its outcome and grants, with the role-check refusals counted before and during (as every
 * command that connects records them).
 */
export async function sterilizeCommand(flags: SterilizeFlags, open: () => Promise<Target> = () => openTarget({ port: flags.port, firmware: flags.firmware })): Promise<SterilizedPart | RecordedLoadResult> {
  const request = parseSterilizeFlags(flags);
  const store = PenStore.open(flags.db ?? defaultStorePath(), new RealClock());
  try {
    if (!('partIds' in request)) {
      const recorded = recordLoadResult(store, request);
      console.log(flags.json === true ? JSON.stringify(recorded, null, 2) : describeLoadResult(recorded));
      return recorded;
    }
    refuseKnownCartridges(store, request.partIds);  // before contacting the pen
    const target = await open();
    const { device } = target;
    const actor = { pen: penRecordIdentity(device.identity), operator: request.operator };
    const details: Record<string, unknown> = { target: target.where, ...request };
    const role = serviceRole('record_sterilization');  // the role sterilization is recorded in, whether or not a mark was burnt
    const grantsBefore = device.grantsUsed.length;  // this command's grants only
    const grants = (): Record<string, unknown> => {
      const used = device.grantsUsed.slice(grantsBefore);
      return used.length === 0 ? {} : { grants: used.map((grant) => `${grant.role}: ${grant.command}`) };
    };
    try {
      device.keys = new KeyFiles(flags.keysDir ?? defaultKeysDir());
      await auditAuthCounters(store, device, target.where, 'before sterilize', actor);
      const result = await sterilizeFitted(device, store, request);
      store.audit(null, 'sterilize', { ...details, cycleId: result.recorded.cycle.id, chip: result.chip, ...grants() }, 'ok', { ...actor, role });
      console.log(flags.json === true ? JSON.stringify({ target: target.where, ...result }, null, 2) : describeSterilized(target.where, result));
      return result;
    } catch (error) {
      store.audit(null, 'sterilize', { ...details, ...grants() }, `refused: ${error instanceof Error ? error.message : String(error)}`, { ...actor, role });
      throw error;
    } finally {
      try {
        await auditAuthCounters(store, device, target.where, 'during sterilize', actor);
      } finally {
        await target.close();
      }
    }
  } finally {
    store.close();
  }
}

/** Registers `pen sterilize`. */
export function addSterilizeCommand(program: Command, options: {
  readonly portOption: () => Option; readonly firmwareOption: () => Option; readonly dbOption: () => Option; readonly jsonOption: () => Option;
}): void {
  program
    .command('sterilize')
    .description('record a steam sterilization cycle of the nosecone fitted to the pen: its chip\'s one-way tally burnt (reprocessing ' +
      'role), the cycle kept in the parts registry; a failed chemical indicator is recorded and burns nothing. With only --load and ' +
      `--bi: a load's later biological indicator result (fail recalls the load; no pen needed). Cycles are named in ${catalogueFile}, limits in ${policyFile}`)
    .option('--part <id...>', 'the nosecone\'s chip ROM id, 16 hex digits (fitted to the pen; cartridges are single-use and never reprocessed)')
    .option('--cycle <name>', `a cycle of ${catalogueFile}: ${describeCatalogue()}`)
    .option('--sterilizer <id>', 'the sterilizer\'s id, 1–32 letters, digits, ".", "_", "-"')
    .option('--load <n>', 'the sterilizer\'s load (batch) number, 0–1000000000')
    .addOption(new Option('--indicator <result>', 'the chemical indicator of this pack: pass or fail').choices(['pass', 'fail']))
    .addOption(new Option('--bi <result>', 'the biological indicator: pending (default) or pass or fail with a cycle; alone with --load, that load\'s later result').choices(['pending', 'pass', 'fail']))
    .option('--operator <name>', 'who ran the cycle (recorded; with --bi alone, default $PEN_OPERATOR or the OS user)')
    .addOption(keysDirOption())
    .addOption(options.portOption()).addOption(options.firmwareOption()).addOption(options.dbOption()).addOption(options.jsonOption())
    .addHelpText('after', '\nExamples:\n' +
      '  pen sterilize --port /dev/ttyUSB0 --part 2d0000012345ab9c --cycle 134C-3min-prevac --sterilizer AC-1 --load 412 --indicator pass --operator "R. Ortiz"\n' +
      '  pen sterilize --load 412 --sterilizer AC-1 --bi fail     # the load\'s BI failed days later: recall it, list the parts and sessions\n' +
      '\nOrder: the chip is written before the registry, so an interruption between them leaves the chip one cycle ahead\n' +
      '(counted toward the limit, not sterile by the records): run the command again.')
    .action(async (flags: SterilizeFlags) => { await sterilizeCommand(flags); });
}
