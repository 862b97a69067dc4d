// `pen clear-fault`: shows the latched fault (catalogue entry, clear rule, whether its cause stands), asks the pen to
// clear it, and says what comes next, or exactly why the pen would not.
import { PenRefusedError, type Telemetry } from '../../hal/device.ts';
import type { PenStore } from '../store/store.ts';
import { causeOf, describeCause, recordFaultOnPen, type CauseCheck, type FaultOnPen } from './faults.ts';
import type { Target } from './target.ts';

export interface ClearFaultResult {
  readonly port: string;
  readonly fault: FaultOnPen | null;
  readonly cleared: boolean;
  /** Why the pen refused, when it did. */
  readonly refused: string | null;
  readonly state: Telemetry['state'];
  /** What the operator does next, in order. */
  readonly next: readonly string[];
}

function nextSteps(fault: FaultOnPen, after: Telemetry): string[] {
  const steps: string[] = [];
  if (after.state === 'homing_required' || fault.needsHoming) steps.push('the depth axis must be homed again: run pen home');
  if (fault.critical) {
    steps.push("the cartridge's clearance was withdrawn: inspect the cartridge; it is cleared for use again before the pen arms (pen run --cartridge ID)");
  }
  if (steps.length === 0) steps.push('position retained: the pen is ready to arm');
  return steps;
}

function refusalReason(fault: FaultOnPen, cause: CauseCheck | null): string {
  if (cause === null) return `the cause of ${fault.name} persists on the pen (${fault.text})`;
  if (cause.present === false) return `the cause of ${fault.name} persists on the pen, though telemetry shows ${cause.text}; ${cause.remedy}`;
  return `the cause persists: ${cause.text}; ${cause.remedy}, then run pen clear-fault again`;
}

/** Runs inside withAudit: details go into the audit entry, refused or not. */
export async function clearFault(target: Target, store: PenStore, details: Record<string, unknown>, json: boolean): Promise<void> {
  const before = await target.device.status();
  const fault = recordFaultOnPen(store, target, before, 'pen clear-fault');
  const print = (result: ClearFaultResult): void => {
    if (json) console.log(JSON.stringify(result, null, 2));
  };
  if (fault === null) {
    details['fault'] = 'none';
    print({ port: target.where, fault: null, cleared: false, refused: null, state: before.state, next: [] });
    if (!json) console.log(`no fault latched on ${target.where}: nothing to clear (state ${before.state.replace('_', ' ')})`);
    return;
  }
  details['fault'] = fault.name;
  details['causePresent'] = fault.cause?.present ?? null;
  if (!json) {
    console.log(`FAULT ${fault.name} (code ${fault.code}) on ${target.where}: ${fault.text}${fault.critical ? ' (critical)' : ''}`);
    console.log(`  how to clear: ${fault.clearRule}`);
    console.log(`  cause: ${describeCause(fault.cause)}`);
  }
  try {
    await target.device.clearFault();
  } catch (error) {
    if (!(error instanceof PenRefusedError) || error.code !== 'fault_cause_present') throw error;
    const now = await target.device.status().catch(() => before);
    const reason = refusalReason(fault, causeOf(fault.name, now));
    print({ port: target.where, fault, cleared: false, refused: reason, state: now.state, next: [] });
    throw new PenRefusedError('clear_fault', error.code, error.detail, reason);
  }
  const after = await target.device.status();
  const next = nextSteps(fault, after);
  print({ port: target.where, fault, cleared: true, refused: null, state: after.state, next });
  if (!json) console.log(`cleared ${fault.name}, state ${after.state.replace('_', ' ')}; ${next.join('; ')}`);
}
