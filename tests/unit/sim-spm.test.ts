// The virtual pen's self-programming follows the ATmega328P where avr8js decodes SPM as a no-op (datasheet, "Boot Loader
// Support – Read-While-Write Self-Programming"): page buffer, page erase and write, SPMCSR's busy and RWWSB bits.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CPU } from 'avr8js';
import { VirtualPen, stepLikeTheChip } from '../../hardware/sim/virtual-pen.ts';
import { SPMCSR, SelfProgramming, flashBusyCycles, pageWords, spmcsrBits } from '../../hardware/sim/self-programming.ts';

const { RWWSB, RWWSRE, PGWRT, PGERS, SELFPRGEN, SIGRD, BLBSET } = spmcsrBits;
const OUT_SPMCSR_R24 = 0xbf87, SPM = 0x95e8, IN_R25_SPMCSR = 0xb797, SBRC_R25_0 = 0xfd90, RJMP_BACK_3 = 0xcffd;
const RJMP_SELF = 0xcfff, LPM_R20_Z_INC = 0x9145, LPM_R21_Z = 0x9154, LPM_R20_Z = 0x9144;
/** out SPMCSR, r24; spm; 1: in r25, SPMCSR; sbrc r25, SELFPRGEN; rjmp 1b; rjmp . — a boot loader's SPM and wait. */
const spmAndWait = [OUT_SPMCSR_R24, SPM, IN_R25_SPMCSR, SBRC_R25_0, RJMP_BACK_3, RJMP_SELF];
const done = 5;  // the final rjmp's offset
const boot = 0x3f00;        // word address of the 512-byte boot section, 0x7E00
const application = 0x0100;  // the same code in the application section
const readBack = boot + 0x10;  // lpm r20, Z+; lpm r21, Z; rjmp .
const readArmed = boot + 0x20;  // out SPMCSR, r24; lpm r20, Z; rjmp .
const target = 0x0800;        // word address of the page programmed (byte 0x1000)

function bareMcu(): { cpu: CPU; spm: SelfProgramming } {
  const flash = new Uint16Array(0x4000);
  flash.set(spmAndWait, boot);
  flash.set(spmAndWait, application);
  flash.set([LPM_R20_Z_INC, LPM_R21_Z, RJMP_SELF], readBack);
  flash.set([OUT_SPMCSR_R24, LPM_R20_Z, RJMP_SELF], readArmed);
  const cpu = new CPU(flash);
  return { cpu, spm: new SelfProgramming(cpu) };
}

/** Runs spmAndWait at `at` with r24 = command, Z = byte address, r1:r0 = word; returns the cycles until SELFPRGEN clears. */
function spmAt(mcu: { cpu: CPU; spm: SelfProgramming }, at: number, command: number, z: number, word = 0): number {
  const { cpu, spm } = mcu;
  cpu.pc = at;
  cpu.data[24] = command;
  cpu.dataView.setUint16(30, z, true);
  cpu.dataView.setUint16(0, word, true);
  const start = cpu.cycles;
  while (cpu.pc !== at + done) {
    stepLikeTheChip(cpu, spm);
    if (cpu.cycles - start > 3 * flashBusyCycles) throw new Error('SELFPRGEN never cleared');
  }
  return cpu.cycles - start;
}

function runAt(cpu: CPU, spm: SelfProgramming, at: number, steps: number): void {
  cpu.pc = at;
  for (let i = 0; i < steps; i++) stepLikeTheChip(cpu, spm);
}

const words = Array.from({ length: pageWords }, (_, i) => 0x1200 + i * 3);

describe('self-programming (SPM) in the virtual pen', () => {
  it('fills the page buffer, erases and writes a page; the words read back with LPM', () => {
    const mcu = bareMcu();
    words.forEach((word, i) => spmAt(mcu, boot, SELFPRGEN, target * 2 + i * 2, word));
    spmAt(mcu, boot, PGERS | SELFPRGEN, target * 2);
    spmAt(mcu, boot, PGWRT | SELFPRGEN, target * 2);
    spmAt(mcu, boot, RWWSRE | SELFPRGEN, 0);
    expect(Array.from(mcu.cpu.progMem.subarray(target, target + pageWords))).toEqual(words);
    mcu.cpu.dataView.setUint16(30, (target + 5) * 2, true);
    runAt(mcu.cpu, mcu.spm, readBack, 2);
    expect(mcu.cpu.dataView.getUint16(20, true)).toBe(words[5]);
    expect(Array.from(mcu.spm.pageBuffer)).toEqual(new Array<number>(pageWords).fill(0xffff));  // emptied by the write
  });

  it('keeps SELFPRGEN set for 4 ms of a page erase, then clears it', () => {
    const mcu = bareMcu();
    const cycles = spmAt(mcu, boot, PGERS | SELFPRGEN, target * 2);
    expect(cycles).toBeGreaterThanOrEqual(flashBusyCycles);
    expect(cycles).toBeLessThan(flashBusyCycles + 20);
  });

  it('sets RWWSB while an application page is erased, until RWWSRE clears it', () => {
    const mcu = bareMcu();
    const { cpu, spm } = mcu;
    runAt(cpu, spm, boot, 0);
    cpu.data[24] = PGERS | SELFPRGEN;
    cpu.dataView.setUint16(30, target * 2, true);
    stepLikeTheChip(cpu, spm);
    stepLikeTheChip(cpu, spm);
    expect(cpu.readData(SPMCSR)).toBe(RWWSB | PGERS | SELFPRGEN);
    spmAt(mcu, boot, PGERS | SELFPRGEN, target * 2);
    expect(cpu.readData(SPMCSR)).toBe(RWWSB);
    spmAt(mcu, boot, RWWSRE | SELFPRGEN, 0);
    expect(cpu.readData(SPMCSR)).toBe(0);
  });

  it('ignores SPM from the application section, as the chip does', () => {
    const mcu = bareMcu();
    mcu.cpu.progMem.fill(0x5a5a, target, target + pageWords);
    const cycles = spmAt(mcu, application, PGERS | SELFPRGEN, target * 2);
    expect(cycles).toBeLessThan(20);  // SELFPRGEN cleared itself four cycles after the write
    expect(mcu.cpu.progMem[target]).toBe(0x5a5a);
    spmAt(mcu, boot, PGERS | SELFPRGEN, target * 2);  // the same erase from the boot section
    expect(mcu.cpu.progMem[target]).toBe(0xffff);
  });

  it('erases exactly the page Z points into to 0xFFFF', () => {
    const mcu = bareMcu();
    const flash = mcu.cpu.progMem;
    flash.fill(0x1234, target - 1, target + pageWords + 1);
    spmAt(mcu, boot, PGERS | SELFPRGEN, (target + 17) * 2 + 1);  // any byte in the page
    expect(Array.from(flash.subarray(target, target + pageWords))).toEqual(new Array<number>(pageWords).fill(0xffff));
    expect([flash[target - 1], flash[target + pageWords]]).toEqual([0x1234, 0x1234]);
  });

  it('reads the signature row with SIGRD and the fuses with BLBSET through LPM', () => {
    const { cpu, spm } = bareMcu();
    const read = (command: number, z: number): number => {
      cpu.data[24] = command;
      cpu.dataView.setUint16(30, z, true);
      runAt(cpu, spm, readArmed, 2);
      return cpu.data[20] ?? -1;
    };
    expect([0, 2, 4].map((z) => read(SIGRD | SELFPRGEN, z))).toEqual([0x1e, 0x95, 0x0f]);
    expect([0, 1, 2, 3].map((z) => read(BLBSET | SELFPRGEN, z))).toEqual([0xff, 0xff, 0xfd, 0xdf]);
  });
});

/** An Intel HEX file holding words at word addresses (below 64 KB). */
function intelHex(chunks: readonly (readonly [number, readonly number[]])[]): string {
  const lines: string[] = [];
  for (const [wordAddress, chunkWords] of chunks) {
    const bytes = chunkWords.flatMap((word) => [word & 0xff, word >> 8]);
    for (let offset = 0; offset < bytes.length; offset += 16) {
      const data = bytes.slice(offset, offset + 16);
      const address = wordAddress * 2 + offset;
      const record = [data.length, address >> 8, address & 0xff, 0, ...data];
      const checksum = (0x100 - (record.reduce((sum, byte) => sum + byte, 0) & 0xff)) & 0xff;
      lines.push(':' + [...record, checksum].map((byte) => byte.toString(16).padStart(2, '0').toUpperCase()).join(''));
    }
  }
  return [...lines, ':00000001FF', ''].join('\n');
}

describe('the virtual pen with BOOTRST programmed', () => {
  it('starts and restarts at the boot section, whose SPM rewrites the flash, which survives the reset', () => {
    const LDI_R24_ERASE = 0xe083, LDI_R30_0 = 0xe0e0, LDI_R31_0x10 = 0xe1f0;  // r24 = PGERS | SELFPRGEN, Z = 0x1000
    const directory = mkdtempSync(join(tmpdir(), 'sim-spm-'));
    const firmwarePath = join(directory, 'boot.hex');
    writeFileSync(firmwarePath, intelHex([[target, [0x1234, 0x5678]], [boot, [LDI_R24_ERASE, LDI_R30_0, LDI_R31_0x10, ...spmAndWait]]]));
    const pen = new VirtualPen({ firmwarePath, bootReset: true });
    expect(pen.mcu.pc).toBe(boot);
    pen.runFor(5);
    expect(pen.mcu.pc).toBe(boot + 3 + done);
    expect([pen.mcu.progMem[target], pen.mcu.progMem[target + 1]]).toEqual([0xffff, 0xffff]);
    expect(pen.mcu.readData(SPMCSR)).toBe(RWWSB);
    pen.resetMcu();
    expect(pen.mcu.pc).toBe(boot);
    expect(pen.mcu.readData(SPMCSR)).toBe(0);  // a fresh SPMCSR: the reset re-enabled the RWW section
    expect(pen.mcu.progMem[target]).toBe(0xffff);
    expect(new VirtualPen({ firmwarePath }).mcu.pc).toBe(0);
  });
});
