// The requirements and hazards the tests verify (hardware/requirements.json): loaded, checked for consistency, and
// exported as the test tags vitest accepts (vitest.config.ts), so that a test naming an unknown requirement fails to run.
import data from '../../hardware/requirements.json' with { type: 'json' };

/** One of 21 CFR 878.4430(b)'s special controls, by its paragraph. */
export interface SpecialControl {
  readonly id: string;
  readonly text: string;
}

export interface Requirement {
  /** REQ-AREA-NAME: the tag the tests carry. */
  readonly id: string;
  readonly text: string;
  /** Ids of the special controls it serves (may be empty). */
  readonly specialControls: readonly string[];
}

/** A risk control: what is done about a hazard's cause, and the requirements whose tests verify it. */
export interface HazardControl {
  readonly text: string;
  readonly requirements: readonly string[];
}

/** An ISO 14971-style hazard record. */
export interface Hazard {
  readonly id: string;
  readonly hazard: string;
  readonly cause: string;
  readonly harm: string;
  readonly controls: readonly HazardControl[];
}

export interface RequirementSet {
  readonly specialControls: readonly SpecialControl[];
  readonly requirements: readonly Requirement[];
  readonly hazards: readonly Hazard[];
}

/** Throws naming every dangling reference and duplicate id, so that the file cannot drift out of shape unnoticed. */
export function checkRequirementSet(set: RequirementSet): RequirementSet {
  const problems: string[] = [];
  const controlIds = new Set(set.specialControls.map((c) => c.id));
  const requirementIds = new Set<string>();
  for (const requirement of set.requirements) {
    if (!/^REQ-[A-Z0-9]+(-[A-Z0-9]+)*$/.test(requirement.id)) problems.push(`${requirement.id}: an id is REQ- and upper-case words joined by '-'`);
    if (requirementIds.has(requirement.id)) problems.push(`${requirement.id} appears twice`);
    requirementIds.add(requirement.id);
    for (const control of requirement.specialControls) {
      if (!controlIds.has(control)) problems.push(`${requirement.id} names special control ${control}, which is not listed`);
    }
  }
  const hazardIds = new Set<string>();
  for (const hazard of set.hazards) {
    if (hazardIds.has(hazard.id)) problems.push(`${hazard.id} appears twice`);
    hazardIds.add(hazard.id);
    if (hazard.controls.length === 0) problems.push(`${hazard.id} has no control`);
    for (const control of hazard.controls) {
      if (control.requirements.length === 0) problems.push(`${hazard.id}: control "${control.text}" names no requirement to verify it`);
      for (const id of control.requirements) {
        if (!requirementIds.has(id)) problems.push(`${hazard.id}: control "${control.text}" names ${id}, which is not a requirement`);
      }
    }
  }
  if (problems.length > 0) throw new Error(`hardware/requirements.json: ${problems.join('; ')}`);
  return set;
}

export const requirementSet: RequirementSet = checkRequirementSet(data);

/** The tags vitest accepts: one per requirement, described by its text. */
export const requirementTags = requirementSet.requirements.map((r) => ({ name: r.id, description: r.text }));
