// What `pen flash` checks before avrdude runs (the image: Intel HEX, clear of the boot section, pen firmware for this
// board and protocol), and how it reads avrdude's stderr: progress, and each failure as an error that says what to do.
// The avrdude texts are avrdude 7.1's own, captured against the virtual pen and a fake bootloader.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pen as description } from '../../hardware/description.ts';
import { PROTOCOL_VERSION } from '../../hardware/generated/protocol.ts';
import { parseIntelHex } from '../../hardware/sim/intel-hex.ts';
import { defaultFirmwarePath } from '../../hardware/sim/virtual-pen.ts';
import { AvrdudeOutput, avrdudeArguments, type FlashProgress } from '../../src/cli/avrdude.ts';
import { checkFirmwareImage } from '../../src/cli/flash.ts';
import { imageChunk, intelHex } from '../intel-hex-writer.ts';

const directory = mkdtempSync(join(tmpdir(), 'flash-image-'));
let files = 0;
const file = (text: string): string => {
  const path = join(directory, `image-${++files}.hex`);
  writeFileSync(path, text);
  return path;
};
const penImage = (): Uint8Array => parseIntelHex(readFileSync(defaultFirmwarePath, 'utf8'), description.board.flashBytes);
const identityAt = (image: Uint8Array): number => Buffer.from(image).indexOf('PENFW-ID');

describe('the image pen flash accepts', () => {
  it('is the pen firmware the build makes, whose identity record gives the build id pen --version names', { tags: ['REQ-FIRMWARE-FLASH'] }, () => {
    const image = checkFirmwareImage(defaultFirmwarePath);
    const buildId = readFileSync(defaultFirmwarePath.replace(/\.hex$/, '.build-id'), 'utf8').trim();
    expect(image).toMatchObject({ boardName: description.board.name, protocolVersion: PROTOCOL_VERSION, buildId });
    expect(image.bytes).toBeGreaterThan(4000);
    expect(image.pages).toBe(Math.ceil(image.bytes / 128));
  });

  const refusals: readonly (readonly [string, () => string, RegExp])[] = [
    ['text', () => 'hello, not hex\n', /is not an Intel HEX file \(line 1: not an Intel HEX record\)/],
    ['a bad checksum', () => ':020000000C9462\n', /not an Intel HEX file \(line 1: checksum mismatch\)/],
    ['no data', () => ':00000001FF\n', /holds no data/],
    ['data beyond the 32 KB of flash', () => intelHex([imageChunk(penImage()), [0x8000, [1, 2]]]), /beyond the ATmega328P's 32 KB of flash/],
    ['data in the boot section', () => intelHex([imageChunk(penImage()), [0x7e00, [1, 2]]]),
      /writes 2 bytes at 0x7E00–0x7E01, in the boot section .* may use 0x0000–0x7DFF \(32256 bytes\)/],
    ['an image with no identity record', () => intelHex([[0, [0x0c, 0x94, 0x34, 0x00]]]), /is not pen firmware: it carries no pen firmware identity record/],
    ['two identity records', () => {
      const image = penImage();
      const at = identityAt(image);
      return intelHex([imageChunk(image), [0x7000, image.subarray(at, at + 22)]]);
    }, /is not pen firmware: it carries no single readable pen firmware identity record/],
    ['pen firmware for another board', () => {
      const image = penImage();
      image.set(Buffer.from('pen-x9\0\0'), identityAt(image) + 9);
      return intelHex([imageChunk(image)]);
    }, new RegExp(`is pen firmware for board pen-x9, and this host drives board ${description.board.name}`)],
    ['pen firmware speaking another protocol version', () => {
      const image = penImage();
      image[identityAt(image) + 17] = PROTOCOL_VERSION + 1;
      return intelHex([imageChunk(image)]);
    }, new RegExp(`speaks protocol version ${PROTOCOL_VERSION + 1}, and this host speaks version ${PROTOCOL_VERSION}`)],
  ];
  it.each(refusals)('refuses %s, saying what is wrong and what is allowed', { tags: ['REQ-FIRMWARE-FLASH'] }, (_what, text, message) => {
    expect(() => checkFirmwareImage(file(text()))).toThrow(message);
  });

  it('refuses a file that does not exist, saying how to build one', { tags: ['REQ-FIRMWARE-FLASH'] }, () => {
    expect(() => checkFirmwareImage(join(directory, 'missing.hex'))).toThrow(/does not exist: build the firmware with `npm run firmware`/);
  });

  it('reaches the virtual pen over TCP as avrdude net:HOST:PORT, a serial path as it is', () => {
    expect(avrdudeArguments('tcp://127.0.0.1:7777', '/tmp/x.hex')).toEqual(
      ['-c', 'arduino', '-p', 'm328p', '-b', '115200', '-P', 'net:127.0.0.1:7777', '-D', '-U', 'flash:w:/tmp/x.hex:i']);
    expect(avrdudeArguments('/dev/ttyUSB0', '/tmp/x.hex')).toContain('/dev/ttyUSB0');
  });
});

const socketNoise = 'avrdude OS error: ioctl("TIOCMGET"): Inappropriate ioctl for device\n';
const synced = '\navrdude: AVR device initialized and ready to accept instructions\navrdude: device signature = 0x1e950f (probably m328p)\n';
const bars = 'avrdude: writing 18384 bytes flash ...\n\nWriting | ' + '#'.repeat(50) + ' | 100% 2.53s\n\navrdude: 18384 bytes of flash written\n' +
  'avrdude: verifying flash memory against image.hex\n\nReading | ' + '#'.repeat(50) + ' | 100% 1.91s\n\n';

function read(text: string, chunkBytes = 7): { output: AvrdudeOutput; progress: FlashProgress[] } {
  const progress: FlashProgress[] = [];
  const output = new AvrdudeOutput((step) => progress.push(step));
  for (let i = 0; i < text.length; i += chunkBytes) output.push(text.slice(i, i + chunkBytes));
  return { output, progress };
}

describe("reading avrdude's stderr", () => {
  it('follows the progress bars as they are drawn, in tens of percent, with the time of each phase', () => {
    const { output, progress } = read(socketNoise + synced + bars + 'avrdude: 18384 bytes of flash verified\n\navrdude done.  Thank you.\n', 1);
    const steps = (phase: string): number[] => progress.filter((step) => step.phase === phase).map((step) => step.percent);
    expect(steps('writing')).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    expect(steps('verifying')).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    expect(output.seconds).toEqual({ writing: 2.53, verifying: 1.91 });
    expect(output.failure(0, 'tcp://127.0.0.1:7777')).toBeNull();
    expect(output.lines.join('\n')).not.toMatch(/TIOCMGET/);
  });

  const notInSync = Array.from({ length: 10 }, (_, i) => `${socketNoise}avrdude warning: attempt ${i + 1} of 10: not in sync: resp=0x7e\n`).join('') +
    'avrdude error: unable to open programmer arduino on port net:127.0.0.1:7777\n\navrdude done.  Thank you.\n';
  it('tells a running pen firmware (not in sync, resp=0x7e) from no bootloader, and says how to reach the bootloader', { tags: ['REQ-FIRMWARE-FLASH'] }, () => {
    const tcp = read(notInSync).output.failure(1, 'tcp://127.0.0.1:7777');
    expect(tcp?.kind).toBe('no-bootloader');
    expect(tcp?.message).toMatch(/no answer from a bootloader on tcp:\/\/127\.0\.0\.1:7777 after avrdude's 10 tries: the pen firmware answered instead/);
    expect(tcp?.message).toMatch(/pen sim --auto-reset/);
    const serial = read(notInSync.replaceAll('net:127.0.0.1:7777', '/dev/ttyUSB0')).output.failure(1, '/dev/ttyUSB0');
    expect(serial?.message).toMatch(/Reset the board: .* press its reset button/);
  });

  it('says nothing answered when avrdude got no byte back', () => {
    const text = 'avrdude error: programmer is not responding\navrdude warning: attempt 1 of 10: not in sync: resp=0x00\n'.repeat(3);
    const failure = read(text).output.failure(1, '/dev/ttyUSB0');
    expect(failure?.kind).toBe('no-bootloader');
  });

  it('names a port that cannot be opened', () => {
    const failure = read('avrdude OS error: cannot connect: Connection refused\navrdude error: unable to open programmer arduino on port net:127.0.0.1:9\n')
      .output.failure(1, 'tcp://127.0.0.1:9');
    expect(failure?.kind).toBe('cannot-open');
    expect(failure?.message).toMatch(/could not open tcp:\/\/127\.0\.0\.1:9 \(cannot connect: Connection refused.*is `pen sim --auto-reset` running there\?/);
  });

  it('names the signature of a chip that is not an ATmega328P', { tags: ['REQ-FIRMWARE-FLASH'] }, () => {
    const text = '\navrdude: AVR device initialized and ready to accept instructions\navrdude: device signature = 0x1e9406 (probably m168)\n' +
      'avrdude error: expected signature for ATmega328P is 1E 95 0F\n        double check chip or use -F to override this check\n';
    const failure = read(text).output.failure(1, '/dev/ttyUSB0');
    expect(failure?.kind).toBe('wrong-signature');
    expect(failure?.message).toMatch(/answered with signature 0x1e9406, not the ATmega328P's 0x1e950f: .* nothing was written/);
  });

  it('reports where the read-back first differs on a verify failure', { tags: ['REQ-FIRMWARE-FLASH'] }, () => {
    const text = synced + bars + 'avrdude warning: verification mismatch\n        device 0x55 != input 0x0c at addr 0x0000 (error)\n' +
      'avrdude error: verification mismatch\n\navrdude done.  Thank you.\n';
    const failure = read(text).output.failure(1, '/dev/ttyUSB0');
    expect(failure?.kind).toBe('verify-failed');
    expect(failure?.message).toMatch(/differs from the image \(first at 0x0000: the board holds 0x55, the image 0x0c\).* Flash it again/);
  });
});
