// Firmware size: flash and static RAM of the built image, against the ATmega328P's budget.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pen } from '../hardware/description.ts';
import { round, type Figure } from './figure.ts';

const elfPath = fileURLToPath(new URL('../firmware/build/pen.elf', import.meta.url));

/** Section sizes in bytes from `avr-size -A` (SysV format: name, size, address per line). */
function sectionBytes(): Map<string, number> {
  const output = execFileSync('avr-size', ['-A', elfPath], { encoding: 'utf8' });
  const sizes = new Map<string, number>();
  for (const line of output.split('\n')) {
    const match = /^(\.\S+)\s+(\d+)\s+\d+\s*$/.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined) sizes.set(match[1], Number(match[2]));
  }
  if (!sizes.has('.text')) throw new Error(`avr-size found no .text section in ${elfPath}: rebuild with \`npm run firmware\``);
  return sizes;
}

export function measure(): Promise<Figure[]> {
  const sizes = sectionBytes();
  const sum = (names: readonly string[]): number => names.reduce((total, name) => total + (sizes.get(name) ?? 0), 0);
  // .data is stored in flash and copied to RAM at boot, so it counts against both.
  const flashBytes = sum(['.text', '.data']);
  const staticRamBytes = sum(['.data', '.bss', '.noinit']);
  const { flashBytes: flashBudgetBytes, ramBytes: ramBudgetBytes } = pen.board;
  return Promise.resolve([
    { name: 'firmware_flash_bytes', value: flashBytes, unit: 'B', note: '.text + .data' },
    { name: 'firmware_flash_percent', value: round((100 * flashBytes) / flashBudgetBytes, 1), unit: '%', note: `of ${flashBudgetBytes} B` },
    { name: 'firmware_static_ram_bytes', value: staticRamBytes, unit: 'B', note: '.data + .bss + .noinit; the stack comes on top' },
    { name: 'firmware_static_ram_percent', value: round((100 * staticRamBytes) / ramBudgetBytes, 1), unit: '%', note: `of ${ramBudgetBytes} B` },
  ]);
}
