// The host as a process that can be interrupted, killed or stalled: the pen ends safe every time.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RealClock } from '../../hardware/clock.ts';
import { PenDevice, type Telemetry } from '../../hal/device.ts';
import { TcpTransport } from '../../hal/link/transport.ts';
import { PenStore } from '../../src/store/store.ts';
import { TreatmentSession } from '../../src/control/session.ts';
import { PenProcesses, type RunningPen } from '../pen-process.ts';
import { servedVirtualPen } from './virtual-session.ts';
import { recordSterileNosecone, sterileNoseconeStore } from './registered-parts.ts';

const processes = new PenProcesses();
const cleanups: (() => Promise<void>)[] = [];
const dbPath = (): string => join(mkdtempSync(join(tmpdir(), 'pen-host-')), 'pen.db');
/** A new store whose records have the virtual pen's nosecone sterilized, so that `pen run` may use it. */
const sterileDbPath = async (): Promise<string> => {
  const db = dbPath();
  await sterileNoseconeStore(db);
  return db;
};
const clock = new RealClock();

afterEach(async () => {
  processes.killAll();
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

const spawnPen = (args: string[]): RunningPen => processes.start(args);

async function statusOver(port: string): Promise<Telemetry> {
  const { stdout } = await processes.run(['status', '--port', port, '--json']);
  return JSON.parse(stdout) as Telemetry;
}

describe('the host process', () => {
  it('Ctrl-C mid-run: the pen stops (motor off, needle home) before pen run exits 130', { tags: ['REQ-STOP'] }, async () => {
    const served = await servedVirtualPen();
    cleanups.push(() => served.close());
    const { pen, address: port } = served;
    const run = spawnPen(['run', '--port', port, '--depth', '1.5', '--speed', '100', '--db', await sterileDbPath()]);
    await run.waitFor(/session: treating/);
    await clock.sleep(500);
    expect(pen.plant.motorDrive()).toBeGreaterThan(0);
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(130);
    expect(pen.plant.motorDrive()).toBe(0);
    await clock.sleep(400);
    expect(pen.plant.carriageMm).toBeLessThanOrEqual(1 / 1600);
    const status = await statusOver(port);
    expect(status).toMatchObject({ state: 'idle', fault: 'none', needleOn: false });
  });

  it('killed -9 mid-run, with the pen in its own process: the pen goes safe on the heartbeat timeout', { tags: ['REQ-HEARTBEAT'] }, async () => {
    const sim = spawnPen(['sim', '--listen', 'tcp://127.0.0.1:0']);
    const port = await sim.waitFor(/listening on (tcp:\/\/\S+)/);
    const run = spawnPen(['run', '--port', port, '--depth', '1.5', '--speed', '100', '--db', await sterileDbPath()]);
    await run.waitFor(/session: treating/);
    await clock.sleep(300);
    run.child.kill('SIGKILL');
    await run.exited;
    await clock.sleep(600);
    const status = await statusOver(port);
    expect(status).toMatchObject({ state: 'fault', fault: 'heartbeat_lost', needleOn: false });
    expect(status.depthMm).toBeLessThanOrEqual(0.001);
  });

  it('stalled for 600 ms while idle: the pen\'s frames waiting behind the stall keep the link, and the next command is answered', async () => {
    const sim = spawnPen(['sim', '--listen', 'tcp://127.0.0.1:0']);
    const port = Number((await sim.waitFor(/listening on tcp:\/\/127\.0\.0\.1:(\d+)/)));
    const device = await PenDevice.connect(await TcpTransport.open('127.0.0.1', port), { clock });
    cleanups.push(async () => { await device.close(); });
    const lost: Error[] = [];
    device.onLinkLost((error) => lost.push(error));
    await clock.sleep(300);
    const blockUntil = performance.now() + 600;
    while (performance.now() < blockUntil) { /* the host's event loop is blocked, past the 250 ms link-loss timeout */ }
    await clock.sleep(100);
    expect(lost).toEqual([]);
    expect((await device.status()).state).toBe('homing_required');
  });

  it('stalled for 300 ms while running: the pen goes safe on its own, and the host reports why', { tags: ['REQ-HOST-SUPERVISION', 'REQ-HEARTBEAT'] }, async () => {
    const sim = spawnPen(['sim', '--listen', 'tcp://127.0.0.1:0']);
    const port = Number((await sim.waitFor(/listening on tcp:\/\/127\.0\.0\.1:(\d+)/)));
    const device = await PenDevice.connect(await TcpTransport.open('127.0.0.1', port), { clock, heartbeat: false });
    const store = PenStore.open(':memory:', clock);
    const session = new TreatmentSession(device, { clock, store, target: `tcp://127.0.0.1:${port}` });
    cleanups.push(async () => { session.close(); store.close(); await device.close(); });
    await session.selfTest();
    await session.home();
    await recordSterileNosecone(device, store);
    await session.prepare();
    const done = session.treat({ depthMm: 1.0, strokesPerSecond: 100, durationS: 10 });
    await device.waitFor((t) => t.needleOn, 3000, 'the needle running');  // after the pen has burnt the parts' marks
    await clock.sleep(500);
    const blockUntil = performance.now() + 300;
    while (performance.now() < blockUntil) { /* the host's event loop is blocked */ }
    const summary = await done;
    expect(summary.outcome).toBe('faulted');
    expect(summary.reason).toMatch(/the host stalled/);
    expect(summary.faults).toEqual(expect.arrayContaining(['host:host_stall', 'pen:heartbeat_lost']));
    const status = await device.status();
    expect(status).toMatchObject({ state: 'fault', fault: 'heartbeat_lost', needleOn: false });
  });
});
