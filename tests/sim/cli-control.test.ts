// `pen sim --control`: the control channel served beside the pen, found from `--json` output with every port chosen by
// the system; a setting sent to it reaches the firmware (as `pen status` reads it); and the flag's usage errors.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { healthyPlant } from '../../hardware/sim/control.ts';
import { SimControl } from '../../hal/sim-control.ts';
import { PenProcesses } from '../pen-process.ts';

const pen = new PenProcesses();
afterEach(() => pen.killAll());

/** `pen sim --json`'s lines that say where an endpoint is served. */
interface ServedLine {
  readonly event: string;
  readonly simTimeMs: number;
  readonly endpoint: string;
  readonly address: string;
}

describe('pen sim --control', () => {
  it('says in JSON where each endpoint is bound; a value set over the channel reads back and reaches the firmware', async () => {
    const sim = pen.start(['sim', '--listen', 'tcp://127.0.0.1:0', '--gauge', 'tcp://127.0.0.1:0', '--control', 'tcp://127.0.0.1:0', '--json',
      '--eeprom', join(pen.dataDir, 'sim.eeprom')]);
    await sim.waitFor(/"endpoint":"control"/, 15_000);
    const lines = sim.output().trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    const served = lines.filter((line): line is Record<string, unknown> & ServedLine => 'endpoint' in line);
    expect(served.map((line) => line.endpoint)).toEqual(['pen', 'gauge', 'control']);
    for (const line of served) {
      expect(line.address).toMatch(/^tcp:\/\/127\.0\.0\.1:[1-9]\d*$/);
      expect(line.event).toContain(`listening on ${line.address} (`);
    }
    const address = (endpoint: string): string => served.find((line) => line.endpoint === endpoint)?.address ?? '';

    const control = await SimControl.open(address('control'));
    try {
      expect((await control.plant()).plant).toEqual(healthyPlant);
      const set = await control.set('temperatureC', 38);
      expect(set.plant.temperatureC).toBe(38);
      await control.set('supplyVolts', 11.2);
      const reading = await control.plant();
      expect(reading.plant).toMatchObject({ temperatureC: 38, supplyVolts: 11.2 });
      expect(reading.simTimeMs).toBeGreaterThan(0);
      await expect(control.set('supplyVolts', 30)).rejects.toThrow(/^supplyVolts takes a supply of 0–20 V/);

      // The firmware measures what the channel set: the NTC and the supply divider, through the pen's own ADC.
      const status = await pen.run(['status', '--port', address('pen'), '--json']);
      expect(status.code, status.stderr).toBe(0);
      const telemetry = JSON.parse(status.stdout) as { temperatureC: number; supplyVolts: number };
      expect(telemetry.temperatureC).toBeCloseTo(38, 0);
      expect(telemetry.supplyVolts).toBeCloseTo(11.2, 1);
      expect(sim.output()).toMatch(/"event":"control: \{\\"set\\":\\"temperatureC\\",\\"value\\":38,\\"id\\":\d+\} \(from 127\.0\.0\.1:\d+\)"/);
    } finally {
      await control.close();
    }
  });

  it('says what is wrong with the flag', async () => {
    const badAddress = await pen.run(['sim', '--listen', 'tcp://127.0.0.1:0', '--control', 'localhost', '--eeprom', join(pen.dataDir, 'a.eeprom')]);
    expect(badAddress.code).toBe(2);
    expect(badAddress.stderr).toMatch(/--control: "localhost" is not a listen address: use tcp:\/\/HOST:PORT/);
    const badPort = await pen.run(['sim', '--listen', 'tcp://127.0.0.1:0', '--control', 'tcp://127.0.0.1:70000', '--eeprom', join(pen.dataDir, 'b.eeprom')]);
    expect(badPort.code).toBe(2);
    expect(badPort.stderr).toMatch(/--control: .* \(port 0–65535\)/);
  });
});
