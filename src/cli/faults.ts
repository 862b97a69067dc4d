// Faults from the command line: the catalogue entry and standing cause of a latched fault, and `pen faults`, which
// lists the store's records and, given a port, reads the pen's own latched fault and records it once.
import { RealClock } from '../../hardware/clock.ts';
import { faultDescription, pen } from '../../hardware/description.ts';
import { Fault, faultClearRule, faultInfo, type FaultName } from '../../hardware/generated/protocol.ts';
import type { Telemetry } from '../../hal/device.ts';
import { defaultStorePath, PenStore, type FaultRecord } from '../store/store.ts';
import { describePen } from './audit.ts';
import { penRecordIdentity } from '../store/actor.ts';
import { numberOption, UsageError } from './format.ts';
import { openTarget, type Target } from './target.ts';

/** A fault as the catalogue (hardware/faults.json, docs/faults.md) describes it. */
export interface FaultExplanation {
  readonly code: number;
  readonly name: FaultName;
  readonly text: string;
  readonly critical: boolean;
  readonly needsHoming: boolean;
  /** How it is cleared, in the catalogue's words. */
  readonly clearRule: string;
}

export function explainFault(name: FaultName): FaultExplanation {
  const code = Fault[name];
  const entry = faultDescription.faults.find((fault) => fault.code === code);
  const rule = faultClearRule[code] ?? { critical: true, needsHoming: true };
  const clearRule = entry === undefined ? 'not in the catalogue' : faultDescription.clearRules[entry.clear as keyof typeof faultDescription.clearRules];
  return { code, name, text: faultInfo[code]?.text ?? name, critical: rule.critical, needsHoming: rule.needsHoming, clearRule };
}

/**
 * Whether the fault's cause still stands, as the telemetry shows it (the firmware's own check, cause_present() in
 * firmware/src/safety.c, decides): present true or false, or null when the telemetry cannot show it. Null for a fault
 * with no standing cause (an event: nothing persists that would keep it from clearing).
 */
export interface CauseCheck {
  readonly present: boolean | null;
  /** What is seen, e.g. "the emergency stop is tripped (its loop is open)". */
  readonly text: string;
  /** What would remove it. */
  readonly remedy: string;
}

const limits = pen.limits;

export function causeOf(name: FaultName, t: Telemetry): CauseCheck | null {
  switch (name) {
    case 'estop':
      return {
        present: t.estopTripped, remedy: 'close the emergency stop loop (release the button)',
        text: t.estopTripped ? 'the emergency stop is tripped (its loop is open)' : 'the emergency stop loop is closed',
      };
    case 'cartridge_removed':
      return { present: !t.cartridgePresent, remedy: 'fit a cartridge', text: t.cartridgePresent ? 'a cartridge is fitted' : 'no cartridge is fitted' };
    case 'over_temperature': {
      const clearC = limits.temperatureClearDeciC / 10;
      const present = t.temperatureC > clearC;
      return {
        present, remedy: `let the handpiece cool below ${clearC.toFixed(1)} °C`,
        text: `the handpiece is at ${t.temperatureC.toFixed(1)} °C, ${present ? 'above' : 'below'} the ${clearC.toFixed(1)} °C it must cool to`,
      };
    }
    case 'supply_out_of_range': {
      const range = `${(limits.supplyMinMv / 1000).toFixed(2)}–${(limits.supplyMaxMv / 1000).toFixed(2)} V`;
      const present = t.supplyVolts * 1000 < limits.supplyMinMv || t.supplyVolts * 1000 > limits.supplyMaxMv;
      return {
        present, remedy: `bring the supply into ${range}`,
        text: `the supply is at ${t.supplyVolts.toFixed(2)} V, ${present ? 'outside' : 'inside'} ${range}`,
      };
    }
    case 'temperature_sensor':
      return {
        present: null, remedy: 'check the temperature sensor and its wiring',
        text: `the pen checks whether the temperature sensor still reads open or shorted (telemetry shows ${t.temperatureC.toFixed(1)} °C)`,
      };
    case 'depth_sensor':
      return {
        present: null, remedy: 'check the depth sensor and its wiring',
        text: `the pen checks whether the depth sensor still reads outside its plausible range (telemetry shows ${t.sensedDepthMm.toFixed(3)} mm)`,
      };
    default:
      return null;
  }
}

export function describeCause(cause: CauseCheck | null): string {
  if (cause === null) return 'no standing cause (an event: nothing persists that keeps it from clearing)';
  const verdict = cause.present === null ? 'the pen decides' : cause.present ? 'STILL PRESENT' : 'gone';
  return `${verdict}: ${cause.text}`;
}

/** What a fault record keeps of the telemetry in which the fault was seen (as the treatment session does). */
export function telemetryContext(t: Telemetry): Record<string, unknown> & { readonly uptimeMs: number } {
  return {
    state: t.state, depthMm: t.depthMm, sensedDepthMm: t.sensedDepthMm, strokesPerSecond: t.strokesPerSecond,
    motorCurrentMa: t.motorCurrentMa, temperatureC: t.temperatureC, supplyVolts: t.supplyVolts, uptimeMs: t.uptimeMs,
    estopTripped: t.estopTripped, cartridgePresent: t.cartridgePresent, homed: t.homed,
  };
}

/** The pen's latched fault as a command found it, and its record in the store. */
export interface FaultOnPen extends FaultExplanation {
  readonly cause: CauseCheck | null;
  /** The store's record of this latch, and whether this command wrote it (false: it was on record already). */
  readonly recordId: number;
  readonly newlyRecorded: boolean;
}

/**
 * Records the pen's latched fault in the store unless this latch is on record already (same pen, same code, no reset
 * and no clear since); seenBy names the command that read it. Null when no fault is latched.
 */
export function recordFaultOnPen(store: PenStore, target: Target, t: Telemetry, seenBy: string): FaultOnPen | null {
  if (t.state !== 'fault' || t.fault === 'none') return null;
  const { fault, recorded } = store.recordLatchedFault(
    penRecordIdentity(target.device.identity), target.where, t.fault, t.faultText,
    { ...telemetryContext(t), target: target.where, seenBy, note: 'read from the pen while latched; the fault itself happened earlier' },
  );
  return { ...explainFault(t.fault), cause: causeOf(t.fault, t), recordId: fault.id, newlyRecorded: recorded };
}

export interface FaultsFlags {
  readonly db?: string;
  readonly json?: boolean;
  readonly limit: string;
  readonly port?: string;
}

function describeFaultRecord(f: FaultRecord, onPenId: number | null): string {
  const pen = f.pen === null ? '' : `  ${describePen(f.pen)}`;
  return `${f.at}  session ${f.sessionId ?? '-'}  ${f.source}  ${f.code}: ${f.text}${pen}${f.id === onPenId ? '  <- latched on the pen now' : ''}`;
}

/** `pen faults`: the store's records, newest first; with a port, the pen's latched fault first, recorded if new. */
export async function faultsCommand(flags: FaultsFlags): Promise<void> {
  const limit = numberOption(flags.limit, '--limit', '20') ?? 20;
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit must be a whole number ≥ 1 (got ${flags.limit})`);
  const store = PenStore.open(flags.db ?? defaultStorePath(), new RealClock());
  try {
    if (flags.port === undefined) {
      const faults = store.faults(limit);
      if (flags.json === true) console.log(JSON.stringify(faults, null, 2));
      else if (faults.length === 0) console.log(`no faults recorded in ${store.path}`);
      else for (const f of faults) console.log(describeFaultRecord(f, null));
      return;
    }
    const target = await openTarget({ port: flags.port });
    let onPen: FaultOnPen | null;
    let state: string;
    try {
      const t = await target.device.status();
      state = t.state;
      onPen = recordFaultOnPen(store, target, t, 'pen faults');
    } finally {
      await target.close();
    }
    const faults = store.faults(limit);
    if (flags.json === true) {
      console.log(JSON.stringify({ port: target.where, identity: target.device.identity, state, onPen, faults }, null, 2));
      return;
    }
    if (onPen === null) {
      console.log(`on the pen now (${target.where}): no fault latched, state ${state.replace('_', ' ')}`);
    } else {
      console.log(`on the pen now (${target.where}): FAULT ${onPen.name}: ${onPen.text}; ` +
        `${onPen.newlyRecorded ? 'recorded now' : 'already recorded'} as #${onPen.recordId}`);
      console.log(`  cause: ${describeCause(onPen.cause)}`);
      console.log(`  how to clear: ${onPen.clearRule} (pen clear-fault)`);
    }
    if (faults.length === 0) console.log(`no faults recorded in ${store.path}`);
    else for (const f of faults) console.log(describeFaultRecord(f, onPen?.recordId ?? null));
  } finally {
    store.close();
  }
}
