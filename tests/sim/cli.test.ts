// The `pen` command as a user runs it: the virtual pen served on TCP in one process, `pen info` in another.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pen as description } from '../../hardware/description.ts';
import { PenProcesses, type PenResult } from '../pen-process.ts';
import { writeProvisionedEepromFile } from './provisioned.ts';
import { sterileNoseconeStore } from './registered-parts.ts';

const pen = new PenProcesses();
afterEach(() => pen.killAll());

const penCli = (args: string[]): Promise<PenResult> => pen.run(args);
const startSim = async (): Promise<string> => (await pen.startSim()).address;

describe('pen CLI', () => {
  it('prints the identity of a pen served by `pen sim --listen` as JSON', { tags: ['REQ-IDENTITY'] }, async () => {
    const address = await startSim();
    const { code, stdout } = await penCli(['info', '--port', address, '--json']);
    expect(code).toBe(0);
    const info = JSON.parse(stdout) as { identity: { boardName: string; resetCause: string }; status: { state: string } };
    expect(info.identity).toMatchObject({ boardName: description.board.name, resetCause: 'power_on' });
    expect(info.status.state).toBe('homing_required');
  });

  it('stores a calibration in the pen and reads it back in a later invocation', async () => {
    // A pen provisioned as SIM-0001: the calibration runs on a grant, with the virtual pen's test keys.
    const address = (await pen.startSim(['--eeprom', writeProvisionedEepromFile(join(pen.dataDir, 'sim.eeprom'))])).address;
    const db = join(mkdtempSync(join(tmpdir(), 'pen-cli-')), 'pen.db');
    const mixed = await penCli(['calibration', '--port', address, '--set-steps-per-mm', '1595.2', '--set-zero-offset', '0.02',
      '--set-sensor-zero', '500', '--set-sensor-slope', '1590', '--db', db]);
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toMatch(/stored separately, so that one command never moves both depth channels/);
    const set = await penCli(['calibration', '--port', address, '--set-steps-per-mm', '1595.2', '--set-zero-offset', '0.02', '--db', db]);
    expect(set.code).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 300));  // two EEPROM copies, 3.6 ms a byte
    const { code, stdout } = await penCli(['calibration', '--port', address, '--json']);
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ source: 'stored', storedCount: 1, stepsPerMm: 1595.2, zeroOffsetMm: 0.02, sensorMvPerMm: 1600 });
    const refused = await penCli(['calibration', '--port', address, '--set-steps-per-mm', '2000', '--set-zero-offset', '0', '--db', db]);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(/steps per mm 2000 steps\/mm is outside 1588.09–1612.09 steps\/mm/);
  });

  it('exits 3 with the reason when nothing answers on the port', async () => {
    const { code, stderr } = await penCli(['info', '--port', 'tcp://127.0.0.1:1']);
    expect(code).toBe(3);
    expect(stderr).toMatch(/cannot connect to tcp:\/\/127.0.0.1:1/);
  });

  it('exits 2 and says what is allowed for a malformed listen address', async () => {
    const { code, stderr } = await penCli(['sim', '--listen', 'localhost']);
    expect(code).toBe(2);
    expect(stderr).toMatch(/use tcp:\/\/HOST:PORT/);
  });

  it('exits 2 for an unknown command and shows the help', async () => {
    const { code, stderr } = await penCli(['frobnicate']);
    expect(code).toBe(2);
    expect(stderr).toMatch(/unknown command 'frobnicate'/);
  });

  it('pen run checks the fitted parts first: prints their ids and status, refuses another cartridge than --cartridge names, then a used nosecone', { tags: ['REQ-HOST-REFUSAL', 'REQ-NOSECONE-STERILE'] }, async () => {
    await sterileNoseconeStore(join(pen.dataDir, 'pen.db'));  // the in-process pen's nosecone, sterilized on record
    const wrong = await penCli(['run', '--depth', '1.0', '--speed', '100', '--duration', '1', '--cartridge', '2d-00-00-00-00-00-be-ef']);
    expect(wrong.code, wrong.stderr).toBe(5);
    expect(wrong.stderr).toMatch(/^pen: the fitted cartridge is 2d[0-9a-f]{14}, not 2d0000000000beef: fit cartridge 2d0000000000beef, or leave out --cartridge/m);
    const run = await penCli(['run', '--depth', '1.0', '--speed', '100', '--duration', '1']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^fitted parts:\n2d[0-9a-f]{14} {2}cartridge {2}ready .*\n.*\n(2d[0-9a-f]{14}) {2}nosecone {3}ready /m);
    expect(run.stdout).toMatch(/^cartridge 2d[0-9a-f]{14} cleared; treating at 1\.00 mm, 100 strokes\/s for 1 s$/m);
    // The next process fits a new cartridge (the pen's parts file), but the nosecone was used: reprocess it first.
    const again = await penCli(['run', '--depth', '1.0', '--speed', '100', '--duration', '1']);
    expect(again.code, again.stderr).toBe(5);
    expect(again.stderr).toMatch(/^pen: nosecone 2d[0-9a-f]{14}: used in session \d+ .* since its last cycle .*: reprocess it \(pen sterilize --part 2d[0-9a-f]{14} /m);
    expect(again.stderr).not.toMatch(/cartridge 2d/);
  });

  it('pen demo (npm start) runs twice on one store: sterilizes the nosecone before each session, fitting parts new to the store', async () => {
    for (const run of [1, 2]) {
      const demo = await pen.run(['demo'], { timeoutMs: 60_000 });
      expect(demo.code, `run ${run}: ${demo.stderr}`).toBe(0);
      expect(demo.stdout).toMatch(/nosecone 2d[0-9a-f]{14} is not ready \(no sterilization cycle on record: sterilize it before use\): sterilizing it first/);
      expect(demo.stdout).toMatch(/the technician fits a new cartridge, 2d[0-9a-f]{14}, and reprocesses the nosecone:\n {3}sterilized nosecone 2d[0-9a-f]{14} on the virtual pen: /);
      expect(demo.stdout).toMatch(/^7\. completed: 2 s of needle time done/m);
      if (run === 2) expect(demo.stdout).toMatch(/the technician fits a new nosecone, 2d[0-9a-f]{14}/);
    }
  });
});
