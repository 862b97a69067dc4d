// Session spacing on the store and the injected clock: the 42-day boundary to the millisecond, which sessions count
// as treatments, the client reference format, and the refusal's words.
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../hardware/clock.ts';
import { PenStore } from '../../src/store/store.ts';
import { clientRefPattern, describeSpan, spacingFromStore, spacingRefusal } from '../../src/control/spacing.ts';

const dayMs = 86_400_000;
const hourMs = 3_600_000;

function storeWithClient(): { store: PenStore; clock: VirtualClock; treat: (needleRan?: boolean) => number } {
  const clock = new VirtualClock(Date.UTC(2026, 0, 5, 9, 30, 0));
  const store = PenStore.open(':memory:', clock);
  const treat = (needleRan = true): number => {
    const id = store.startSession({
      target: 't', board: 'pen-r1a', firmware: '0.1.0', serial: 'SIM-0001', depthMm: 1, strokesPerSecond: 100, plannedSeconds: 10, clientRef: 'C-1042',
    });
    if (needleRan) store.markNeedleStarted(id);
    return id;
  };
  return { store, clock, treat };
}

describe('session spacing', () => {
  it('refuses a session 41 days 23 h (and 42 days less 1 ms) after the last treatment, allows it at 42 days', { tags: ['REQ-SESSION-SPACING'] }, () => {
    const { store, clock, treat } = storeWithClient();
    expect(spacingFromStore(store, 'C-1042')).toMatchObject({ allowed: true, last: null });
    const session = treat();
    clock.advanceTo(41 * dayMs + 23 * hourMs);
    const early = spacingFromStore(store, 'C-1042');
    expect(early).toMatchObject({ allowed: false, minimumDays: 42, allowedFrom: '2026-02-16T09:30:00.000Z', last: { sessionId: session, penSerial: 'SIM-0001' } });
    expect(spacingRefusal(early, store.epochMs())).toBe(
      `client C-1042 was treated 41 days 23 h ago (session ${session}, 2026-01-05 09:30 UTC, pen SIM-0001); sessions on one client are at least ` +
      '42 days apart, so the next is allowed from 2026-02-16 09:30 UTC, 1 h from now. Wait until then; or, if a clinician has decided otherwise ' +
      '(e.g. to finish a session cut short), run again with --override-spacing "REASON", which is recorded in the audit log');
    clock.advanceTo(42 * dayMs - 1);
    expect(spacingFromStore(store, 'C-1042').allowed).toBe(false);
    clock.advanceTo(42 * dayMs);
    expect(spacingFromStore(store, 'C-1042')).toMatchObject({ allowed: true, daysSince: 42 });
    // Another client is not affected; a session in which the needle never ran is no treatment; the latest one counts.
    expect(spacingFromStore(store, 'C-2000').allowed).toBe(true);
    treat(false);
    expect(spacingFromStore(store, 'C-1042').allowed).toBe(true);
    const again = treat();
    expect(spacingFromStore(store, 'C-1042')).toMatchObject({ allowed: false, last: { sessionId: again } });
    store.close();
  });

  it('takes pseudonymous references only: 4–32 letters, digits, - or _, with a digit', { tags: ['REQ-SESSION-SPACING'] }, () => {
    for (const good of ['C-1042', '0001', 'client_7', 'A'.repeat(31) + '1']) expect(clientRefPattern.test(good), good).toBe(true);
    for (const bad of ['Jane Doe', 'JaneDoe', 'C-1', '', 'C/1042', 'Jöns-1', 'A'.repeat(32) + '1', 'C-1042\n']) expect(clientRefPattern.test(bad), bad).toBe(false);
  });

  it('says spans in days and hours', () => {
    expect(describeSpan(41 * dayMs + 23 * hourMs + 59 * 60_000)).toBe('41 days 23 h');
    expect(describeSpan(30 * 60_000, true)).toBe('1 h');
    expect(describeSpan(dayMs)).toBe('1 day');
  });
});
