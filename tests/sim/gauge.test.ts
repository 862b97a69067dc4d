// `pen sim --gauge`: the virtual pen serves its dial gauge next to its UART, read through the host's gauge client; the
// mechanical error options are checked like the tolerances are.
import { afterEach, describe, expect, it } from 'vitest';
import { openGauge } from '../../hal/gauge.ts';
import { PenProcesses } from '../pen-process.ts';

const pens = new PenProcesses();
afterEach(() => pens.killAll());

describe('pen sim --gauge', () => {
  it('serves the gauge on its own address, says where, and it reads the needle at home', async () => {
    const sim = pens.start(['sim', '--listen', 'tcp://127.0.0.1:0', '--gauge', 'tcp://127.0.0.1:0', '--backlash-mm', '0.02', '--screw-error-mm', '0.005']);
    const address = await sim.waitFor(/virtual gauge listening on (tcp:\/\/\S+) \(resolution 0\.001 mm, noise 0\.001 mm, range ±12\.5 mm/, 15_000);
    const gauge = await openGauge(address);
    try {
      // Power-on: the carriage at 0, so the needle at the lead error's peak, within the gauge's noise.
      expect(Math.abs((await gauge.read()) - 0.005)).toBeLessThan(0.006);
    } finally {
      await gauge.close();
    }
  });

  it('refuses mechanical errors and gauge addresses it cannot use, saying what is allowed (exit 2)', async () => {
    const backlash = await pens.run(['sim', '--listen', 'tcp://127.0.0.1:0', '--backlash-mm', '-0.01']);
    expect(backlash.code).toBe(2);
    expect(backlash.stderr).toMatch(/--backlash-mm -0\.01 is outside 0–0\.5 mm: give a size in mm, e\.g\. --backlash-mm 0\.02/);
    const screw = await pens.run(['sim', '--listen', 'tcp://127.0.0.1:0', '--screw-error-mm', 'much']);
    expect(screw.code).toBe(2);
    expect(screw.stderr).toMatch(/--screw-error-mm must be a plain decimal number/);
    const gauge = await pens.run(['sim', '--listen', 'tcp://127.0.0.1:0', '--gauge', '/dev/ttyUSB0']);
    expect(gauge.code).toBe(2);
    expect(gauge.stderr).toMatch(/--gauge: "\/dev\/ttyUSB0" is not a listen address: use tcp:\/\/HOST:PORT/);
  });
});
