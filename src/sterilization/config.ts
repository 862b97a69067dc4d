// The sterilization cycle catalogue and the clinic's policy (config/*.json), checked once at load, and the nosecone's
// cycle limit: the manufacturer's, from hardware/pen.json, else the policy's.
import { pen } from '../../hardware/description.ts';
import cyclesJson from '../../config/sterilization-cycles.json' with { type: 'json' };
import policyJson from '../../config/policy.json' with { type: 'json' };

export type CycleType = 'gravity' | 'pre-vacuum' | 'prion';

/** One validated steam cycle, as the catalogue names it. */
export interface SterilizationCycleSpec {
  readonly name: string;
  readonly temperatureC: number;
  readonly holdMinutes: number;
  readonly type: CycleType;
  readonly text: string;
}

export interface Policy {
  readonly sterileShelfLifeDays: number;
  readonly cycleLimitWarningPercent: number;
  readonly clientSpacingDays: number;
  /** The nosecone's reprocessing cycle limit in force, and where it comes from. */
  readonly noseconeCycleLimit: number;
  readonly noseconeCycleLimitSource: string;
}

export const catalogueFile = 'config/sterilization-cycles.json';
export const policyFile = 'config/policy.json';

const cycleTypes: readonly CycleType[] = ['gravity', 'pre-vacuum', 'prion'];

const isWholePositive = (value: unknown): value is number => typeof value === 'number' && Number.isInteger(value) && value > 0;

/** Checks the catalogue's entries; throws naming the file and the entry at fault. */
export function checkCatalogue(entries: readonly unknown[]): SterilizationCycleSpec[] {
  const seen = new Set<string>();
  return entries.map((entry, index) => {
    const cycle = entry as Partial<Record<keyof SterilizationCycleSpec, unknown>>;
    const where = `${catalogueFile}, cycle ${index + 1}`;
    if (typeof cycle.name !== 'string' || !/^[A-Za-z0-9._-]{1,40}$/.test(cycle.name)) throw new Error(`${where}: name must be 1–40 letters, digits, ".", "_" or "-"`);
    if (seen.has(cycle.name)) throw new Error(`${where}: ${cycle.name} is named twice`);
    seen.add(cycle.name);
    if (typeof cycle.temperatureC !== 'number' || cycle.temperatureC < 100 || cycle.temperatureC > 140) throw new Error(`${where}: temperatureC must be 100–140`);
    if (typeof cycle.holdMinutes !== 'number' || !(cycle.holdMinutes > 0)) throw new Error(`${where}: holdMinutes must be above 0`);
    if (!cycleTypes.includes(cycle.type as CycleType)) throw new Error(`${where}: type must be one of ${cycleTypes.join(', ')}`);
    if (typeof cycle.text !== 'string') throw new Error(`${where}: text is missing`);
    return { name: cycle.name, temperatureC: cycle.temperatureC, holdMinutes: cycle.holdMinutes, type: cycle.type as CycleType, text: cycle.text };
  });
}

/**
 * The manufacturer's nosecone cycle limit, if the pen description states one (idChips.noseconeCycleLimit, a whole
 * number); read without its type, so that a description without it falls back to the policy. Returns its value and
 * path, or null.
 */
export function manufacturerCycleLimit(description: unknown): { readonly limit: number; readonly path: string } | null {
  const limit = (description as { idChips?: { noseconeCycleLimit?: unknown } } | null)?.idChips?.noseconeCycleLimit;
  return isWholePositive(limit) ? { limit, path: 'idChips.noseconeCycleLimit' } : null;
}

/** Checks the policy file's values and settles the cycle limit; throws naming the field at fault. */
export function checkPolicy(raw: Record<string, unknown>, description: unknown): Policy {
  const whole = (name: string, max: number): number => {
    const value = raw[name];
    if (!isWholePositive(value) || value > max) throw new Error(`${policyFile}: ${name} must be a whole number 1–${max}`);
    return value;
  };
  const fallback = whole('noseconeCycleLimit', 100_000);
  const manufacturer = manufacturerCycleLimit(description);
  return {
    sterileShelfLifeDays: whole('sterileShelfLifeDays', 3650),
    cycleLimitWarningPercent: whole('cycleLimitWarningPercent', 100),
    clientSpacingDays: whole('clientSpacingDays', 3650),
    noseconeCycleLimit: manufacturer?.limit ?? fallback,
    noseconeCycleLimitSource: manufacturer === null ? `${policyFile} noseconeCycleLimit` : `hardware/pen.json ${manufacturer.path}`,
  };
}

export const sterilizationCycles: readonly SterilizationCycleSpec[] = checkCatalogue(cyclesJson.cycles);
export const policy: Policy = checkPolicy(policyJson, pen);

/** The catalogue entry of that name, if there is one. */
export function cycleNamed(name: string): SterilizationCycleSpec | undefined {
  return sterilizationCycles.find((entry) => entry.name === name);
}

/** The catalogue in one line, for errors and help: each name with what it is. */
export function describeCatalogue(): string {
  return sterilizationCycles.map((entry) => `${entry.name} (${entry.text})`).join(', ');
}
