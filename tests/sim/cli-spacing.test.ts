// Session spacing as a user meets it: `pen run --client REF` in its own process, against a store that holds the
// client's last treatment (written beforehand at a time relative to now), refused before the pen is touched, accepted
// at six weeks, overridden with a reason that lands in the audit log.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RealClock, VirtualClock } from '../../hardware/clock.ts';
import { pen as description } from '../../hardware/description.ts';
import { PenStore } from '../../src/store/store.ts';
import { PenProcesses, type PenResult } from '../pen-process.ts';
import { sterileNoseconeStore } from './registered-parts.ts';

const processes = new PenProcesses();
afterEach(() => processes.killAll());

const dayMs = 86_400_000;
const hourMs = 3_600_000;
const clientFormat = /is not a client reference: 4–32 letters, digits, "-" or "_", with at least one digit \(e\.g\. C-1042\): a pseudonym from your client records, never a name/;

/**
 * A fresh data directory whose store holds one treatment of client C-1042 (session 1, pen PN-0007), agoMs before now,
 * and the in-process pen's nosecone sterilized since (a session checks its parts).
 */
async function treatedAgo(agoMs: number): Promise<string> {
  const dataDir = processes.freshDataDir();
  await sterileNoseconeStore(join(dataDir, 'pen.db'));
  const store = PenStore.open(join(dataDir, 'pen.db'), new VirtualClock(new RealClock().epochMs() - agoMs));
  const id = store.startSession({
    target: 'earlier', board: 'pen-r1a', firmware: '0.1.0', serial: 'PN-0007', depthMm: 1, strokesPerSecond: 100, plannedSeconds: 30, clientRef: 'C-1042',
  });
  store.markNeedleStarted(id);
  store.endSession(id, 'completed', {});
  store.close();
  return dataDir;
}

/** `pen run` for 1 s at 1.0 mm on the in-process virtual pen of dataDir, with these extra arguments. */
const penRun = (args: readonly string[], dataDir: string, env: NodeJS.ProcessEnv = {}): Promise<PenResult> =>
  processes.run(['run', '--depth', '1.0', '--speed', '100', '--duration', '1', ...args], { dataDir, env });

function withStore<T>(dataDir: string, fn: (store: PenStore) => T): T {
  const store = PenStore.open(join(dataDir, 'pen.db'), new RealClock());
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

describe('pen run --client', () => {
  it('refuses a client treated 41 days 23 h ago before touching the pen (exit 5), and malformed references naming the format (exit 2)', { tags: ['REQ-SESSION-SPACING'] }, async () => {
    const early = await treatedAgo(41 * dayMs + 23 * hourMs);
    const other = processes.freshDataDir();
    const [refused, name, short, noReason, noClient, anonymous] = await Promise.all([
      penRun(['--client', 'C-1042'], early),
      penRun(['--client', 'Jane Doe'], other),
      penRun(['--client', 'C-1'], other),
      penRun(['--client', 'C-1042', '--override-spacing', '  '], other),
      penRun(['--override-spacing', 'because'], other),
      // Without --client: allowed, with a warning; this one then fails to connect (nothing listens on port 1).
      penRun(['--port', 'tcp://127.0.0.1:1'], other),
    ]);
    expect(refused.code, refused.stderr).toBe(5);
    expect(refused.stderr).toMatch(new RegExp(
      '^pen: client C-1042 was treated 41 days 23 h ago \\(session 1, \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC, pen PN-0007\\); sessions on one client are at least ' +
      '42 days apart, so the next is allowed from \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC, 1 h from now\\. Wait until then; or, if a clinician has decided ' +
      'otherwise \\(e\\.g\\. to finish a session cut short\\), run again with --override-spacing "REASON", which is recorded in the audit log\\n$'));
    expect(refused.stdout).toBe('');
    expect(existsSync(join(early, 'pen', 'virtual-pen.eeprom'))).toBe(false);  // the in-process pen never started
    expect(withStore(early, (store) => store.lastClientTreatment('C-1042')?.sessionId)).toBe(1);
    for (const bad of [name, short]) {
      expect(bad.code, bad.stderr).toBe(2);
      expect(bad.stderr).toMatch(clientFormat);
    }
    expect(name.stderr).toMatch(/--client "Jane Doe" is not/);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toMatch(/--override-spacing needs a reason of 1–500 characters/);
    expect(noClient.code).toBe(2);
    expect(noClient.stderr).toMatch(/--override-spacing overrides the spacing of one client's sessions: give --client REF too/);
    expect(anonymous.code).toBe(3);
    expect(anonymous.stderr).toMatch(/^pen: warning: no --client given: the session is recorded without a client, and session spacing is not checked\n/);
  });

  it('treats a client last treated 42 days ago; sooner only with --override-spacing, audited with the reason, operator and pen', { tags: ['REQ-SESSION-SPACING', 'REQ-AUDIT-LOG'] }, async () => {
    const due = await treatedAgo(42 * dayMs);
    const soon = await treatedAgo(10 * dayMs);
    const reason = 'finishing the session cut short by a needle jam';
    const [accepted, overridden] = await Promise.all([
      penRun(['--client', 'C-1042'], due),
      penRun(['--client', 'C-1042', '--override-spacing', reason, '--json'], soon, { PEN_OPERATOR: 'dr-5' }),
    ]);
    expect(accepted.code, accepted.stderr).toBe(0);
    expect(accepted.stdout).toMatch(/client C-1042: last treated 42 days ago \(session 1\); at least 42 days apart: allowed/);
    expect(accepted.stdout).toMatch(/ended: completed/);
    withStore(due, (store) => {
      expect(store.lastClientTreatment('C-1042')).toMatchObject({ sessionId: 2, penSerial: null });
      expect(store.queryAudit({ command: 'override_spacing' })).toEqual([]);
    });

    expect(overridden.code, overridden.stderr).toBe(0);
    const report = JSON.parse(overridden.stdout) as { client: { clientRef: string; allowed: boolean; overriddenBecause: string }; summary: { sessionId: number; outcome: string } };
    expect(report.client).toMatchObject({ clientRef: 'C-1042', allowed: false, overriddenBecause: reason });
    expect(report.summary).toMatchObject({ sessionId: 2, outcome: 'completed' });
    withStore(soon, (store) => {
      expect(store.lastClientTreatment('C-1042')?.sessionId).toBe(2);
      const [entry, ...others] = store.queryAudit({ command: 'override_spacing' });
      expect(others).toEqual([]);
      expect(entry).toMatchObject({
        sessionId: 2, result: 'ok', operator: 'dr-5', pen: { board: description.board.name },
        arguments: { clientRef: 'C-1042', reason, minimumDays: 42, lastSession: 1 },
      });
      expect(entry?.arguments['daysSince']).toBeCloseTo(10, 1);
    });
  });
});
