// The `pen` command names the pen it acts on and keeps one owner per pen: while `pen run` holds a pen, `pen status`
// attaches to it read-only, other commands exit 7 naming the holder, and `pen stop` is relayed through it; a status
// socket left by a process killed with -9 is removed; the in-process virtual pen keeps its EEPROM in a file.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pen as description } from '../../hardware/description.ts';
import { writeProvisionedEepromFile } from './provisioned.ts';
import { sterileNoseconeStore } from './registered-parts.ts';
import { PenProcesses, type PenResult, type RunningPen } from '../pen-process.ts';

/** Each test's processes share a data directory of their own (store, EEPROM, status sockets), and no PEN_PORT from the caller. */
const pens = new PenProcesses();
afterEach(() => pens.killAll());

/** Runs `pen ARGS` to its end (killed after 20 s): exit code and output. */
const penCli = (args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<PenResult> => pens.run(args, { env });

/**
 * `pen sim` on a free port with an EEPROM file in the data directory, and the store there holding its nosecone
 * sterilized (a `pen run` checks the parts first); resolves with its tcp:// address.
 */
async function startSim(extra: readonly string[] = []): Promise<string> {
  await sterileNoseconeStore(join(pens.dataDir, 'pen.db'));
  const sim = pens.start(['sim', '--listen', 'tcp://127.0.0.1:0', '--eeprom', join(pens.dataDir, 'sim.eeprom'), ...extra]);
  return sim.waitFor(/listening on (tcp:\/\/\S+)/, 15_000);
}

/** `pen run` on the pen at address, resolved once it treats. */
async function startRun(address: string, durationS: number): Promise<RunningPen> {
  const run = pens.start(['run', '--port', address, '--depth', '1.0', '--speed', '100', '--duration', String(durationS)]);
  await run.waitFor(/session: treating/, 15_000);
  return run;
}

/** The status sockets in the test's data directory. */
const sockets = (): string[] => {
  const folder = join(pens.dataDir, 'pen', 'owners');
  return existsSync(folder) ? readdirSync(folder).filter((name) => name.endsWith('.sock')) : [];
};

describe('one owner of a pen', () => {
  it('while pen run holds the pen: status attaches read-only naming its pid, home exits 7 naming it, and the run completes undisturbed', { tags: ['REQ-ONE-HOST'] }, async () => {
    const address = await startSim();
    const run = await startRun(address, 3);
    const [status, statusJson, home] = await Promise.all([
      penCli(['status', '--port', address]),
      penCli(['status', '--port', address, '--json']),
      penCli(['home', '--port', address]),
    ]);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`attached read-only to pid ${run.pid}'s session (pen run --port ${address}`);
    expect(status.stdout).toMatch(/state running, no fault/);
    expect(status.stdout).toMatch(/home switch open/);
    const json = JSON.parse(statusJson.stdout) as { target: string; heldBy: { pid: number; command: string }; state: string };
    expect(json).toMatchObject({ target: address, heldBy: { pid: run.pid }, state: 'running' });
    expect(home.code).toBe(7);
    expect(home.stderr).toMatch(new RegExp(`busy: ${address} is held by pid ${run.pid} \\(pen run --port`));
    expect(await run.exitedWithin()).toBe(0);
    expect(run.output()).toMatch(/ended: completed \(3 s of needle time done\); 3\.0 s of needle time/);
    expect(run.output()).not.toMatch(/^FAULT \(|link lost|no answer/m);
    expect(sockets()).toEqual([]);  // released at the end of the run
  });

  it('pen stop during a run is relayed through the run: the pen stops at once and the run ends stopped (exit 130)', { tags: ['REQ-ONE-HOST', 'REQ-STOP'] }, async () => {
    const address = await startSim();
    const run = await startRun(address, 30);
    const stop = await penCli(['stop', '--port', address]);
    expect(stop.code).toBe(0);
    expect(stop.stdout).toMatch(new RegExp(`^stopped ${address} through pid ${run.pid}'s session \\(pen run .*\\): state idle, needle off$`, 'm'));
    expect(await run.exitedWithin()).toBe(130);
    expect(run.output()).toMatch(/STOP from pid \d+ \(pen stop --port .*\): stopping the pen/);
    expect(run.output()).toMatch(/ended: stopped \(STOP from pid/);
    const after = await penCli(['status', '--port', address, '--json']);
    expect(after.code).toBe(0);
    expect(JSON.parse(after.stdout)).toMatchObject({ target: address, state: 'idle', needleOn: false, fault: 'none' });
    // The pen stop that asked records the relayed STOP too (the run's session records the stop it sent).
    const audit = await penCli(['audit', '--command', 'stop', '--json']);
    const rows = JSON.parse(audit.stdout) as { arguments: { relayedThrough?: { pid: number } }; result: string }[];
    expect(rows.filter((row) => row.arguments.relayedThrough?.pid === run.pid && row.result === 'ok')).toHaveLength(1);
  });

  it('a status socket left by a run killed with -9 is found stale and removed, and the next command works', { tags: ['REQ-ONE-HOST'] }, async () => {
    const address = await startSim();
    const run = await startRun(address, 30);
    expect(sockets()).toHaveLength(1);
    run.child.kill('SIGKILL');
    await run.exitedWithin();
    expect(sockets()).toHaveLength(1);  // nobody removed it: the owner died
    const info = await penCli(['info', '--port', address, '--json']);
    expect(info.code).toBe(0);
    expect(JSON.parse(info.stdout)).toMatchObject({ port: address, status: { state: 'fault', fault: 'heartbeat_lost', needleOn: false } });
    expect(sockets()).toEqual([]);
  });
});

describe('the pen a command acts on', () => {
  it('the in-process virtual pen keeps its EEPROM in the --eeprom file: a calibration stored in one invocation is in force in the next', async () => {
    const dir = pens.dataDir;
    const eeprom = writeProvisionedEepromFile(join(dir, 'pen.eeprom'));  // provisioned as SIM-0001: calibration needs a grant
    const set = await penCli(['calibration', '--eeprom', eeprom, '--set-steps-per-mm', '1595.2', '--set-zero-offset', '0.02']);
    expect(set.code).toBe(0);
    expect(set.stdout).toContain(`calibration of in-process virtual pen (EEPROM ${eeprom}) (stored, 1 stored so far): 1595.20 steps/mm`);
    const shown = await penCli(['calibration', '--eeprom', eeprom, '--json']);
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout)).toEqual({
      target: `in-process virtual pen (EEPROM ${eeprom})`, source: 'stored', storedCount: 1, stepsPerMm: 1595.2, zeroOffsetMm: 0.02,
      sensorZeroMv: 500, sensorMvPerMm: 1600,
    });
    // Without --eeprom: the file in the data directory, blank at first.
    const fresh = await penCli(['calibration', '--json']);
    expect(JSON.parse(fresh.stdout)).toMatchObject({ target: `in-process virtual pen (EEPROM ${join(dir, 'pen', 'virtual-pen.eeprom')})`, source: 'default' });
    const stop = await penCli(['stop', '--eeprom', eeprom]);
    expect(stop.stdout).toMatch(new RegExp(`^stopped in-process virtual pen \\(EEPROM ${eeprom}\\): state homing_required`, 'm'));
  });

  it('pen sim keeps its EEPROM in the file as the firmware writes it: a calibration survives kill -9 and a restart', async () => {
    const dir = pens.dataDir;
    const first = pens.start(['sim', '--listen', 'tcp://127.0.0.1:0', '--eeprom', writeProvisionedEepromFile(join(dir, 'sim.eeprom'))]);
    const address = await first.waitFor(/listening on (tcp:\/\/\S+)/, 15_000);
    const set = await penCli(['calibration', '--port', address, '--set-steps-per-mm', '1605.5', '--set-zero-offset', '-0.01']);
    expect(set.code).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 400));  // two copies, 3.6 ms a byte: written well within this
    first.child.kill('SIGKILL');
    await first.exitedWithin();
    const second = await startSim(['--seed', '7', '--offset-mm', '0.02', '--scale-error', '0.005']);
    const shown = await penCli(['calibration', '--port', second, '--json']);
    expect(JSON.parse(shown.stdout)).toMatchObject({ target: second, source: 'stored', storedCount: 1, stepsPerMm: 1605.5, zeroOffsetMm: -0.01 });
  });

  it('PEN_PORT is the default for --port, and an explicit --port wins', async () => {
    const address = await startSim();
    const fromEnvironment = await penCli(['info', '--json'], { PEN_PORT: address });
    expect(fromEnvironment.code).toBe(0);
    expect(JSON.parse(fromEnvironment.stdout)).toMatchObject({ port: address, identity: { boardName: description.board.name } });
    const explicit = await penCli(['status', '--port', address, '--json'], { PEN_PORT: 'tcp://127.0.0.1:1' });
    expect(explicit.code).toBe(0);
    expect(JSON.parse(explicit.stdout)).toMatchObject({ target: address });
    const nothingThere = await penCli(['home'], { PEN_PORT: 'tcp://127.0.0.1:1' });
    expect(nothingThere.code).toBe(3);
    expect(nothingThere.stderr).toMatch(/tcp:\/\/127\.0\.0\.1:1/);
  });

  it('pen sim refuses mechanical errors outside the tolerances in pen.json, naming the allowed range (exit 2)', async () => {
    const offset = await penCli(['sim', '--listen', 'tcp://127.0.0.1:0', '--offset-mm', '0.05']);
    expect(offset.code).toBe(2);
    expect(offset.stderr).toMatch(/--offset-mm 0\.05 is outside the pen's tolerance: allowed −0\.03–0\.03 mm/);
    const scale = await penCli(['sim', '--listen', 'tcp://127.0.0.1:0', '--scale-error', '-0.01']);
    expect(scale.code).toBe(2);
    expect(scale.stderr).toMatch(/--scale-error -0\.01 is outside the pen's tolerance: allowed −0\.0075–0\.0075/);
    const seed = await penCli(['sim', '--listen', 'tcp://127.0.0.1:0', '--seed', '1.5']);
    expect(seed.code).toBe(2);
  });

  it('pen status --watch time-stamps every line, shows the home switch and checks --interval', async () => {
    const refused = await penCli(['status', '--watch', '--interval', '10']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--interval 10 ms is outside 50–60000 ms/);
    const watch = pens.start(['status', '--watch', '--interval', '100']);
    await watch.waitFor(/(^\d\d:\d\d:\d\d\.\d{3} {2}state .*\n.*\n.*home switch (?:pressed|open)\n){3}/m, 15_000);
    watch.child.kill('SIGINT');
    expect(await watch.exitedWithin()).toBe(0);
    const stamps = [...watch.output().matchAll(/^(\d\d):(\d\d):(\d\d)\.(\d{3}) {2}state/gm)]
      .map(([, h, m, s, ms]) => ((Number(h) * 60 + Number(m)) * 60 + Number(s)) * 1000 + Number(ms));
    for (let i = 1; i < stamps.length; i++) expect((stamps[i] ?? 0) - (stamps[i - 1] ?? 0)).toBeGreaterThanOrEqual(100);
  });
});
