// The parts registry's rules: whether a cartridge or nosecone may be used now (sterile, in shelf life, under its cycle
// limit, not used, not recalled), a chip's one-way marks cross-checked against the records (a tally that went backwards,
// a used cartridge that reads fresh: possibly cloned), and the writes that change a part's standing, each in one
// transaction. The rules are pure functions of the records, the chip's report, the policy and the time.
import { HostRefusedError } from '../../hal/limits.ts';
import { dayDate, type CartridgeChip, type NoseconeChip } from '../../hal/parts.ts';
import type { PenStore } from '../store/store.ts';
import type {
  BiologicalIndicator, BiologicalResult, ChemicalIndicator, CycleRecord, PartHistory, PartKind, PartState, PartUse, RecordActor,
} from '../store/parts.ts';
import { cycleNamed, describeCatalogue, policy as configuredPolicy, type Policy, type SterilizationCycleSpec } from './config.ts';

/** The registry refused a request; the message says what is wrong and what to do (exit 5 from the CLI). */
export class RegistryRefusedError extends HostRefusedError {}

/** No part with that id is on record (exit 1 from the CLI). */
export class UnknownPartError extends Error {}

/**
 * What a part's ID chip reports, as the pen reads it (ROM id, and the data and one-way marks in its memory). The
 * cartridge carries a used mark; the nosecone one-way tallies of sterilizations and uses.
 */
export type ChipReport =
  | {
    readonly kind: 'cartridge';
    /** The chip's 64-bit ROM id as 16 hex digits. */
    readonly id: string;
    readonly lot: string;
    /** YYYY-MM-DD: the last day of the maker's sterility. */
    readonly expiry: string;
    readonly used: boolean;
  }
  | {
    readonly kind: 'nosecone';
    readonly id: string;
    readonly lot: string;
    /** Null when it has none (its chip's date is when it was made, not an expiry). */
    readonly expiry: string | null;
    readonly sterilizationTally: number;
    readonly useTally: number;
  };

/** Why a part may not be used now; 'ready' when it may. */
export type PartCondition =
  | 'ready' | 'retired' | 'flagged' | 'expired'
  | 'used'                      // cartridge: single use, used
  | 'at_cycle_limit' | 'never_sterilized' | 'used_since_sterilized' | 'indicator_failed' | 'load_recalled' | 'shelf_life_expired';

export interface PartStatus {
  readonly id: string;
  readonly kind: PartKind;
  readonly lot: string;
  readonly expiry: string | null;
  readonly state: PartState;
  readonly condition: PartCondition;
  readonly ready: boolean;
  /** What the condition means for this part and what to do, in words. */
  readonly text: string;
  /** E.g. the nosecone at 90 % of its cycle limit. */
  readonly warnings: readonly string[];
  /** Nosecones: cycles through the sterilizer (every one, passed or not: each wears the part), the limit, what is left. */
  readonly cyclesUsed: number | null;
  readonly cycleLimit: number | null;
  readonly cyclesLeft: number | null;
  /** ISO 8601: until when it is sterile (cartridge: the end of its expiry day; nosecone: its last good cycle plus the shelf life). */
  readonly sterileUntil: string | null;
  readonly lastCycle: CycleRecord | null;
  readonly lastUse: PartUse | null;
}

const dayMs = 86_400_000;
const partIdFormat = '16 hex digits, the chip\'s ROM id (e.g. 2d0000012345ab9c)';

/** A part id as the records keep it (16 lower-case hex digits; "-", ":" and spaces are ignored), or a refusal naming the format. */
export function normalizePartId(text: string): string {
  const id = text.replace(/[-:\s]/g, '').toLowerCase();
  if (!/^[0-9a-f]{16}$/.test(id)) throw new RegistryRefusedError(`part id "${text}" is not ${partIdFormat}`);
  return id;
}

/** The instant a YYYY-MM-DD expiry date ends (UTC): the part may be used through that day. */
export function expiryEndMs(expiry: string): number {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(expiry);
  const ms = match === null ? NaN : Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]) + 1);
  if (match === null || new Date(ms - dayMs).toISOString().slice(0, 10) !== expiry) {
    throw new RegistryRefusedError(`expiry "${expiry}" is not a date YYYY-MM-DD`);
  }
  return ms;
}

const iso = (ms: number): string => new Date(ms).toISOString();
/** A stored time for people: to the minute, in UTC. */
export const readableTime = (isoTime: string): string => `${isoTime.slice(0, 16).replace('T', ' ')} UTC`;

/** The load's biological indicator: failed if any result for it failed (a recall cannot be undone), else passed if one passed. */
export function loadIndicator(results: readonly BiologicalResult[], sterilizerId: string, loadNumber: number): BiologicalIndicator {
  const load = results.filter((result) => result.sterilizerId === sterilizerId && result.loadNumber === loadNumber);
  if (load.some((result) => result.result === 'fail')) return 'fail';
  return load.some((result) => result.result === 'pass') ? 'pass' : 'pending';
}

/** A cycle counts as sterilizing when its chemical indicator passed and its load's biological indicator has not failed. */
export function cycleSterilized(cycle: CycleRecord, results: readonly BiologicalResult[]): boolean {
  return cycle.chemicalIndicator === 'pass' && loadIndicator(results, cycle.sterilizerId, cycle.loadNumber) !== 'fail';
}

/** Cycles through the sterilizer that count toward the limit: the records', or the chip's tally when it counts more. */
export function cyclesUsed(history: PartHistory): number {
  return Math.max(history.cycles.length, history.part.chip?.sterilizationTally ?? 0);
}

function cycleWarnings(used: number, limit: number, rules: Policy): string[] {
  const percent = Math.floor((used * 100) / limit);
  if (used >= limit || percent < rules.cycleLimitWarningPercent) return [];
  return [`${used} of ${limit} sterilization cycles used (${percent} %): ${limit - used} left; order a replacement nosecone`];
}

/** The cartridge's chip as the registry takes it: its chip date is its expiry. */
export function cartridgeReport(chip: CartridgeChip): ChipReport {
  return { kind: 'cartridge', id: chip.rom, lot: String(chip.lot), expiry: dayDate(chip.expiryDay), used: chip.used };
}

/** The nosecone's chip as the registry takes it: a nosecone's chip date is its manufacture, not an expiry. */
export function noseconeReport(chip: NoseconeChip): ChipReport {
  return { kind: 'nosecone', id: chip.rom, lot: String(chip.lot), expiry: null, sterilizationTally: chip.sterilizations, useTally: chip.uses };
}

/** Whether the part may be used at nowMs, and why not; the rules of items 3–5 of the sterilization design. */
export function partStatus(history: PartHistory, nowMs: number, rules: Policy = configuredPolicy): PartStatus {
  const { part, cycles, loadResults, uses } = history;
  const lastCycle = cycles.at(-1) ?? null;
  const lastUse = uses.at(-1) ?? null;
  const base = { id: part.id, kind: part.kind, lot: part.lot, expiry: part.expiry, state: part.state, lastCycle, lastUse };
  const isNosecone = part.kind === 'nosecone';
  const used = isNosecone ? cyclesUsed(history) : null;
  const limit = isNosecone ? rules.noseconeCycleLimit : null;
  const counts = { cyclesUsed: used, cycleLimit: limit, cyclesLeft: used === null || limit === null ? null : Math.max(0, limit - used) };
  const warnings = used === null || limit === null ? [] : cycleWarnings(used, limit, rules);
  const expiryEnd = part.expiry === null ? null : expiryEndMs(part.expiry);

  // The part's sterility as the records stand, before the reasons that rule it out whatever its sterility.
  let sterileUntilMs: number | null = null;
  let condition: PartCondition = 'ready';
  let text: string;
  if (!isNosecone) {
    sterileUntilMs = expiryEnd;
    const usedIn = lastUse === null ? '' : ` in session ${lastUse.sessionId} (${readableTime(lastUse.at)})`;
    if (lastUse !== null || part.chip?.used === true) {
      condition = 'used';
      text = `used${usedIn}: cartridges are single-use; fit a new one`;
    } else {
      text = `unused, sterile until its expiry ${part.expiry ?? '(none)'}`;
    }
  } else if (lastCycle === null) {
    condition = 'never_sterilized';
    text = 'no sterilization cycle on record: sterilize it before use';
  } else {
    const cycleText = `cycle ${lastCycle.id} (${lastCycle.cycle}, sterilizer ${lastCycle.sterilizerId} load ${lastCycle.loadNumber}, ${readableTime(lastCycle.at)})`;
    const bi = loadIndicator(loadResults, lastCycle.sterilizerId, lastCycle.loadNumber);
    sterileUntilMs = Date.parse(lastCycle.at) + rules.sterileShelfLifeDays * dayMs;
    if (lastUse !== null && lastUse.at >= lastCycle.at) {
      condition = 'used_since_sterilized';
      text = `used in session ${lastUse.sessionId} (${readableTime(lastUse.at)}) since its last ${cycleText}: reprocess it`;
      sterileUntilMs = null;
    } else if (lastCycle.chemicalIndicator === 'fail') {
      condition = 'indicator_failed';
      text = `the chemical indicator of its last ${cycleText} failed, so it is not sterile: reprocess it`;
      sterileUntilMs = null;
    } else if (bi === 'fail') {
      condition = 'load_recalled';
      text = `recalled: the biological indicator of its last ${cycleText} failed; every part of that load is not sterile until reprocessed`;
      sterileUntilMs = null;
    } else if (nowMs >= sterileUntilMs) {
      condition = 'shelf_life_expired';
      text = `its sterile storage ended ${readableTime(iso(sterileUntilMs))}, ${rules.sterileShelfLifeDays} days after its last ${cycleText}: reprocess it`;
    } else {
      text = `sterile until ${readableTime(iso(sterileUntilMs))}, after ${cycleText}; biological indicator ${bi}`;
    }
  }
  // Reasons that override sterility: the part's final state, its expiry, its cycle limit.
  if (part.state === 'retired') {
    condition = 'retired';
    text = `retired ${readableTime(part.stateChangedAt ?? '')}: ${part.stateReason ?? ''}`;
  } else if (part.state === 'flagged') {
    condition = 'flagged';
    text = `flagged ${readableTime(part.stateChangedAt ?? '')}: ${part.stateReason ?? ''}; take it out of use and report it`;
  } else if (condition !== 'used' && expiryEnd !== null && nowMs >= expiryEnd) {
    condition = 'expired';
    text = `expired: its expiry date ${part.expiry ?? ''} has passed; do not use it`;
  } else if (used !== null && limit !== null && used >= limit) {
    condition = 'at_cycle_limit';
    text = `at its limit: ${used} of ${limit} sterilization cycles (${rules.noseconeCycleLimitSource}); retire it`;
  }
  const ready = condition === 'ready';
  return {
    ...base, ...counts, condition, ready, text, warnings,
    sterileUntil: ready && sterileUntilMs !== null ? iso(sterileUntilMs) : null,
  };
}

/** The verdict on a chip's report against the records. */
export interface ChipCheck {
  /** False: the part must not be used, whatever its status (problems say why). */
  readonly accepted: boolean;
  /** The report contradicts the records in a way only another chip with the same id (or a tampered one) explains. */
  readonly possiblyCloned: boolean;
  readonly problems: readonly string[];
  /** What the report adds that is not a problem (cycles recorded by another host, say). */
  readonly notes: readonly string[];
}

/** Refuses a report that is malformed: an id, lot, expiry or tally that no chip of ours would carry. */
export function checkReport(report: ChipReport): ChipReport {
  const id = normalizePartId(report.id);
  if (report.lot.trim() === '' || report.lot.length > 32) throw new RegistryRefusedError(`part ${id}: the chip's lot "${report.lot}" is not 1–32 characters`);
  if (report.expiry !== null) expiryEndMs(report.expiry);
  if (report.kind === 'nosecone') {
    for (const [name, value] of [['sterilization tally', report.sterilizationTally], ['use tally', report.useTally]] as const) {
      if (!Number.isInteger(value) || value < 0) throw new RegistryRefusedError(`part ${id}: the chip's ${name} ${value} is not a whole number ≥ 0`);
    }
  }
  return { ...report, id };
}

/**
 * Cross-checks what a chip reports against the records: its kind, lot and expiry as first seen; a tally or used mark
 * below what it showed before or what the records count (the one-way bits cannot go back: a chip that does is another
 * chip with the same id); a cartridge the records saw used in a session that reads unused. history null: a part not
 * seen before, accepted.
 */
export function crossCheckChip(report: ChipReport, history: PartHistory | null): ChipCheck {
  if (history === null) return { accepted: true, possiblyCloned: false, problems: [], notes: ['first seen: registered now'] };
  const { part, cycles, uses } = history;
  const cloned: string[] = [];
  const problems: string[] = [];
  const notes: string[] = [];
  if (part.state === 'retired') problems.push(`part ${part.id} was retired ${part.stateChangedAt ?? ''}: ${part.stateReason ?? ''}`);
  if (part.state === 'flagged') problems.push(`part ${part.id} is flagged ${part.stateChangedAt ?? ''}: ${part.stateReason ?? ''}`);
  if (report.kind !== part.kind) cloned.push(`its chip says ${report.kind}, the records have a ${part.kind} with this id since ${part.firstSeenAt}`);
  if (report.lot !== part.lot) cloned.push(`its chip says lot ${report.lot}, the records lot ${part.lot} since ${part.firstSeenAt}`);
  if (report.expiry !== part.expiry) cloned.push(`its chip says expiry ${report.expiry ?? 'none'}, the records ${part.expiry ?? 'none'} since ${part.firstSeenAt}`);
  if (report.kind === 'cartridge' && report.kind === part.kind) {
    const firstUse = uses[0];
    if (!report.used && firstUse !== undefined) {
      cloned.push(`its chip reads unused, but it was used in session ${firstUse.sessionId} (${firstUse.at}${firstUse.penSerial === null ? '' : `, pen ${firstUse.penSerial}`})`);
    } else if (!report.used && part.chip?.used === true) {
      cloned.push(`its chip reads unused, but read used on ${part.chip.at}: the used mark cannot be undone`);
    }
  }
  if (report.kind === 'nosecone' && report.kind === part.kind) {
    // Only cycles whose indicator passed are certain to have burnt a tally bit; every session did, before its needle ran.
    const passedCycles = cycles.filter((cycle) => cycle.chemicalIndicator === 'pass').length;
    const seenAt = part.chip?.at ?? '';
    const seenSterilizations = part.chip?.sterilizationTally ?? null;
    const seenUses = part.chip?.useTally ?? null;
    if (seenSterilizations !== null && report.sterilizationTally < seenSterilizations) {
      cloned.push(`its sterilization tally went backwards: ${report.sterilizationTally}, read ${seenSterilizations} on ${seenAt}`);
    } else if (report.sterilizationTally < passedCycles) {
      cloned.push(`its sterilization tally is ${report.sterilizationTally}, but the records hold ${passedCycles} passed cycles for it`);
    }
    if (seenUses !== null && report.useTally < seenUses) {
      cloned.push(`its use tally went backwards: ${report.useTally}, read ${seenUses} on ${seenAt}`);
    } else if (report.useTally < uses.length) {
      cloned.push(`its use tally is ${report.useTally}, but the records hold ${uses.length} sessions with it`);
    }
    if (report.sterilizationTally > cycles.length) {
      notes.push(`its chip counts ${report.sterilizationTally} sterilizations, the records ${cycles.length}: the others were recorded elsewhere, and count toward its limit`);
    }
  }
  const possiblyCloned = cloned.length > 0;
  return {
    accepted: problems.length === 0 && !possiblyCloned, possiblyCloned,
    problems: [...problems, ...cloned.map((text) => `part ${part.id} possibly cloned: ${text}`)], notes,
  };
}

/** A part fitted to a pen, as the registry sees it: the chip's cross-check, and its status after. */
export interface FittedPart {
  readonly check: ChipCheck;
  readonly status: PartStatus;
  /** First seen now, and registered. */
  readonly registered: boolean;
  /** Accepted and ready: the part may be used for a session now. */
  readonly usable: boolean;
}

export interface CycleInput {
  readonly partIds: readonly string[];
  /** A name from config/sterilization-cycles.json. */
  readonly cycle: string;
  readonly sterilizerId: string;
  readonly loadNumber: number;
  readonly chemicalIndicator: ChemicalIndicator;
  readonly biologicalIndicator?: BiologicalIndicator;
}

export interface RecordedCycle {
  readonly cycle: CycleRecord;
  readonly spec: SterilizationCycleSpec;
  /** Each part's status after the cycle. */
  readonly parts: readonly PartStatus[];
  readonly notes: readonly string[];
}

/** A session that used a part after a cycle of a load later recalled, before the part's next cycle: its client needs follow-up. */
export interface SessionAfterRecall {
  readonly partId: string;
  readonly sessionId: number;
  readonly at: string;
}

export interface RecordedLoadResult {
  readonly result: BiologicalResult;
  /** The parts of the load, with their status after. */
  readonly parts: readonly PartStatus[];
  /** With a failed result: sessions that used a part of the load since that cycle and before its next. */
  readonly sessionsAfter: readonly SessionAfterRecall[];
}

/** One row of the reprocessing log: one part through one cycle. */
export interface ReprocessingLogRow {
  readonly at: string;
  readonly cycleId: number;
  readonly partId: string;
  readonly partKind: PartKind;
  readonly lot: string;
  /** The part's n-th cycle on record. */
  readonly partCycleNumber: number;
  readonly cycleLimit: number;
  readonly cycle: string;
  readonly temperatureC: number | null;
  readonly holdMinutes: number | null;
  readonly cycleType: string | null;
  readonly sterilizerId: string;
  readonly loadNumber: number;
  readonly chemicalIndicator: ChemicalIndicator;
  readonly biologicalIndicator: BiologicalIndicator;
  readonly sterilizing: boolean;
  readonly operator: string;
  readonly penSerial: string | null;
}

const sterilizerIdPattern = /^[A-Za-z0-9._-]{1,32}$/;

/** The parts registry over a store: its clock is the registry's time, its policy the clinic's (config/policy.json). */
export class SterilizationRegistry {
  constructor(private readonly store: PenStore, readonly policy: Policy = configuredPolicy) {}

  private history(id: string): PartHistory {
    const history = this.store.parts.history(id);
    if (history === null) throw new UnknownPartError(`no part ${id} on record in ${this.store.path}`);
    return history;
  }

  /** The part's status now; an UnknownPartError if it is not on record. */
  status(partId: string): PartStatus {
    return partStatus(this.history(normalizePartId(partId)), this.store.epochMs(), this.policy);
  }

  /** Every part's status now, in the order first seen. */
  list(): PartStatus[] {
    const nowMs = this.store.epochMs();
    return this.store.parts.all().map((part) => partStatus(this.history(part.id), nowMs, this.policy));
  }

  /** The part's records, oldest first, and its status now. */
  show(partId: string): { readonly history: PartHistory; readonly status: PartStatus } {
    const history = this.history(normalizePartId(partId));
    return { history, status: partStatus(history, this.store.epochMs(), this.policy) };
  }

  /**
   * A part fitted to a pen: cross-checks its chip's report, registers a part seen for the first time, keeps the chip's
   * marks when accepted, and flags a possible clone (audited), in one transaction. The part may be used when `usable`.
   */
  checkFitted(chipReport: ChipReport, actor: RecordActor): FittedPart {
    const report = checkReport(chipReport);
    return this.store.transaction(() => {
      const before = this.store.parts.history(report.id);
      const check = crossCheckChip(report, before);
      if (before === null) this.store.parts.register({ id: report.id, kind: report.kind, lot: report.lot, expiry: report.expiry }, actor);
      if (check.accepted) {
        this.store.parts.chipSeen(report.id, report.kind === 'cartridge'
          ? { used: report.used, sterilizationTally: null, useTally: null }
          : { used: null, sterilizationTally: report.sterilizationTally, useTally: report.useTally });
      } else if (check.possiblyCloned && before?.part.state === 'in_service') {
        const reason = `possibly cloned: ${check.problems.join('; ')}`;
        this.store.parts.setState(report.id, 'flagged', reason, actor, { report });
        this.store.audit(null, 'flag_part', { partId: report.id, reason, report }, 'ok', actor);
      }
      const status = partStatus(this.history(report.id), this.store.epochMs(), this.policy);
      return { check, status, registered: before === null, usable: check.accepted && status.ready };
    });
  }

  /**
   * Records a sterilization cycle of a load for nosecones on record. A failed chemical indicator is recorded and the
   * parts are not sterile; a biological indicator given now is also the load's result (a failure recalls the load).
   */
  recordCycle(input: CycleInput, actor: RecordActor): RecordedCycle {
    const spec = cycleNamed(input.cycle);
    if (spec === undefined) throw new RegistryRefusedError(`no sterilization cycle "${input.cycle}": the catalogue has ${describeCatalogue()}`);
    this.checkLoad(input.sterilizerId, input.loadNumber);
    if (input.partIds.length === 0) throw new RegistryRefusedError('a sterilization cycle needs at least one part');
    const partIds = [...new Set(input.partIds.map(normalizePartId))];
    return this.store.transaction(() => {
      const nowMs = this.store.epochMs();
      for (const id of partIds) {
        const history = this.history(id);
        const { part } = history;
        if (part.kind !== 'nosecone') throw new RegistryRefusedError(`part ${id} is a ${part.kind}: single-use cartridges are sterilized by their maker, never reprocessed`);
        if (part.state !== 'in_service') throw new RegistryRefusedError(`part ${id} is ${part.state}: ${part.stateReason ?? ''}; it is not reprocessed`);
        const status = partStatus(history, nowMs, this.policy);
        if (status.condition === 'at_cycle_limit') throw new RegistryRefusedError(`part ${id}: ${status.text}`);
        if (status.condition === 'expired') throw new RegistryRefusedError(`part ${id}: ${status.text}`);
      }
      const cycle = this.store.parts.recordCycle({
        cycle: spec.name, sterilizerId: input.sterilizerId, loadNumber: input.loadNumber, partIds,
        chemicalIndicator: input.chemicalIndicator, biologicalIndicator: input.biologicalIndicator ?? 'pending',
      }, actor);
      const parts = partIds.map((id) => partStatus(this.history(id), this.store.epochMs(), this.policy));
      const notes = [
        ...(input.chemicalIndicator === 'fail' ? ['chemical indicator failed: the cycle is recorded, and the parts are not sterile; reprocess them'] : []),
        ...(input.biologicalIndicator === 'fail' ? this.recallNotes(input.sterilizerId, input.loadNumber) : []),
      ];
      return { cycle, spec, parts, notes };
    });
  }

  /** Records a biological indicator result for a load already on record; a failure recalls every part of it (audited). */
  recordBiologicalResult(sterilizerId: string, loadNumber: number, result: 'pass' | 'fail', actor: RecordActor): RecordedLoadResult {
    this.checkLoad(sterilizerId, loadNumber);
    return this.store.transaction(() => {
      const cycles = this.store.parts.loadCycles(sterilizerId, loadNumber);
      if (cycles.length === 0) throw new RegistryRefusedError(`no cycle of sterilizer ${sterilizerId} load ${loadNumber} is on record`);
      const recorded = this.store.parts.recordBiologicalResult(sterilizerId, loadNumber, result, actor);
      const partIds = [...new Set(cycles.flatMap((cycle) => cycle.partIds))];
      const nowMs = this.store.epochMs();
      const sessionsAfter: SessionAfterRecall[] = [];
      if (result === 'fail') {
        for (const id of partIds) {
          const history = this.history(id);
          for (const cycle of cycles.filter((c) => c.partIds.includes(id))) {
            const next = history.cycles.find((c) => c.at > cycle.at || (c.at === cycle.at && c.id > cycle.id));
            for (const use of history.uses) {
              if (use.at >= cycle.at && (next === undefined || use.at < next.at)) sessionsAfter.push({ partId: id, sessionId: use.sessionId, at: use.at });
            }
          }
        }
        this.store.audit(null, 'recall_load', { sterilizerId, loadNumber, partIds, sessionsAfter }, 'ok', actor);
      }
      const parts = partIds.map((id) => partStatus(this.history(id), nowMs, this.policy));
      return { result: recorded, parts, sessionsAfter };
    });
  }

  /** Takes a part out of use for good, with the reason (audited). A retired part is refused again. */
  retire(partId: string, reason: string, actor: RecordActor): PartStatus {
    const id = normalizePartId(partId);
    if (reason.trim() === '') throw new RegistryRefusedError('retiring a part needs a reason (e.g. --reason "cracked tip")');
    return this.store.transaction(() => {
      const { part } = this.history(id);
      if (part.state === 'retired') throw new RegistryRefusedError(`part ${id} was retired already, ${part.stateChangedAt ?? ''}: ${part.stateReason ?? ''}`);
      this.store.parts.setState(id, 'retired', reason.trim(), actor, { previousState: part.state });
      this.store.audit(null, 'retire_part', { partId: id, kind: part.kind, reason: reason.trim(), previousState: part.state }, 'ok', actor);
      return partStatus(this.history(id), this.store.epochMs(), this.policy);
    });
  }

  /** The reprocessing log a clinic keeps: one row per part per cycle, oldest first, with the load's indicator as it stands now. */
  reprocessingLog(filter: { readonly partId?: string; readonly since?: string; readonly until?: string } = {}): ReprocessingLogRow[] {
    const partId = filter.partId === undefined ? undefined : normalizePartId(filter.partId);
    const cycles = this.store.parts.cycles(partId);
    const results = this.store.parts.biologicalResults();
    const parts = new Map(this.store.parts.all().map((part) => [part.id, part]));
    const counts = new Map<string, number>();
    const rows: ReprocessingLogRow[] = [];
    for (const cycle of cycles) {
      const spec = cycleNamed(cycle.cycle);
      for (const id of cycle.partIds) {
        const number = (counts.get(id) ?? 0) + 1;
        counts.set(id, number);
        const part = parts.get(id);
        if (part === undefined || (partId !== undefined && id !== partId)) continue;
        if ((filter.since !== undefined && cycle.at < filter.since) || (filter.until !== undefined && cycle.at >= filter.until)) continue;
        rows.push({
          at: cycle.at, cycleId: cycle.id, partId: id, partKind: part.kind, lot: part.lot, partCycleNumber: number,
          cycleLimit: this.policy.noseconeCycleLimit, cycle: cycle.cycle, temperatureC: spec?.temperatureC ?? null,
          holdMinutes: spec?.holdMinutes ?? null, cycleType: spec?.type ?? null, sterilizerId: cycle.sterilizerId,
          loadNumber: cycle.loadNumber, chemicalIndicator: cycle.chemicalIndicator,
          biologicalIndicator: loadIndicator(results, cycle.sterilizerId, cycle.loadNumber), sterilizing: cycleSterilized(cycle, results),
          operator: cycle.operator, penSerial: cycle.pen?.serial ?? null,
        });
      }
    }
    return rows;
  }

  private checkLoad(sterilizerId: string, loadNumber: number): void {
    if (!sterilizerIdPattern.test(sterilizerId)) {
      throw new RegistryRefusedError(`sterilizer id "${sterilizerId}" is not 1–32 letters, digits, ".", "_" or "-"`);
    }
    if (!Number.isInteger(loadNumber) || loadNumber < 0 || loadNumber > 1e9) {
      throw new RegistryRefusedError(`load number ${loadNumber} is not a whole number 0–1000000000`);
    }
  }

  private recallNotes(sterilizerId: string, loadNumber: number): string[] {
    return [`biological indicator failed: sterilizer ${sterilizerId} load ${loadNumber} is recalled; every part in it is not sterile until reprocessed`];
  }
}

/** The part's history as events in time order, for `pen parts show`. */
export function historyLines(history: PartHistory): { readonly at: string; readonly text: string }[] {
  const { part, cycles, loadResults, uses, events } = history;
  const by = (actor: { operator: string | null; pen: { serial: string | null } | null }): string =>
    `by ${actor.operator ?? 'unknown operator'}${(actor.pen?.serial ?? null) === null ? '' : ` on pen ${actor.pen?.serial ?? ''}`}`;
  const lines = [
    ...events.map((event) => ({ at: event.at, text: `${event.event}${describeDetail(event.event, event.detail)} ${by(event)}` })),
    ...cycles.map((cycle) => ({
      at: cycle.at,
      text: `cycle ${cycle.id}: ${cycle.cycle}, sterilizer ${cycle.sterilizerId} load ${cycle.loadNumber}, chemical indicator ${cycle.chemicalIndicator}, ` +
        `biological indicator ${cycle.biologicalIndicator} when recorded${cycleSterilized(cycle, loadResults) ? '' : ' (NOT sterilizing)'} ${by(cycle)}`,
    })),
    ...loadResults.map((result) => ({
      at: result.at, text: `biological indicator ${result.result} for sterilizer ${result.sterilizerId} load ${result.loadNumber}${result.result === 'fail' ? ' (load recalled)' : ''} ${by(result)}`,
    })),
    ...uses.map((use) => {
      // A use after a cycle whose load was recalled later: that session's client needs following up.
      const before = cycles.filter((cycle) => cycle.at <= use.at).at(-1);
      const recalled = before !== undefined && loadIndicator(loadResults, before.sterilizerId, before.loadNumber) === 'fail'
        ? `; AFTER cycle ${before.id} of recalled load ${before.loadNumber} (sterilizer ${before.sterilizerId}): follow up that session's client` : '';
      return { at: use.at, text: `used in session ${use.sessionId}${use.penSerial === null ? '' : ` on pen ${use.penSerial}`}${recalled}` };
    }),
  ];
  if (part.chip !== null) {
    const marks = part.kind === 'cartridge' ? `used mark ${part.chip.used === true ? 'set' : 'clear'}`
      : `sterilization tally ${part.chip.sterilizationTally ?? '?'}, use tally ${part.chip.useTally ?? '?'}`;
    lines.push({ at: part.chip.at, text: `chip last read: ${marks}` });
  }
  return lines.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
}

function describeDetail(event: string, detail: Record<string, unknown>): string {
  const text = (value: unknown): string => (typeof value === 'string' ? value : 'none');
  if (event === 'registered') return `: ${text(detail['kind'])}, lot ${text(detail['lot'])}, expiry ${text(detail['expiry'])}`;
  const reason = detail['reason'];
  return typeof reason === 'string' ? `: ${reason}` : '';
}
