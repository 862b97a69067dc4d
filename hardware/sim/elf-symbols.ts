// Symbols of the firmware's ELF (avr-nm), looked up at run time so tools never depend on fixed addresses; and a
// scan of the program memory for the watchdog kicks main reaches.
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';

/** Where avr-gcc places the data space in the ELF's address space: SRAM symbols read 0x800100 and up. */
const dataSpaceBase = 0x800000;

export interface ElfSymbol {
  readonly name: string;
  /** As avr-nm prints it: a byte address in flash, or 0x800000 + the data-space address for RAM. */
  readonly address: number;
  /** In bytes; 0 when the ELF gives none (labels, linker symbols). */
  readonly size: number;
  /** avr-nm's type letter: T/t code, D/d initialised data, B/b bss, ... */
  readonly type: string;
}

const cache = new Map<string, { readonly mtimeMs: number; readonly symbols: readonly ElfSymbol[] }>();

/** The ELF built next to a firmware image: firmware/build/pen.hex → firmware/build/pen.elf. */
export function elfPathFor(hexPath: string): string {
  return hexPath.replace(/\.hex$/, '') + '.elf';
}

/** Every symbol of the ELF, from `avr-nm -S`; cached per path and re-read when the file changes (a rebuild). */
export function elfSymbols(elfPath: string): readonly ElfSymbol[] {
  if (!existsSync(elfPath)) throw new Error(`firmware ELF not found at ${elfPath}: build it with \`npm run firmware\``);
  const { mtimeMs } = statSync(elfPath);
  const cached = cache.get(elfPath);
  if (cached?.mtimeMs === mtimeMs) return cached.symbols;
  const output = execFileSync('avr-nm', ['-S', elfPath], { encoding: 'utf8' });
  const symbols: ElfSymbol[] = [];
  for (const line of output.split('\n')) {
    const match = /^([0-9a-f]+) (?:([0-9a-f]+) )?(\S) (\S+)$/i.exec(line.trim());
    if (match?.[1] === undefined || match[3] === undefined || match[4] === undefined) continue;
    symbols.push({ name: match[4], address: parseInt(match[1], 16), size: match[2] === undefined ? 0 : parseInt(match[2], 16), type: match[3] });
  }
  cache.set(elfPath, { mtimeMs, symbols });
  return symbols;
}

function uniqueSymbol(elfPath: string, name: string, kind: 'code' | 'data'): ElfSymbol {
  const isKind = (symbol: ElfSymbol): boolean =>
    kind === 'code' ? /^[tTwW]$/.test(symbol.type) : symbol.address >= dataSpaceBase && /^[bBdDrRvV]$/.test(symbol.type);
  const found = elfSymbols(elfPath).filter((symbol) => symbol.name === name && isKind(symbol));
  const [symbol] = found;
  if (symbol === undefined) throw new Error(`no ${kind} symbol ${name} in ${elfPath}: renamed, optimised away, or the ELF is stale`);
  if (found.length > 1) throw new Error(`${found.length} ${kind} symbols named ${name} in ${elfPath}: ambiguous (static in several files)`);
  return symbol;
}

/** A static variable's place in the MCU's data space (the index into avr8js's cpu.data) and its size in bytes. */
export function ramSymbol(elfPath: string, name: string): { readonly address: number; readonly size: number } {
  const symbol = uniqueSymbol(elfPath, name, 'data');
  return { address: symbol.address - dataSpaceBase, size: symbol.size };
}

/** A function's place in flash, in bytes (avr8js's pc counts 16-bit words: divide by 2), and its size in bytes. */
export function codeSymbol(elfPath: string, name: string): { readonly address: number; readonly size: number } {
  const symbol = uniqueSymbol(elfPath, name, 'code');
  return { address: symbol.address, size: symbol.size };
}

const WDR = 0x95a8;

/**
 * The word addresses of the WDR instructions that the function `entry` reaches, in its own code or through the
 * functions it calls or jumps to (CALL, RCALL, JMP, RJMP to a function's start), found by decoding the program
 * memory within the ELF's function symbols. Indirect calls (ICALL) are not followed.
 */
export function watchdogKicksReachedFrom(program: Uint16Array, elfPath: string, entry = 'main'): number[] {
  const functions = elfSymbols(elfPath).filter((symbol) => /^[tT]$/.test(symbol.type) && symbol.size > 0 && symbol.address < dataSpaceBase);
  const byStartWord = new Map(functions.map((symbol) => [symbol.address / 2, symbol]));
  const pending = [uniqueSymbol(elfPath, entry, 'code')];
  const visited = new Set<string>();
  const kicks: number[] = [];
  for (let fn = pending.pop(); fn !== undefined; fn = pending.pop()) {
    const key = `${fn.name}@${fn.address}`;
    if (visited.has(key)) continue;
    visited.add(key);
    const end = (fn.address + fn.size) / 2;
    for (let pc = fn.address / 2; pc < end; pc++) {
      const word = program[pc] ?? 0;
      let target: number | null = null;
      if (word === WDR) kicks.push(pc);
      else if ((word & 0xfe0c) === 0x940c) {
        // CALL/JMP k: 22-bit word address, the low 16 bits in the next word.
        target = (((word & 0x01f0) >> 3) | (word & 1)) * 0x10000 + (program[pc + 1] ?? 0);
        pc++;
      } else if ((word & 0xfc0f) === 0x9000) pc++;  // LDS/STS: skip the address word
      else if ((word & 0xe000) === 0xc000) target = pc + 1 + (((word & 0x0fff) << 20) >> 20);  // RJMP/RCALL k: signed 12 bits
      const callee = target === null ? undefined : byStartWord.get(target);
      if (callee !== undefined) pending.push(callee);
    }
  }
  return kicks.sort((a, b) => a - b);
}
