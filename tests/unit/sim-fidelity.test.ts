// The virtual pen's CPU follows the chip where avr8js does not: one instruction after interrupts are enabled runs
// before a pending interrupt (datasheet, "Reset and Interrupt Handling"), which avr-gcc's stack-frame prologue needs.
import { describe, expect, it } from 'vitest';
import { CPU } from 'avr8js';
import { stepLikeTheChip } from '../../hardware/sim/virtual-pen.ts';

const SEI = 0x9478, INC_R17 = 0x9513, LDI_R18_1 = 0xe021, RJMP_SELF = 0xcfff;
const vectorWord = 0x10;
const interrupt: Parameters<CPU['setInterruptFlag']>[0] = {
  address: vectorWord, flagRegister: 0x3c, flagMask: 0x01, enableRegister: 0x3d, enableMask: 0x01, constant: false,
};

describe('the virtual pen CPU', () => {
  it('runs the instruction after SEI before an interrupt that was already pending', () => {
    const program = new Uint16Array(0x40);
    program.set([SEI, INC_R17, RJMP_SELF], 0);
    program.set([LDI_R18_1, RJMP_SELF], vectorWord);
    const cpu = new CPU(program);
    cpu.data[0x3d] = 0x01;  // enabled, then raised while the I flag is still clear
    cpu.setInterruptFlag(interrupt);
    stepLikeTheChip(cpu);
    expect(cpu.pc).toBe(vectorWord);  // the interrupt has been taken ...
    expect(cpu.data[17]).toBe(1);     // ... after INC ran, as on the chip
    stepLikeTheChip(cpu);
    expect(cpu.data[18]).toBe(1);     // and its handler runs
  });
});
