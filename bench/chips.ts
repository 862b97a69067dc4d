// ID chips: how long the firmware takes, in simulated time, to read a part's ROM id, to read a whole part (ROM id, the
// memory twice, a presence check) and both parts at power-on, to burn a mark (scratchpad, copy, read back) and a
// session's marks (both parts' marks, then both read again, before the needle's first start); the
// longest section the 1-Wire code runs with interrupts masked (its Timer1 compare B interrupt, its own atomic
// blocks), exact in cycles, against the other interrupts; and the STOP byte and the e-stop turning the motor off
// while a chip read runs, each injected as the 1-Wire interrupt of a read slot begins (the worst moment).
import { avrInstruction } from 'avr8js';
import { VirtualPen } from '../hardware/sim/virtual-pen.ts';
import { codeSymbol } from '../hardware/sim/elf-symbols.ts';
import { FRAME_STOP } from '../hardware/generated/protocol.ts';
import { testKeys } from '../hal/auth.ts';
import { PenDevice } from '../hal/device.ts';
import { progress, round, type Figure } from './figure.ts';
import { closeSession, cyclesPerMs, cyclesPerUartByte, cyclesPerUs, pauseAfterHeartbeat, startSession, type PenSession } from './running-pen.ts';

const SREG = 0x5f;
const interruptsOn = (pen: VirtualPen): boolean => ((pen.mcu.data[SREG] ?? 0) & 0x80) !== 0;
const statusOk = 1;  // part_status ok
const writeOk = 2;   // write_result ok
const rxComplete = 0x80;
const UCSR0A = 0xc0;
/** TIMER1_COMPB: the 1-Wire master's interrupt, vector 12 (avr8js's pc counts words; a vector is two words). */
const oneWireVectorWord = 12 * 2;

/**
 * Runs instruction by instruction until done(), keeping every interrupt-masked section's length and where it began.
 * It steps as the virtual pen does (stepLikeTheChip: the instruction after one that sets I runs before any interrupt),
 * but looks at the I flag between the instructions and the interrupt dispatch, so that two interrupts served back to
 * back count as two sections, not one.
 */
function maskedSections(pen: VirtualPen, done: () => boolean, limitMs: number): { oneWire: number; other: number; otherWhere: number } {
  const elf = pen.elfPath;
  const poll = codeSymbol(elf, 'onewire_poll');
  const inPoll = (pcWord: number): boolean => pcWord * 2 >= poll.address && pcWord * 2 < poll.address + poll.size;
  const cpu = pen.mcu;
  let start: number | null = null;
  let fromOneWire = false;
  let startPc = 0;
  const longest = { oneWire: 0, other: 0, otherWhere: 0 };
  const observe = (): void => {
    const on = interruptsOn(pen);
    if (!on && start === null) {
      start = pen.totalCycles;
      startPc = cpu.pc;
      // Entered through the 1-Wire vector, or a cli in the 1-Wire driver's code (its atomic blocks).
      fromOneWire = startPc === oneWireVectorWord || inPoll(startPc);
    } else if (on && start !== null) {
      const length = pen.totalCycles - start;
      if (fromOneWire) longest.oneWire = Math.max(longest.oneWire, length);
      else if (length > longest.other) Object.assign(longest, { other: length, otherWhere: startPc });
      start = null;
    }
  };
  const limit = pen.totalCycles + limitMs * cyclesPerMs;
  while (!done()) {
    if (pen.totalCycles > limit) throw new Error(`chips bench: not done within ${limitMs} ms`);
    const wasOn = interruptsOn(pen);
    avrInstruction(cpu);
    if (!wasOn && interruptsOn(pen)) avrInstruction(cpu);
    observe();
    cpu.tick();
    observe();
  }
  return longest;
}

/** Where a masked section began: an interrupt vector (the table's first 26 entries, two words each), or code. */
function where(pcWord: number): string {
  return pcWord < 26 * 2 ? `interrupt vector ${pcWord / 2}` : `code at 0x${(pcWord * 2).toString(16)}`;
}

/** A part's record in the firmware (src/parts.c records[]): its first byte is the status. */
function record(pen: VirtualPen, part: number): Uint8Array {
  const records = pen.readRam('records');
  const size = records.length / 2;
  return records.subarray(part * size, (part + 1) * size);
}

function readTimes(): Figure[] {
  const pen = new VirtualPen({ seed: 21 });
  const bus = pen.idChips.cartridge;
  const chip = bus.chip;
  if (chip === null) throw new Error('no cartridge chip');
  pen.runUntil(() => bus.stats.masterEdges > 0, 100);
  const firstEdge = pen.totalCycles;
  pen.runUntil(() => chip.stats.bitsSent >= 64, 100);  // the id's 64 bits
  const romCycles = pen.totalCycles - firstEdge;
  const masked = maskedSections(pen, () => record(pen, 0)[0] === statusOk, 1000);
  const cartridgeCycles = pen.totalCycles - firstEdge;
  pen.runUntil(() => record(pen, 1)[0] === statusOk, 1000);
  const bothCycles = pen.totalCycles - firstEdge;
  const slots = bus.stats.slots;
  const violations = bus.violations.length + pen.idChips.nosecone.violations.length;
  return [
    { name: 'chip_enumerate_ms', value: round(romCycles / cyclesPerMs, 2), unit: 'ms', note: 'reset, presence, Read ROM and the 64-bit id (simulated)' },
    { name: 'chip_read_part_ms', value: round(cartridgeCycles / cyclesPerMs, 1), unit: 'ms', note: `one part: id, memory 0x00-0x87 read twice, presence after (${slots} slots), simulated` },
    { name: 'chip_read_both_ms', value: round(bothCycles / cyclesPerMs, 1), unit: 'ms', note: 'both parts at power-on, one after the other (simulated)' },
    { name: 'chip_longest_masked_cycles', value: masked.oneWire, unit: 'cycles', note: `${round(masked.oneWire / cyclesPerUs, 1)} µs: the 1-Wire interrupt or its atomic blocks, during a part's read` },
    { name: 'chip_longest_other_masked_cycles', value: masked.other, unit: 'cycles', note: `${round(masked.other / cyclesPerUs, 1)} µs: the longest other masked section meanwhile (${where(masked.otherWhere)})` },
    { name: 'chip_timing_violations', value: violations, unit: 'count', note: 'edges outside the DS2431 windows, as the chip model saw them' },
  ];
}

async function writeTime(): Promise<Figure[]> {
  const pen = new VirtualPen({ seed: 22 });
  pen.start();
  const device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
  try {
    await device.provision('SIM-BENCH', testKeys);
    while ((await device.parts()).nosecone.status !== 'ok') await pen.clock.sleep(20);
    const chip = pen.idChips.nosecone.chip;
    if (chip === null) throw new Error('no nosecone chip');
    await device.serviceCommand('record_sterilization', { noseconeRom: Uint8Array.from(chip.rom) });
    await pen.stop();
    const accepted = pen.totalCycles;
    const done = pen.runUntil(() => pen.readRam('last_write')[0] === writeOk, 500);
    if (done === null) throw new Error('chips bench: the mark was not written within 500 ms');
    return [{
      name: 'chip_write_mark_ms', value: round((pen.totalCycles - accepted) / cyclesPerMs, 1), unit: 'ms',
      note: 'record_sterilization: row read, Write and Read Scratchpad, Copy with tPROG (10 ms), row read back (simulated)',
    }];
  } finally {
    await device.close();
    await pen.stop();
  }
}

/** src/parts.c's MARKS_DONE: the session's marks burnt, read back and both parts read again. */
const marksDone = 8;

/** A session's first start_needle: both marks burnt and both parts read again, until the needle may start. */
async function sessionMarksTime(): Promise<Figure[]> {
  const pen = new VirtualPen({ seed: 24 });
  pen.start();
  const device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
  try {
    await device.depth.home();
    await device.depth.moveTo(1.0);
    const { cartridge } = await device.settledParts();
    await device.clearCartridge(cartridge.rom);
    await device.arm(Date.UTC(2026, 10, 26));
    const first = await device.command('start_needle', { strokesPerSecond: 100 }).then(() => 'ok', (error: unknown) => (error as { code?: string }).code);
    if (first !== 'parts_busy') throw new Error(`chips bench: the session's first start answered ${String(first)}, not parts_busy`);
    await pen.stop();
    const asked = pen.totalCycles;
    const done = pen.runUntil(() => pen.readRam('fitting')[0] === marksDone, 2000);
    if (done === null) throw new Error('chips bench: the session\'s marks were not done within 2 s');
    return [{
      name: 'chip_session_marks_ms', value: round((pen.totalCycles - asked) / cyclesPerMs, 1), unit: 'ms',
      note: 'a session\'s first start_needle: cartridge used mark and nosecone use mark burnt and read back, both parts read again (simulated)',
    }];
  } finally {
    await device.close();
    await pen.stop();
  }
}

/** A running needle, both chips being read again, the MCU paused; then run to the 1-Wire interrupt of a read slot. */
async function atReadSlotInterrupt(seed: number): Promise<PenSession & { slotCycle: number }> {
  const session = await startSession({ seed, depthMm: 1.5, strokesPerSecond: 100 });
  await session.device.parts(['cartridge', 'nosecone']);
  await pauseAfterHeartbeat(session);
  const { pen } = session;
  const chip = pen.idChips.cartridge.chip;
  if (chip === null) throw new Error('no cartridge chip');
  const reached = pen.runUntil(() => chip.protocolState === 'readMemory' && pen.mcu.pc === oneWireVectorWord, 200);
  if (reached === null) throw new Error('chips bench: no read slot within 200 ms');
  if (pen.plant.motorDrive() === 0) throw new Error('chips bench: the motor was off');
  return { ...session, slotCycle: pen.totalCycles };
}

async function estopDuringRead(): Promise<Figure[]> {
  const session = await atReadSlotInterrupt(23);
  const { pen } = session;
  const from = pen.totalCycles;
  pen.setInput('estop', true);
  const off = pen.runUntil(() => pen.plant.motorDrive() === 0, 10);
  await closeSession(session);
  const us = off === null ? Number.NaN : round((pen.totalCycles - from) / cyclesPerUs, 1);
  return [{ name: 'chip_estop_motor_off_us', value: us, unit: 'µs', note: 'e-stop tripped as a read slot\'s 1-Wire interrupt begins (fault_estop_motor_off_us without a chip transaction)' }];
}

/**
 * The STOP byte received offsetCycles after a read slot's 1-Wire interrupt begins: two slot interrupts give the slot
 * period, the byte is put on the line so that its last bit lands that far into the third. Returns the µs from the byte
 * received to the motor off, and whether interrupts were masked when it was received (the 1-Wire interrupt running).
 */
async function stopByteDuringRead(seed: number, offsetCycles: number): Promise<{ us: number; masked: boolean }> {
  const session = await atReadSlotInterrupt(seed);
  const { pen, port } = session;
  const chip = pen.idChips.cartridge.chip;
  pen.runUntil(() => pen.mcu.pc !== oneWireVectorWord, 1);
  pen.runUntil(() => chip?.protocolState === 'readMemory' && pen.mcu.pc === oneWireVectorWord, 1);
  const period = pen.totalCycles - session.slotCycle;
  const received = pen.totalCycles + period + offsetCycles;
  pen.runUntil(() => pen.totalCycles >= received - cyclesPerUartByte, 1);
  port.write(Uint8Array.of(FRAME_STOP));
  const rx: { at: number | null; masked: boolean } = { at: null, masked: false };
  const off = pen.runUntil(() => {
    if (rx.at === null && ((pen.mcu.data[UCSR0A] ?? 0) & rxComplete) !== 0) {
      rx.at = pen.totalCycles;
      rx.masked = !interruptsOn(pen);
    }
    return pen.plant.motorDrive() === 0;
  }, 10);
  const offCycle = pen.totalCycles;
  await closeSession(session);
  return { us: off === null || rx.at === null ? Number.NaN : (offCycle - rx.at) / cyclesPerUs, masked: rx.masked };
}

export async function measure(): Promise<Figure[]> {
  const figures: Figure[] = [];
  figures.push(...readTimes());
  progress(figures.map((f) => `${f.name} ${f.value}`).join(', '));
  figures.push(...(await writeTime()));
  figures.push(...(await sessionMarksTime()));
  figures.push(...(await estopDuringRead()));
  const offsets = [4, 40, 120, 200];
  const stops: { us: number; masked: boolean }[] = [];
  for (const [index, offset] of offsets.entries()) stops.push(await stopByteDuringRead(31 + index, offset));
  progress(`STOP byte → motor off, received ${offsets.join(', ')} cycles into a read slot's interrupt: ${stops.map((s) => `${round(s.us, 1)} µs${s.masked ? ' (masked)' : ''}`).join(', ')}`);
  figures.push({
    name: 'chip_stop_byte_motor_off_us', value: round(Math.max(...stops.map((stop) => stop.us)), 1), unit: 'µs',
    note: `from the STOP byte received ${offsets.join(', ')} cycles into a read slot's 1-Wire interrupt, the worst (fault_stop_byte_motor_off_us without a chip transaction)`,
  });
  return figures;
}
