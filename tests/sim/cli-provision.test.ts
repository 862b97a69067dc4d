// `pen provision` and the role keys as a user meets them, each `pen` invocation its own process: provisioning a pen
// served by `pen sim` (key files 0600 in a 0700 folder, written before the pen stores them), `pen info` showing the
// serial, calibration on a grant with the key files and refused without them or with a key file open to others,
// re-provisioning with and without the engineer key, usage errors, the virtual pen's test keys, and a raw client's
// refusal that reaches the audit log when a `pen` command next connects.
import { chmodSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../hardware/generated/protocol.ts';
import type { AuditRecord } from '../../src/store/store.ts';
import { PenProcesses, type PenResult } from '../pen-process.ts';
import { RawClient } from './raw-client.ts';
import { servedVirtualPen } from './virtual-session.ts';
import { testSerial } from './provisioned.ts';

const pens = new PenProcesses();
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  pens.killAll();
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

const penCli = (args: readonly string[]): Promise<PenResult> => pens.run(args);
const json = (result: PenResult): unknown => JSON.parse(result.stdout);
const mode = (path: string): number => statSync(path).mode & 0o777;

describe('pen provision', () => {
  it('writes 0600 key files, provisions the pen, and the keys then serve calibration and re-provisioning', { tags: ['REQ-PROVISIONING'], timeout: 60_000 }, async () => {
    const { address } = await pens.startSim();
    const keysDir = join(pens.dataDir, 'keys');
    const noKeys = join(pens.dataDir, 'no-keys');
    const first = await penCli(['provision', '--port', address, '--serial', 'PN-0100', '--keys-dir', keysDir, '--json']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(json(first)).toMatchObject({ serial: 'PN-0100', previousSerial: null, keys: join(keysDir, 'PN-0100'), identity: { serial: 'PN-0100' } });
    expect(mode(join(keysDir, 'PN-0100'))).toBe(0o700);
    expect(readdirSync(join(keysDir, 'PN-0100')).sort()).toEqual(['engineer.key', 'reprocessing.key', 'technician.key']);
    for (const role of ['reprocessing', 'technician', 'engineer']) {
      const file = join(keysDir, 'PN-0100', `${role}.key`);
      expect(mode(file)).toBe(0o600);
      expect(readFileSync(file, 'utf8')).toMatch(/^[0-9a-f]{64}\n$/);
    }
    const info = await penCli(['info', '--port', address, '--json']);
    expect(json(info)).toMatchObject({ identity: { serial: 'PN-0100' }, auth: { provisioned: true, refusals: 0, wrongAnswers: 0 } });
    expect((await penCli(['info', '--port', address])).stdout).toMatch(/^pen pen-r1a on tcp:\/\/127\.0\.0\.1:\d+, serial PN-0100$/m);

    // Calibration as technician, with the key file; refused without it, and with a key file others may read.
    const calibrate = (dir: string): Promise<PenResult> =>
      penCli(['calibration', '--port', address, '--keys-dir', dir, '--set-steps-per-mm', '1601', '--set-zero-offset', '0']);
    expect((await calibrate(keysDir)).code).toBe(0);
    const without = await calibrate(noKeys);
    expect(without.code).toBe(5);
    expect(without.stderr).toMatch(/set_depth_calibration needs the technician key of pen PN-0100, and there is none \(.*no-keys\/PN-0100\/technician\.key\)/);
    chmodSync(join(keysDir, 'PN-0100', 'technician.key'), 0o644);
    const open = await calibrate(keysDir);
    expect(open.code).toBe(5);
    expect(open.stderr).toMatch(/technician\.key is open to group or others \(mode 0644\); a key file must be 0600: chmod 600 /);
    chmodSync(join(keysDir, 'PN-0100', 'technician.key'), 0o600);

    // Again: refused without the engineer key of PN-0100 (nothing written), accepted with it.
    const refused = await penCli(['provision', '--port', address, '--serial', 'PN-0101', '--keys-dir', noKeys]);
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(/the pen is provisioned as PN-0100; re-provisioning needs its engineer key, and there is none/);
    const again = await penCli(['provision', '--port', address, '--serial', 'PN-0101', '--keys-dir', keysDir]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/as PN-0101 \(it was PN-0100\)/);
    expect(readdirSync(keysDir).filter((name) => !name.startsWith('.')).sort()).toEqual(['PN-0100', 'PN-0101']);
    expect(json(await penCli(['info', '--port', address, '--json']))).toMatchObject({ identity: { serial: 'PN-0101' } });
    const audit = json(await penCli(['audit', '--command', 'provision', '--json'])) as AuditRecord[];
    expect(audit.map((entry) => [entry.result.slice(0, 7), entry.pen?.serial, entry.arguments['grants']])).toEqual([
      ['ok', 'PN-0101', ['engineer: provision']], ['refused', 'PN-0100', undefined], ['ok', 'PN-0100', undefined],
    ]);
  });

  it('refuses a serial it cannot keep keys for, and the test keys for anything but a virtual pen, before connecting', { tags: ['REQ-PROVISIONING'] }, async () => {
    const cases: [readonly string[], RegExp][] = [
      [['--serial', '../etc'], /--serial "\.\.\/etc" is not a serial this host can keep keys for/],
      [['--serial', 'PN-00000000000001'], /is not a serial this host can keep keys for: 1–16/],
      [['--serial', 'SIM-0007', '--port', 'tcp://127.0.0.1:1'], /serials starting with SIM- carry the published test keys .* add --test-keys if it is a virtual pen/],
      [['--serial', 'PN-7', '--test-keys'], /--test-keys are for virtual pens, whose serials start with SIM-/],
    ];
    for (const [args, message] of cases) {
      const result = await penCli(['provision', ...args]);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(message);
    }
  });

  it('gives the in-process virtual pen a SIM- serial with the test keys, which calibration then uses', { tags: ['REQ-PROVISIONING'], timeout: 30_000 }, async () => {
    const eeprom = join(pens.dataDir, 'pen.eeprom');
    const provisioned = await penCli(['provision', '--eeprom', eeprom, '--serial', 'SIM-0042']);
    expect(provisioned.code).toBe(0);
    expect(provisioned.stdout).toMatch(/as SIM-0042 \(it was not provisioned\)\n {2}keys: the virtual pen's published test keys/);
    const calibrated = await penCli(['calibration', '--eeprom', eeprom, '--set-sensor-zero', '502', '--set-sensor-slope', '1600', '--json']);
    expect(calibrated.code).toBe(0);
    expect(json(calibrated)).toMatchObject({ sensorZeroMv: 502, source: 'stored' });
    expect(json(await penCli(['info', '--eeprom', eeprom, '--json']))).toMatchObject({ identity: { serial: 'SIM-0042' }, auth: { wrongAnswers: 0 } });
  });
});

describe('refusals on record', () => {
  it('a raw client without the key is refused, and the refusals are in the audit log once a pen command connects', { tags: ['REQ-ROLES', 'REQ-AUDIT-LOG'], timeout: 30_000 }, async () => {
    const served = await servedVirtualPen();
    cleanups.push(() => served.close());
    const db = join(mkdtempSync(join(tmpdir(), 'pen-refusals-')), 'pen.db');
    const raw = new RawClient(served.pen);  // a pen on real time here: its replies are waited for in real time
    await raw.handshake();
    expect((await raw.request(1, 'set_depth_calibration', { stepsPerMmX100: 170000, zeroOffsetUm: 0 })).message)
      .toMatchObject({ name: 'error', fields: { code: ErrorCode.role_required } });
    // A challenge (the pen first writes the refusal it counted: eeprom_busy meanwhile), answered with a guess.
    let seq = 2;
    let challenge = (await raw.request(seq++, 'request_challenge', { role: 2, commandId: 13 }, 500)).message;
    for (let tries = 0; challenge.name === 'error' && challenge.fields.code === ErrorCode.eeprom_busy && tries < 50; tries++) {
      await served.pen.clock.sleep(10);
      challenge = (await raw.request(seq++ & 0x0f, 'request_challenge', { role: 2, commandId: 13 }, 500)).message;
    }
    expect(challenge.name).toBe('challenge');
    expect((await raw.request(seq & 0x0f, 'answer_challenge', { mac: new Uint8Array(32).fill(7) }, 500)).message)
      .toMatchObject({ name: 'error', fields: { code: ErrorCode.wrong_answer } });
    const info = await penCli(['info', '--port', served.address, '--db', db, '--json']);
    expect(info.code).toBe(0);
    expect(json(info)).toMatchObject({ auth: { refusals: 2, wrongAnswers: 1 } });
    const [entry] = json(await penCli(['audit', '--db', db, '--command', 'auth_refusals', '--json'])) as AuditRecord[];
    expect(entry).toMatchObject({
      pen: { serial: testSerial }, arguments: { when: 'at info', refusals: 2, wrongAnswers: 1, delta: { refusals: 2, wrongAnswers: 1 } },
    });
    // Nothing new since: the next command records nothing more.
    expect((await penCli(['info', '--port', served.address, '--db', db])).code).toBe(0);
    expect(json(await penCli(['audit', '--db', db, '--command', 'auth_refusals', '--json'])) as AuditRecord[]).toHaveLength(1);
  });
});
