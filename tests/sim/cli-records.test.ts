// The records the `pen` command keeps and reads, as a user runs it: clear-fault, faults read from the pen, the audit log
// (who, which pen, old and new values), each `pen` invocation its own process against a pen in another.
import { mkdtempSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RealClock, VirtualClock } from '../../hardware/clock.ts';
import { pen as description } from '../../hardware/description.ts';
import { PenDevice, type Telemetry } from '../../hal/device.ts';
import { TcpTransport } from '../../hal/link/transport.ts';
import { PenStore, type AuditRecord, type FaultRecord } from '../../src/store/store.ts';
import { PenProcesses } from '../pen-process.ts';
import { armingDateMs, clearFittedCartridge, servedVirtualPen } from './virtual-session.ts';
import { testSerial, writeProvisionedEepromFile } from './provisioned.ts';

const clock = new RealClock();
const processes = new PenProcesses();
const cleanups: (() => Promise<void>)[] = [];
const dbPath = (): string => join(mkdtempSync(join(tmpdir(), 'pen-records-')), 'pen.db');

afterEach(async () => {
  processes.killAll();
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

interface Run { code: number; stdout: string; stderr: string }

/** Runs `pen ARGS` in its own process (killed after 20 s); PEN_OPERATOR unset unless env sets it. */
async function penCli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const result = await processes.run(args, { env });
  return { code: result.code ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** `pen sim --listen` on an OS-chosen port, in its own process; resolves with the address it printed. */
const startSim = async (): Promise<string> => (await processes.startSim()).address;

function waitForTelemetry(device: PenDevice, done: (t: Telemetry) => boolean, timeoutMs: number): Promise<Telemetry> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`telemetry condition not met within ${timeoutMs} ms`)), timeoutMs);
    device.onTelemetry((t) => {
      if (!done(t)) return;
      clearTimeout(timer);
      resolve(t);
    });
  });
}

/** A host that runs the needle, then stops its heartbeats and goes away: the pen latches heartbeat_lost with no host. */
async function latchHeartbeatLost(address: string): Promise<void> {
  const port = Number(/:(\d+)$/.exec(address)?.[1]);
  const device = await PenDevice.connect(await TcpTransport.open('127.0.0.1', port), { clock, heartbeat: true });
  try {
    await device.depth.home();
    await clearFittedCartridge(device);
    await device.depth.moveTo(1.0);
    await device.arm(armingDateMs);
    await device.needle.start(100);
    const faulted = waitForTelemetry(device, (t) => t.state === 'fault', 2000);
    device.setHeartbeat(false);
    expect((await faulted).fault).toBe('heartbeat_lost');
  } finally {
    await device.close();
  }
}

const json = (run: Run): unknown => JSON.parse(run.stdout);

describe('pen clear-fault', () => {
  it('shows a heartbeat_lost latched while no host was connected, clears it, says what comes next; with none latched says so', { tags: ['REQ-FAULT-LATCH'] }, async () => {
    const address = await startSim();
    const db = dbPath();
    await latchHeartbeatLost(address);

    const cleared = await penCli(['clear-fault', '--port', address, '--db', db], { PEN_OPERATOR: 'nurse-3' });
    expect(cleared.stderr).toBe('');
    expect(cleared.code).toBe(0);
    expect(cleared.stdout).toMatch(/FAULT heartbeat_lost \(code 1\) on tcp:\/\/127\.0\.0\.1:\d+: the host stopped sending heartbeats while outputs were active \(critical\)/);
    expect(cleared.stdout).toMatch(/how to clear: cleared by clear_fault once the cause is gone; position retained/);
    expect(cleared.stdout).toMatch(/cause: no standing cause/);
    expect(cleared.stdout).toMatch(/cleared heartbeat_lost, state idle; the cartridge's clearance was withdrawn/);

    const again = await penCli(['clear-fault', '--port', address, '--db', db, '--json']);
    expect(again.code).toBe(0);
    expect(json(again) as { fault: unknown; cleared: boolean; state: string }).toMatchObject({ fault: null, cleared: false, state: 'idle' });

    const audit = json(await penCli(['audit', '--db', db, '--command', 'clear_fault', '--json'])) as AuditRecord[];
    expect(audit.map((entry) => [entry.arguments['fault'], entry.result, entry.operator])).toEqual([
      ['none', 'ok', userInfo().username], ['heartbeat_lost', 'ok', 'nurse-3'],
    ]);
    expect(audit[1]?.pen).toMatchObject({ board: description.board.name, serial: null });
    // clear-fault also put the latched fault on record: it happened while no host was there to record it.
    expect((json(await penCli(['faults', '--db', db, '--json'])) as FaultRecord[]).map((f) => f.code)).toEqual(['heartbeat_lost']);
  });

  it('refuses while the e-stop stays tripped, naming the cause, exits 5; clears once it is released and says to home', { tags: ['REQ-FAULT-LATCH', 'REQ-ESTOP'] }, async () => {
    // The e-stop is a switch on the pen: only a pen in this process can hold it open. The `pen` runs in its own.
    const served = await servedVirtualPen();
    cleanups.push(() => served.close());
    const { pen, address } = served;
    const db = dbPath();
    pen.setInput('estop', true);
    await clock.sleep(50);

    const refused = await penCli(['clear-fault', '--port', address, '--db', db]);
    expect(refused.code).toBe(5);
    expect(refused.stdout).toMatch(/FAULT estop \(code 2\)/);
    expect(refused.stdout).toMatch(/how to clear: cleared by clear_fault once the cause is gone; the depth axis must be homed again/);
    expect(refused.stdout).toMatch(/cause: STILL PRESENT: the emergency stop is tripped/);
    expect(refused.stderr).toMatch(/pen refused clear_fault: the cause persists: the emergency stop is tripped \(its loop is open\); close the emergency stop loop \(release the button\), then run pen clear-fault again \(fault_cause_present, detail 2\)/);

    pen.setInput('estop', false);
    await clock.sleep(50);
    const cleared = await penCli(['clear-fault', '--port', address, '--db', db, '--json']);
    expect(cleared.code).toBe(0);
    expect(json(cleared) as { fault: { name: string; needsHoming: boolean }; cleared: boolean; state: string; next: string[] }).toMatchObject({
      fault: { name: 'estop', needsHoming: true }, cleared: true, state: 'homing_required',
      next: expect.arrayContaining(['the depth axis must be homed again: run pen home']) as unknown,
    });
    const audit = json(await penCli(['audit', '--db', db, '--json'])) as AuditRecord[];
    expect(audit.map((entry) => entry.result)).toEqual(['ok', expect.stringMatching(/^refused: pen refused clear_fault: the cause persists: the emergency stop is tripped/)]);
    expect(audit[1]?.arguments).toMatchObject({ fault: 'estop', causePresent: true });
  });
});

describe('pen faults --port', () => {
  it('shows the fault latched on the pen while no host was connected, and records it once', { tags: ['REQ-RECORDS-DURABLE', 'REQ-FAULT-LATCH'] }, async () => {
    const address = await startSim();
    const db = dbPath();
    await latchHeartbeatLost(address);

    const storeOnly = await penCli(['faults', '--db', db]);
    expect(storeOnly.stdout).toMatch(/no faults recorded/);

    type FaultsReport = { onPen: { name: string; recordId: number; newlyRecorded: boolean } | null; faults: FaultRecord[] };
    const first = await penCli(['faults', '--port', address, '--db', db, '--json']);
    expect(first.code).toBe(0);
    const report = json(first) as FaultsReport;
    expect(report.onPen).toMatchObject({ name: 'heartbeat_lost', newlyRecorded: true });
    expect(report.faults).toHaveLength(1);
    expect(report.faults[0]).toMatchObject({ id: report.onPen?.recordId, source: 'pen', code: 'heartbeat_lost', pen: { board: description.board.name } });

    const text = await penCli(['faults', '--port', address, '--db', db]);
    expect(text.stdout).toMatch(/on the pen now \(tcp:\/\/127\.0\.0\.1:\d+\): FAULT heartbeat_lost: .*; already recorded as #1/);
    expect(text.stdout).toMatch(/heartbeat_lost: the host stopped sending heartbeats while outputs were active {2}pen-r1a build [0-9a-f]{8} {2}<- latched on the pen now/);
    expect(json(await penCli(['faults', '--db', db, '--json'])) as FaultRecord[]).toHaveLength(1);

    // Cleared and latched again: a new latch, a new record.
    expect((await penCli(['clear-fault', '--port', address, '--db', db])).code).toBe(0);
    await latchHeartbeatLost(address);
    expect((json(await penCli(['faults', '--port', address, '--db', db, '--json'])) as FaultsReport).onPen).toMatchObject({ newlyRecorded: true });
    expect((json(await penCli(['faults', '--db', db, '--json'])) as FaultRecord[]).map((f) => f.code)).toEqual(['heartbeat_lost', 'heartbeat_lost']);
  });
});

describe('pen audit', () => {
  it('records the old and new calibration, the pen identity (serial included), the grant and the operator for a calibration write', { tags: ['REQ-AUDIT-LOG'] }, async () => {
    const address = (await processes.startSim(['--eeprom', writeProvisionedEepromFile(join(processes.dataDir, 'sim.eeprom'))])).address;
    const db = dbPath();
    const set = await penCli(['calibration', '--port', address, '--set-sensor-zero', '505', '--set-sensor-slope', '1590', '--db', db], { PEN_OPERATOR: 'eng-7' });
    expect(set.code).toBe(0);
    const identity = (json(await penCli(['info', '--port', address, '--json'])) as { identity: { boardName: string; buildId: string } }).identity;
    const [entry] = json(await penCli(['audit', '--db', db, '--command', 'set_sensor_calibration', '--json'])) as AuditRecord[];
    expect(entry).toMatchObject({
      command: 'set_sensor_calibration', result: 'ok', operator: 'eng-7',
      pen: { board: identity.boardName, buildId: identity.buildId, serial: testSerial },
      arguments: {
        target: address,
        requested: { sensorZeroMv: 505, sensorMvPerMm: 1590 },
        old: { sensorZeroMv: 500, sensorMvPerMm: 1600, stepsPerMm: 1600, source: 'default' },
        new: { sensorZeroMv: 505, sensorMvPerMm: 1590, stepsPerMm: 1600, source: 'stored' },
        grants: ['engineer: set_sensor_calibration'],
      },
    });
    const text = await penCli(['audit', '--db', db, '--pen', identity.buildId]);
    expect(text.stdout).toMatch(/set_sensor_calibration {2}ok {2}by eng-7 {2}\(pen-r1a build [0-9a-f]{8} serial SIM-0001 on tcp:\/\/127\.0\.0\.1:\d+\)/);
  });

  it('reads the log newest first, filtered by pen, session, command and time', { tags: ['REQ-AUDIT-LOG'] }, async () => {
    const db = dbPath();
    const storeClock = new VirtualClock(Date.UTC(2026, 0, 10, 9, 0, 0));
    const store = PenStore.open(db, storeClock);
    const penA = { board: 'pen-r1a', buildId: 'aaaa0001', serial: null };
    const penB = { board: 'pen-r1a', buildId: 'bbbb0002', serial: null };
    const session = store.startSession({ target: 't', board: 'pen-r1a', firmware: '0.1.0', depthMm: 1, strokesPerSecond: 100, plannedSeconds: 10 });
    store.audit(null, 'home', { target: 'a' }, 'ok', { pen: penA, operator: 'ann' });                // 09:00
    storeClock.advanceTo(3_600_000);
    store.audit(session, 'arm', { target: 'a' }, 'ok');                                              // 10:00
    storeClock.advanceTo(7_200_000);
    store.audit(null, 'stop', { target: 'b' }, 'ok', { pen: penB, operator: 'bob' });                // 11:00
    storeClock.advanceTo(10_800_000);
    store.audit(null, 'home', { target: 'b' }, 'refused: not now', { pen: penB, operator: 'bob' }); // 12:00
    store.close();

    const ids = async (...filter: string[]): Promise<number[]> => {
      const run = await penCli(['audit', '--db', db, '--json', ...filter]);
      expect(run.stderr).toBe('');
      return (json(run) as AuditRecord[]).map((entry) => entry.id);
    };
    const [all, byPen, byBoard, bySession, byCommand, byTime, limited, badTime, badLimit] = await Promise.all([
      ids(), ids('--pen', 'bbbb0002'), ids('--pen', 'pen-r1a'), ids('--session', String(session)), ids('--command', 'home'),
      ids('--since', '2026-01-10T10:00:00Z', '--until', '2026-01-10T12:00:00Z'), ids('--limit', '2'),
      penCli(['audit', '--db', db, '--since', 'last tuesday']), penCli(['audit', '--db', db, '--limit', '0']),
    ]);
    expect(all).toEqual([4, 3, 2, 1]);
    expect(byPen).toEqual([4, 3]);
    expect(byBoard).toEqual([4, 3, 1]);
    expect(bySession).toEqual([2]);
    expect(byCommand).toEqual([4, 1]);
    expect(byTime).toEqual([3, 2]);
    expect(limited).toEqual([4, 3]);
    expect(badTime.code).toBe(2);
    expect(badTime.stderr).toMatch(/--since must be an ISO 8601 date or time/);
    expect(badLimit.code).toBe(2);
  });
});
