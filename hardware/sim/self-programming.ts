// The ATmega328P's self-programming (SPM, SPMCSR), which avr8js decodes as a no-op: the datasheet's "Boot Loader
// Support – Read-While-Write Self-Programming", enough for a boot loader to rewrite the application section.
import type { CPU } from 'avr8js';

/** SPMCSR's data-space address (I/O 0x37) and bits. */
export const SPMCSR = 0x57;
export const spmcsrBits = {
  SPMIE: 0x80, RWWSB: 0x40, SIGRD: 0x20, RWWSRE: 0x10, BLBSET: 0x08, PGWRT: 0x04, PGERS: 0x02, SELFPRGEN: 0x01,
} as const;
const { RWWSB, SIGRD, RWWSRE, BLBSET, PGWRT, PGERS, SELFPRGEN } = spmcsrBits;
/** The bits a write arms for the next SPM or LPM. */
const COMMAND_BITS = SIGRD | RWWSRE | BLBSET | PGWRT | PGERS | SELFPRGEN;

const SPM = 0x95e8;
/** SPM Z+ (post-increment by 2): the XMEGA form; the ATmega328P's instruction summary lists only SPM. */
const SPM_Z_INC = 0x95f8;
const LPM_R0 = 0x95c8;

export const pageWords = 64;
const flashWords = 0x4000;
/** Words 0x3800-0x3FFF: the No-Read-While-Write section, whatever BOOTSZ; the CPU halts while it is programmed. */
const nrwwStartWord = 0x3800;
/** Page erase and page write take 3.7-4.5 ms (datasheet "SPM Programming Time"); 4 ms at 16 MHz. */
export const flashBusyCycles = 64_000;
/** The chip runs SPM (or LPM for SIGRD, BLBSET) only if SPMCSR was written within the four cycles before. */
const armedCycles = 4;

/** Signature row: device ID bytes at Z = 0, 2, 4 (1E 95 0F), the RC oscillator calibration byte at Z = 1. */
const signatureRow: Readonly<Record<number, number>> = { 0: 0x1e, 1: 0x80, 2: 0x95, 4: 0x0f };

export type BootSectionBytes = 512 | 1024 | 2048 | 4096;

export interface SelfProgrammingOptions {
  /** The boot section's size (BOOTSZ fuses); SPM runs only from it. 512 bytes: 0x7E00-0x7FFF (BOOTSZ = 11). */
  readonly bootSectionBytes?: BootSectionBytes;
  /** The BOOTRST fuse: programmed, the MCU starts at the boot section. Only reported in the high fuse here. */
  readonly bootReset?: boolean;
  /** Called when a page erase or page write has changed the flash, with the page's first word address. */
  readonly onProgram?: (pageWord: number) => void;
}

/** The boot section's first word address (where a programmed BOOTRST starts execution). */
export function bootSectionStartWord(bootSectionBytes: BootSectionBytes = 512): number {
  return flashWords - bootSectionBytes / 2;
}

/**
 * SPMCSR and the temporary page buffer of one MCU, from its power-on or reset (the buffer does not survive a reset).
 * Page erase and page write happen on cpu.progMem, which is the flash that survives resets. Modelled: buffer load
 * (SELFPRGEN), page erase (PGERS), page write (PGWRT; cells can only go from 1 to 0, so an unerased page gets old AND
 * new), each busy 4 ms with SELFPRGEN held and, for an RWW page, RWWSB set until RWWSRE; an NRWW page halts the CPU
 * for the 4 ms instead. SPM outside the boot section, or more than 4 cycles after the SPMCSR write, is ignored; SIGRD
 * and BLBSET make the next LPM read the signature row or the fuse and lock bytes. Not modelled: the SPM_READY
 * interrupt (SPMIE is only stored), writing lock bits (BLBSET with SPM), reading the RWW section while it is busy
 * (the chip returns garbage), the boot lock bits (all unprogrammed), and the SPM instruction's own cycles (one).
 */
export class SelfProgramming {
  readonly bootStartWord: number;
  /** The temporary page buffer, erased (0xFFFF) at reset, after a page write and by RWWSRE. */
  readonly pageBuffer = new Uint16Array(pageWords).fill(0xffff);
  private readonly fuses: Readonly<Record<number, number>>;
  private armedAt = -Infinity;
  private busy = false;
  private readonly onProgram: ((pageWord: number) => void) | undefined;

  constructor(private readonly cpu: CPU, options: SelfProgrammingOptions = {}) {
    this.onProgram = options.onProgram;
    const bootBytes = options.bootSectionBytes ?? 512;
    this.bootStartWord = bootSectionStartWord(bootBytes);
    // High fuse: SPIEN programmed, WDTON and EESAVE unprogrammed, BOOTSZ for the boot section, BOOTRST.
    const bootsz = { 512: 3, 1024: 2, 2048: 1, 4096: 0 }[bootBytes];
    const high = 0xd8 | (bootsz << 1) | (options.bootReset === true ? 0 : 1);
    // Z = 0: low fuse (external crystal, no CKDIV8), 1: lock bits (none), 2: extended fuse (BOD 2.7 V), 3: high fuse.
    this.fuses = { 0: 0xff, 1: 0xff, 2: 0xfd, 3: high };
    cpu.data[SPMCSR] = 0;
    cpu.writeHooks[SPMCSR] = (value) => {
      const old = cpu.data[SPMCSR] ?? 0;
      // While a page erase or write runs, only SPMIE can change.
      if (this.busy) cpu.data[SPMCSR] = (old & ~spmcsrBits.SPMIE) | (value & spmcsrBits.SPMIE);
      else {
        cpu.data[SPMCSR] = (value & (spmcsrBits.SPMIE | COMMAND_BITS)) | (old & RWWSB);
        this.armedAt = cpu.cycles;
      }
      return true;
    };
    cpu.readHooks[SPMCSR] = () => {
      this.expire();
      return cpu.data[SPMCSR] ?? 0;
    };
  }

  /**
   * Executes the instruction at cpu.pc if it is SPM, or an LPM that SIGRD or BLBSET redirects; returns false, having
   * done nothing, for any other instruction (and for those when unarmed), which avr8js then executes.
   */
  execute(): boolean {
    const { cpu } = this;
    const opcode = cpu.progMem[cpu.pc] ?? 0;
    if (opcode === SPM || opcode === SPM_Z_INC) {
      this.spm(opcode === SPM_Z_INC);
      cpu.pc++;
      cpu.cycles++;
      return true;
    }
    const lpm = opcode === LPM_R0 || (opcode & 0xfe0e) === 0x9004;  // LPM; LPM Rd, Z; LPM Rd, Z+
    if (!lpm || (this.command() & (SIGRD | BLBSET)) === 0) return false;
    const z = this.z();
    const table = (this.command() & SIGRD) !== 0 ? signatureRow : this.fuses;
    cpu.data[opcode === LPM_R0 ? 0 : (opcode & 0x1f0) >> 4] = table[z] ?? 0xff;
    if (opcode !== LPM_R0 && (opcode & 1) !== 0) cpu.dataView.setUint16(30, z + 1, true);
    this.disarm();
    cpu.pc++;
    cpu.cycles += 3;
    return true;
  }

  /** The armed command bits, cleared once more than four cycles have passed since the SPMCSR write. */
  private command(): number {
    this.expire();
    return (this.cpu.data[SPMCSR] ?? 0) & COMMAND_BITS;
  }

  private expire(): void {
    if (!this.busy && this.cpu.cycles - this.armedAt > armedCycles) this.disarm();
  }

  private disarm(): void {
    const { data } = this.cpu;
    data[SPMCSR] = (data[SPMCSR] ?? 0) & ~COMMAND_BITS;
  }

  private z(): number {
    return this.cpu.dataView.getUint16(30, true);
  }

  private spm(postIncrement: boolean): void {
    const { cpu } = this;
    const command = this.busy || cpu.pc < this.bootStartWord ? 0 : this.command();
    const z = this.z();
    if (postIncrement) cpu.dataView.setUint16(30, z + 2, true);
    if (command === 0) return;
    this.disarm();
    const page = (z >> 1) & ~(pageWords - 1) & (flashWords - 1);
    if (command === SELFPRGEN) this.pageBuffer[(z >> 1) & (pageWords - 1)] = (cpu.data[0] ?? 0) | ((cpu.data[1] ?? 0) << 8);
    else if (command === (RWWSRE | SELFPRGEN)) {
      cpu.data[SPMCSR] = (cpu.data[SPMCSR] ?? 0) & ~RWWSB;
      this.pageBuffer.fill(0xffff);
    } else if (command === (PGERS | SELFPRGEN) || command === (PGWRT | SELFPRGEN)) {
      const program = (): void => {
        const flash = cpu.progMem;
        for (let i = 0; i < pageWords; i++) flash[page + i] = command === (PGERS | SELFPRGEN) ? 0xffff : (flash[page + i] ?? 0) & (this.pageBuffer[i] ?? 0);
        if (command === (PGWRT | SELFPRGEN)) this.pageBuffer.fill(0xffff);
        this.onProgram?.(page);
      };
      if (page >= nrwwStartWord) {
        cpu.cycles += flashBusyCycles;  // the CPU is halted until the NRWW page is done
        program();
        return;
      }
      this.busy = true;
      cpu.data[SPMCSR] = (cpu.data[SPMCSR] ?? 0) | RWWSB | command;
      cpu.addClockEvent(() => {
        program();
        this.busy = false;
        this.disarm();
      }, flashBusyCycles);
    }
  }
}
