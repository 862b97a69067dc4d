// The pen's own count of role-check refusals and wrong answers, carried into the audit log: each time a `pen` command
// connects (and again when it is done), what the pen counted since the last entry for it is recorded, so a raw client
// refused while no host was watching still shows up.
import type { PenDevice, AuthStatus } from '../../hal/device.ts';
import type { AuditActor, PenStore } from '../store/store.ts';
import { penRecordIdentity } from '../store/actor.ts';

export const authCountersCommand = 'auth_refusals';

export interface AuthCountersDelta {
  readonly refusals: number;
  readonly wrongAnswers: number;
  /** The pen's boot count is below the last recorded one: its EEPROM was erased or replaced, so all it counts is new. */
  readonly erased: boolean;
  /** Refusals last recorded that the pen no longer counts: counted in RAM, then a reset before it wrote them. */
  readonly lostRefusals: number;
}

/** Records what the pen counted since the last entry for it (if anything); returns that, or null when nothing new. */
export function recordAuthCounters(store: PenStore, device: PenDevice, status: AuthStatus, where: string, when: string, actor: AuditActor): AuthCountersDelta | null {
  const pen = penRecordIdentity(device.identity);
  const last = store.latestAudit(authCountersCommand, pen)?.arguments ?? {};
  const number = (value: unknown): number => (typeof value === 'number' ? value : 0);
  const before = { refusals: number(last['refusals']), wrongAnswers: number(last['wrongAnswers']), bootCount: number(last['bootCount']) };
  const erased = status.bootCount < before.bootCount;
  const since = (now: number, then: number): number => (erased ? now : Math.max(0, now - then));
  const delta: AuthCountersDelta = {
    refusals: since(status.refusals, before.refusals), wrongAnswers: since(status.wrongAnswers, before.wrongAnswers),
    erased, lostRefusals: erased ? 0 : Math.max(0, before.refusals - status.refusals),
  };
  if (delta.refusals === 0 && delta.wrongAnswers === 0 && delta.lostRefusals === 0 && !erased) return null;
  const notes = [
    ...(erased ? ["the pen's boot count is below the last recorded one: its EEPROM was erased or replaced, so every count is new"] : []),
    ...(delta.lostRefusals > 0 ? [`${delta.lostRefusals} refusal(s) recorded before were lost by the pen (a reset before it wrote them)`] : []),
  ];
  store.audit(null, authCountersCommand, {
    target: where, when, refusals: status.refusals, wrongAnswers: status.wrongAnswers, bootCount: status.bootCount,
    delta: { refusals: delta.refusals, wrongAnswers: delta.wrongAnswers }, ...(notes.length === 0 ? {} : { note: notes.join('; ') }),
  }, `the pen counted ${delta.refusals} refusal(s) by its role checks, ${delta.wrongAnswers} wrong answer(s), since last recorded`, actor);
  return delta;
}

/** Reads the pen's counts and records what is new; a pen that cannot say (a lost link) is left for the next time. */
export async function auditAuthCounters(store: PenStore, device: PenDevice, where: string, when: string, actor: AuditActor): Promise<AuthCountersDelta | null> {
  let status: AuthStatus;
  try {
    status = await device.authStatus();
  } catch {
    return null;
  }
  return recordAuthCounters(store, device, status, where, when, actor);
}
