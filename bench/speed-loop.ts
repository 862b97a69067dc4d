// Needle speed loop cost: simulated CPU cycles per call of motor_update_1ms (the 1 kHz PI loop and motor checks)
// while the needle runs, found by the function's address in the ELF and timed from its entry to its return. Then the
// main-loop pass, from one pen_take_bytes entry to the next: a framed command waits at most one pass to be read.
import { codeSymbol } from '../hardware/sim/elf-symbols.ts';
import { percentile, progress, type Figure } from './figure.ts';
import { closeSession, pauseAfterHeartbeat, startSession, type PenSession } from './running-pen.ts';

const calls = 150;

export async function measure(): Promise<Figure[]> {
  const session = await startSession({ seed: 1, depthMm: 1.0, strokesPerSecond: 100 });
  const { pen } = session;
  await pauseAfterHeartbeat(session);
  const { address, size } = codeSymbol(pen.elfPath, 'motor_update_1ms');
  const [first, end] = [address / 2, (address + size) / 2];
  const cpu = pen.mcu;
  const samples: number[] = [];
  let entrySp: number | null = null;
  let entryCycle = 0;
  // Entry: the pc lands on the first word. Return: the stack pointer is back above the return address, outside the
  // function. Interrupts that fire during a call are counted in it, as the main loop pays for them too.
  const done = pen.runUntil(() => {
    const pc = cpu.pc;
    if (entrySp === null) {
      if (pc === first) {
        entrySp = cpu.SP;
        entryCycle = pen.totalCycles;
      }
    } else if (cpu.SP === entrySp + 2 && (pc < first || pc >= end)) {
      samples.push(pen.totalCycles - entryCycle);
      entrySp = null;
    }
    return samples.length >= calls;
  }, 200);
  const passes = mainLoopPasses(session, 200);
  await closeSession(session);
  if (done === null) progress(`SURPRISE speed-loop: only ${samples.length} calls in 200 ms`);
  const note = `${samples.length} calls at 100 strokes/s, interrupts during a call included`;
  const passNote = `${passes.length} passes in 200 ms at 100 strokes/s, interrupts included; the longest carry a telemetry record`;
  return [
    { name: 'speed_loop_median_cycles', value: percentile(samples, 50), unit: 'cycles', note },
    { name: 'speed_loop_max_cycles', value: percentile(samples, 100), unit: 'cycles', note },
    { name: 'main_loop_pass_median_cycles', value: percentile(passes, 50), unit: 'cycles', note: passNote },
    { name: 'main_loop_pass_p99_cycles', value: percentile(passes, 99), unit: 'cycles', note: passNote },
    { name: 'main_loop_pass_max_cycles', value: percentile(passes, 100), unit: 'cycles', note: passNote },
  ];
}

/** Cycles between successive entries of pen_take_bytes (one main-loop pass each) over ms of simulated time. */
function mainLoopPasses({ pen }: PenSession, ms: number): number[] {
  const entry = codeSymbol(pen.elfPath, 'pen_take_bytes').address / 2;
  const passes: number[] = [];
  let last: number | null = null;
  pen.runUntil(() => {
    if (pen.mcu.pc === entry) {
      if (last !== null) passes.push(pen.totalCycles - last);
      last = pen.totalCycles;
    }
    return false;
  }, ms);
  return passes;
}
