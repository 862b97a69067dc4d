// Crypto cost on the AVR: exact CPU cycles of HMAC-SHA256 over a challenge as the pen computes it (16-byte nonce ‖
// 16-byte serial ‖ command byte, docs/protocol.md) under a 32-byte key, run on a bare avr8js CPU from
// firmware/build/crypto_bench.hex and checked against node:crypto; and the flash and static RAM that
// firmware/src/sha256.c costs, from avr-size of its object. bench/auth.ts measures the same inside the pen's firmware.
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CPU, avrInstruction } from 'avr8js';
import { pen } from '../hardware/description.ts';
import { ramSymbol } from '../hardware/sim/elf-symbols.ts';
import { parseIntelHex } from '../hardware/sim/intel-hex.ts';
import { round, type Figure } from './figure.ts';

const firmwareDir = fileURLToPath(new URL('../firmware', import.meta.url));
const hexPath = `${firmwareDir}/build/crypto_bench.hex`;
const elfPath = `${firmwareDir}/build/crypto_bench.elf`;
const objectPath = `${firmwareDir}/build/bench/sha256.o`;

/** GPIOR0 in the data space; firmware/bench/crypto_bench.c writes these marks to it. */
const GPIOR0 = 0x3e;
/** The stack pointer's halves in the data space. */
const SPL = 0x5d;
const SPH = 0x5e;
const markStart = 1;
const markDone = 2;
/** Far above one HMAC (4 compressions); reaching it means the image never marked its end. */
const cycleLimit = 5_000_000;

interface Run {
  readonly cycles: number;
  readonly stackBytes: number;
  readonly mac: Buffer;
  readonly expected: Buffer;
}

function ramBytes(cpu: CPU, name: string): Buffer {
  const { address, size } = ramSymbol(elfPath, name);
  return Buffer.from(cpu.data.subarray(address, address + size));
}

/** Runs the bench image from reset to its end mark; the cycles and stack depth are those between the two marks. */
function runImage(): Run {
  const image = parseIntelHex(readFileSync(hexPath, 'utf8'), pen.board.flashBytes);
  const cpu = new CPU(new Uint16Array(image.buffer), pen.board.ramBytes);
  // Both marks are written by the same instruction (OUT), so the hook sees the same point of each and the difference
  // is exact: the call, its argument set-up and its return included.
  const marks = new Map<number, number>();
  cpu.writeHooks[GPIOR0] = (value) => {
    marks.set(value, cpu.cycles);
    return false;
  };
  // A frame is made by writing SPH, then SPL: in between, SP is half old, half new, and is not sampled.
  const sp = { halfWritten: false };
  cpu.writeHooks[SPH] = () => {
    sp.halfWritten = true;
    return false;
  };
  cpu.writeHooks[SPL] = () => {
    sp.halfWritten = false;
    return false;
  };
  let lowestSp = Number.POSITIVE_INFINITY;
  let startSp = 0;
  while (!marks.has(markDone)) {
    if (cpu.cycles > cycleLimit) throw new Error(`crypto bench: no end mark in GPIOR0 after ${cycleLimit} cycles (${hexPath})`);
    avrInstruction(cpu);
    if (marks.has(markStart) && !sp.halfWritten) {
      if (startSp === 0) startSp = cpu.SP;
      lowestSp = Math.min(lowestSp, cpu.SP);
    }
  }
  const start = marks.get(markStart);
  const done = marks.get(markDone);
  if (start === undefined || done === undefined) throw new Error('crypto bench: the end mark came without a start mark');
  const message = Buffer.concat(['crypto_bench_nonce', 'crypto_bench_serial', 'crypto_bench_command'].map((name) => ramBytes(cpu, name)));
  if (message.length !== 33) throw new Error(`crypto bench: the challenge is ${message.length} bytes, expected 16 + 16 + 1`);
  const expected = createHmac('sha256', ramBytes(cpu, 'crypto_bench_key')).update(message).digest();
  return { cycles: done - start, stackBytes: startSp - lowestSp, mac: ramBytes(cpu, 'crypto_bench_mac'), expected };
}

/** Flash and static RAM of one object, from `avr-size -A` (every function of it: --gc-sections drops unused ones). */
function objectCost(): { readonly flashBytes: number; readonly ramBytes: number } {
  const output = execFileSync('avr-size', ['-A', objectPath], { encoding: 'utf8' });
  let flashBytes = 0;
  let staticRamBytes = 0;
  for (const line of output.split('\n')) {
    const match = /^(\.\S+)\s+(\d+)\s+\d+\s*$/.exec(line);
    if (match?.[1] === undefined || match[2] === undefined) continue;
    const [name, bytes] = [match[1], Number(match[2])];
    // .data is stored in flash and copied to RAM at boot, so it counts against both.
    if (/^\.(text|progmem|data|rodata)/.test(name)) flashBytes += bytes;
    if (/^\.(data|rodata|bss|noinit)/.test(name)) staticRamBytes += bytes;
  }
  return { flashBytes, ramBytes: staticRamBytes };
}

export function measure(): Promise<Figure[]> {
  execFileSync('make', ['-s', '-C', firmwareDir, 'crypto-bench'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const run = runImage();
  if (!run.mac.equals(run.expected)) {
    throw new Error(`crypto bench: the AVR's MAC ${run.mac.toString('hex')} is not node:crypto's ${run.expected.toString('hex')}`);
  }
  const cost = objectCost();
  const what = 'HMAC-SHA256, 32-byte key, 33-byte message (nonce ‖ serial ‖ command), streamed; matches node:crypto';
  return Promise.resolve([
    { name: 'hmac_sha256_cycles', value: run.cycles, unit: 'cycles', note: what },
    { name: 'hmac_sha256_us', value: round((run.cycles / pen.board.cpuHz) * 1e6, 1), unit: 'µs', note: `at ${pen.board.cpuHz / 1e6} MHz` },
    { name: 'hmac_sha256_stack_bytes', value: run.stackBytes, unit: 'B', note: 'peak stack of the call, its context included' },
    { name: 'sha256_flash_bytes', value: cost.flashBytes, unit: 'B', note: 'avr-size of sha256.o: code + round constants, every function' },
    { name: 'sha256_ram_bytes', value: cost.ramBytes, unit: 'B', note: 'avr-size of sha256.o: static RAM; contexts live on the caller’s stack' },
  ]);
}
