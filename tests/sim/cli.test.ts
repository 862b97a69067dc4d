// The `pen` command as a user runs it: the virtual pen served on TCP in one process, `pen info` in another.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pen as description } from '../../hardware/description.ts';
import { PenProcesses, type PenResult } from '../pen-process.ts';
import { writeProvisionedEepromFile } from './provisioned.ts';

const pen = new PenProcesses();
afterEach(() => pen.killAll());

const penCli = (args: string[]): Promise<PenResult> => pen.run(args);
const startSim = async (): Promise<string> => (await pen.startSim()).address;

describe('pen CLI', () => {
  it('prints the identity of a pen served by `pen sim --listen` as JSON', async () => {
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
});
