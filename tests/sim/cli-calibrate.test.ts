// `pen calibrate` as a technician runs it: readings typed from a pipe into an in-process pen, a gauge past its own due
// date refused, and Ctrl-C in the middle of a calibration of a `pen sim` pen read by its TCP gauge, which leaves the old
// calibration in force; the calibration run again to its end is accepted, and both are in the history.
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { pen as description } from '../../hardware/description.ts';
import { PenProcesses } from '../pen-process.ts';
import { writeProvisionedEepromFile } from './provisioned.ts';

const pen = new PenProcesses();
afterEach(() => pen.killAll());

const who = ['--technician', 'T. Tester', '--gauge-id', 'DG-0042', '--gauge-due', '2099-12-31'];

interface HistoryEntry { readonly verdict: string; readonly kind: string; readonly reason: string | null; readonly gaugeId: string; readonly readings: unknown[] }

/** The readings of a perfect pen, in the order the procedure asks: every point from below, the backlash points from above too, then the verification. */
function perfectReadings(): string {
  const { pointsMm, backlashPointsMm, verifyPointsMm, readingsPerPoint } = description.calibration;
  const points = [...pointsMm.flatMap((p) => (backlashPointsMm.includes(p) ? [p, p] : [p])), ...verifyPointsMm];
  return `${points.flatMap((p) => Array<string>(readingsPerPoint).fill(p.toFixed(3))).join('\n')}\n`;
}

describe('pen calibrate', () => {
  it('takes readings typed from a pipe, asks again after a typo, and records the accepted calibration', { tags: ['REQ-CALIBRATION-PROCEDURE'] }, async () => {
    const eeprom = writeProvisionedEepromFile(join(pen.dataDir, 'pen.eeprom'));
    const input = join(pen.dataDir, 'readings.txt');
    writeFileSync(input, `0.5 0\n${perfectReadings()}`);  // a typo first: asked again
    const certificate = join(pen.dataDir, 'certificate.html');
    const running = pen.start(['calibrate', '--eeprom', eeprom, '--certificate', certificate, ...who]);
    running.child.stdin?.end(readFileSync(input));
    const result = await running.finished;
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stderr).toMatch(/"0\.5 0" is not a reading: type the gauge's value in mm, e\.g\. 0\.500; type it again/);
    expect(result.stdout).toMatch(/^ACCEPTED$/m);
    expect(result.stdout).toMatch(/verify 1\.25 mm: error 0\.0 µm before, 0\.0 µm after/);
    const history = await pen.run(['calibration', 'history', '--json']);
    const records = JSON.parse(history.stdout) as HistoryEntry[];
    expect(records).toMatchObject([{ kind: 'depth', verdict: 'accepted', reason: null, gaugeId: 'DG-0042' }]);
    expect(records[0]?.readings).toHaveLength(12);
    expect(readFileSync(certificate, 'utf8')).toMatch(/<html/i);
  });

  it('refuses a gauge past its own calibration due date before touching the pen', { tags: ['REQ-CALIBRATION-PROCEDURE'] }, async () => {
    const { code, stderr } = await pen.run(['calibrate', '--port', 'tcp://127.0.0.1:1', '--technician', 'T', '--gauge-id', 'DG-1', '--gauge-due', '2020-01-31']);
    expect(code).toBe(2);
    expect(stderr).toMatch(/gauge DG-1 was due for its own calibration on 2020-01-31: a gauge past its due date cannot calibrate a pen/);
  });

  it('keeps the old calibration on Ctrl-C (exit 130), then calibrates a skewed pen through its TCP gauge', { tags: ['REQ-CALIBRATION-PROCEDURE'] }, async () => {
    const eeprom = writeProvisionedEepromFile(join(pen.dataDir, 'sim.eeprom'));
    const sim = pen.start(['sim', '--listen', 'tcp://127.0.0.1:0', '--gauge', 'tcp://127.0.0.1:0', '--eeprom', eeprom,
      '--offset-mm', '0.02', '--scale-error', '-0.005', '--backlash-mm', '0.01']);
    const port = `tcp://127.0.0.1:${await sim.waitFor(/virtual pen listening on tcp:\/\/127\.0\.0\.1:(\d+)/, 15_000)}`;
    const gauge = `tcp://127.0.0.1:${await sim.waitFor(/virtual gauge listening on tcp:\/\/127\.0\.0\.1:(\d+)/, 15_000)}`;

    const interrupted = pen.start(['calibrate', '--port', port, '--gauge', gauge, ...who]);
    await interrupted.waitFor(/parking at 1\.25 mm/, 20_000);
    interrupted.child.kill('SIGINT');
    expect(await interrupted.exitedWithin(10_000)).toBe(130);
    expect(interrupted.output()).toMatch(/Ctrl-C: calibration abandoned; the old calibration is in force/);
    const kept = JSON.parse((await pen.run(['calibration', '--port', port, '--json'])).stdout) as { source: string; storedCount: number };
    expect(kept).toMatchObject({ source: 'default', storedCount: 0 });

    const calibrated = await pen.run(['calibrate', '--port', port, '--gauge', gauge, '--json', ...who], { timeoutMs: 40_000 });
    expect(calibrated.code, calibrated.stdout + calibrated.stderr).toBe(0);
    const after = JSON.parse((await pen.run(['calibration', '--port', port, '--json'])).stdout) as { source: string; stepsPerMm: number; zeroOffsetMm: number };
    expect(after.source).toBe('stored');
    expect(after.zeroOffsetMm).toBeCloseTo(0.02, 2);
    expect(Math.abs(after.stepsPerMm - 1600 / 0.995)).toBeLessThan(2);  // 2 steps/mm: 2.5 µm at 2 mm, the gauge's noise
    const history = JSON.parse((await pen.run(['calibration', 'history', '--json'])).stdout) as HistoryEntry[];
    expect(history.map((r) => r.verdict)).toEqual(['aborted', 'accepted']);
    expect(history[0]?.reason).toMatch(/^interrupted at 1\.25 mm \(from below\); nothing new stored/);
  });
});
