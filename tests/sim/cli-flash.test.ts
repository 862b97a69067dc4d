// `pen flash` as an engineer runs it, through the real avrdude: a second build (another build id) goes into a blank
// `pen sim --blank --auto-reset` (where `pen info` first says there is no application) and `pen info` then reports it;
// a running `pen sim` without --auto-reset gives the no-bootloader answer in bounded time and keeps running; an image
// that is not for this board is refused before anything is opened; a bootloader reporting another chip, or reading
// back other bytes, is named; a missing avrdude is named; Ctrl-C ends avrdude.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { defaultFirmwarePath } from '../../hardware/sim/virtual-pen.ts';
import type { FlashReport } from '../../src/cli/flash.ts';
import { intelHex } from '../intel-hex-writer.ts';
import { PenProcesses, projectRoot } from '../pen-process.ts';

const pen = new PenProcesses();
const servers: Server[] = [];
afterEach(() => {
  pen.killAll();
  for (const server of servers.splice(0)) server.close();
});

const work = mkdtempSync(join(tmpdir(), 'cli-flash-'));
const alternateBuildId = '0badf00d';
const alternateHex = join(work, 'alt', 'pen.hex');
const mainBuildId = (): string => readFileSync(defaultFirmwarePath.replace(/\.hex$/, '.build-id'), 'utf8').trim();
const boundMs = 20_000;

beforeAll(() => {
  // The same sources built again with another build id, into a directory of its own (about a second).
  execFileSync('make', ['-s', '-C', join(projectRoot, 'firmware'), `BUILD=${join(work, 'alt')}`, `BUILD_ID=0x${alternateBuildId}`, alternateHex]);
}, 60_000);

describe('pen flash into the virtual pen', () => {
  it('puts a new build into a board that has only its bootloader, after which pen info reports it', { tags: ['REQ-FIRMWARE-FLASH'] }, async () => {
    const sim = await pen.startSim(['--blank', '--auto-reset']);
    const blank = await pen.run(['info', '--port', sim.address], { timeoutMs: boundMs });
    expect(blank.code).toBe(3);
    expect(blank.ms).toBeLessThan(8000);
    expect(blank.stderr).toMatch(/waiting up to 2 s for the pen firmware/);
    expect(blank.stderr).toMatch(/A board with no application \(only its bootloader, as a new board comes\) is silent like this: flash the pen firmware with `pen flash --port tcp:/);

    const flashed = await pen.run(['flash', alternateHex, '--port', sim.address, '--json'], { timeoutMs: boundMs });
    expect(flashed.code, flashed.stderr).toBe(0);
    const report = JSON.parse(flashed.stdout) as FlashReport;
    expect(report).toMatchObject({ ok: true, failure: null, image: { buildId: alternateBuildId }, identity: { buildId: alternateBuildId } });
    expect(report.avrdude?.writeSeconds).toBeGreaterThan(0);
    expect(report.avrdude?.verifySeconds).toBeGreaterThan(0);
    expect(flashed.stderr).toMatch(/writing 100%[\s\S]*verifying 100%/);

    const info = await pen.run(['info', '--port', sim.address, '--json'], { timeoutMs: boundMs });
    expect(info.code, info.stderr).toBe(0);
    // Connecting pulsed the reset (--auto-reset): through the bootloader, and still an external reset with no fault.
    expect(JSON.parse(info.stdout)).toMatchObject({ identity: { buildId: alternateBuildId, resetCause: 'external' }, status: { fault: 'none' } });
  });

  it('against a running pen sim without --auto-reset, says no bootloader answered (the firmware did), in bounded time, and the pen runs on', { tags: ['REQ-FIRMWARE-FLASH'] }, async () => {
    const sim = await pen.startSim();
    const result = await pen.run(['flash', '--port', sim.address], { timeoutMs: boundMs });
    expect(result.code).toBe(3);
    expect(result.ms).toBeLessThan(6000);
    expect(result.stderr).toMatch(/no answer from a bootloader on tcp:\/\/127\.0\.0\.1:\d+ after .*: the pen firmware answered instead.*start it with `pen sim --auto-reset`/);
    const info = await pen.run(['info', '--port', sim.address, '--json'], { timeoutMs: boundMs });
    expect(info.code, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout)).toMatchObject({ identity: { buildId: mainBuildId(), resetCause: 'power_on' } });
  });

  it('refuses an image that is not pen firmware for this board before opening the port (exit 2, naming the problem)', { tags: ['REQ-FIRMWARE-FLASH'] }, async () => {
    const notOurs = join(work, 'not-ours.hex');
    writeFileSync(notOurs, intelHex([[0, [0x0c, 0x94, 0x34, 0x00, 0xff, 0xcf]]]));
    const cases = [
      ['README.md', /is not an Intel HEX file/],
      ['firmware/build/optiboot.hex', /in the boot section where the bootloader lives: an application may use 0x0000–0x7DFF/],
      [notOurs, /is not pen firmware: it carries no pen firmware identity record/],
    ] as const;
    await Promise.all(cases.map(async ([hex, message]) => {
      const result = await pen.run(['flash', hex, '--port', 'tcp://127.0.0.1:1'], { timeoutMs: boundMs });
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stdout).not.toMatch(/flashing/);
    }));
  });
});

/** STK500 v1 command lengths (command byte to CRC_EOP), as Optiboot reads them; PROG_PAGE carries its data length. */
function stkCommandLength(bytes: Buffer): number | null {
  const lengths: Record<number, number> = { 0x41: 3, 0x42: 22, 0x45: 7, 0x55: 4, 0x56: 6, 0x74: 5 };
  if (bytes[0] === 0x64) return bytes.length < 3 ? null : 5 + (((bytes[1] ?? 0) << 8) | (bytes[2] ?? 0));
  return lengths[bytes[0] ?? 0] ?? 2;
}

/** A bootloader that speaks STK500 well enough for avrdude, with a given chip signature, reading back 0x55 everywhere. */
async function fakeBootloader(signature: readonly number[]): Promise<string> {
  const server = createServer((socket: Socket) => {
    let pending = Buffer.alloc(0);
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (let length = stkCommandLength(pending); length !== null && pending.length >= length; length = stkCommandLength(pending)) {
        const command = pending[0];
        const answer = command === 0x75 ? signature
          : command === 0x74 ? new Array<number>(((pending[1] ?? 0) << 8) | (pending[2] ?? 0)).fill(0x55)
          : command === 0x41 ? [pending[1] === 0x81 || pending[1] === 0x82 ? 4 : 3]  // version 4.4, as Optiboot answers
          : command === 0x56 ? [0] : [];
        socket.write(Uint8Array.from([0x14, ...answer, 0x10]));
        pending = pending.subarray(length);
        if (pending.length === 0) break;
      }
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const bound = server.address();
  return `tcp://127.0.0.1:${typeof bound === 'object' && bound !== null ? bound.port : 0}`;
}

describe('pen flash when avrdude meets trouble', () => {
  it('names a chip that is not an ATmega328P, and a flash that reads back other than written', { tags: ['REQ-FIRMWARE-FLASH'] }, async () => {
    const [wrongChip, badFlash] = await Promise.all([fakeBootloader([0x1e, 0x94, 0x06]), fakeBootloader([0x1e, 0x95, 0x0f])]);
    const [signature, verify] = await Promise.all([
      pen.run(['flash', '--port', wrongChip, '--json'], { timeoutMs: boundMs }),
      pen.run(['flash', '--port', badFlash], { timeoutMs: boundMs }),
    ]);
    expect(signature.code).toBe(1);
    expect(signature.stderr).toMatch(/answered with signature 0x1e9406, not the ATmega328P's 0x1e950f/);
    expect(JSON.parse(signature.stdout)).toMatchObject({ ok: false, failure: { kind: 'wrong-signature' }, identity: null });
    expect(verify.code).toBe(1);
    expect(verify.stderr, verify.stderr).toMatch(/differs from the image \(first at 0x0000: the board holds 0x55, the image 0x0c\)/);
  });

  it('says to run the setup when avrdude is not installed', { tags: ['REQ-FIRMWARE-FLASH'] }, async () => {
    const bin = join(work, 'bin-without-avrdude');
    execFileSync('mkdir', ['-p', bin]);
    symlinkSync(process.execPath, join(bin, 'node'));
    const result = await pen.run(['flash', '--port', 'tcp://127.0.0.1:1'], { timeoutMs: boundMs, env: { PATH: bin } });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/avrdude is not installed .*run scripts\/setup\.sh/);
  });

  it('ends avrdude on Ctrl-C, exiting 130 with what it means for the board', { tags: ['REQ-FIRMWARE-FLASH'] }, async () => {
    const silent = createServer((socket) => { socket.on('error', () => {}); socket.resume(); });
    servers.push(silent);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const bound = silent.address();
    const running = pen.start(['flash', '--port', `tcp://127.0.0.1:${typeof bound === 'object' && bound !== null ? bound.port : 0}`]);
    await running.waitFor(/flashing build/, 10_000);
    // A running avrdude, not one that has exited and waits to be reaped (state Z), which pgrep lists too.
    const childAvrdude = (): Promise<number | null> => new Promise((resolve) => {
      execFile('pgrep', ['-r', 'R,S,D', '-P', String(running.pid), 'avrdude'], (error, stdout) => resolve(error === null ? Number(stdout.trim()) : null));
    });
    let avrdudePid = await childAvrdude();
    for (let tries = 0; avrdudePid === null && tries < 20; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      avrdudePid = await childAvrdude();
    }
    if (avrdudePid === null) throw new Error(`pen flash started no avrdude:\n${running.output()}`);
    // Ctrl-C while avrdude calls the bootloader (its first sync attempt lasts longer than this), as a person's would come.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(running.child.exitCode, running.output()).toBeNull();
    running.child.kill('SIGINT');
    expect(await running.exitedWithin(5000), running.output()).toBe(130);
    expect(running.output()).toMatch(/Ctrl-C: avrdude stopped; the board may hold a partial application: flash it again/);
    expect(() => process.kill(avrdudePid, 0)).toThrow(/ESRCH/);
  });
});
