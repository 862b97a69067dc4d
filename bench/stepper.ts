// Depth stepper: step ISR (TIMER1_COMPA) duration, instruction by instruction during a 0.5 → 2.0 mm move, and the move itself.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { timer1Config } from 'avr8js';
import { pen as penDescription } from '../hardware/description.ts';
import { progress, round, type Figure } from './figure.ts';
import { closeSession, cyclesPerMs, latestTelemetryAfter, pauseAfterHeartbeat, startSession } from './running-pen.ts';

const elfPath = fileURLToPath(new URL('../firmware/build/pen.elf', import.meta.url));
const stepVector = '__vector_11';  // TIMER1_COMPA on the ATmega328P
const compareInterruptEnable = 0x02;  // OCIE1A in TIMSK1: set while a move runs, cleared when it ends
const vectorTableWords = 26 * 2;  // 26 vectors of one JMP (2 words) each
const dispatchCycles = 2;  // what avr8js adds for entering an interrupt
const fromMm = 0.5;
const toMm = 2.0;

/** The vector's code as a word-address range [start, end): avr-nm gives bytes, the CPU's pc counts words. */
function vectorWords(name: string): { start: number; end: number } {
  const output = execFileSync('avr-nm', ['-S', '--size-sort', elfPath], { encoding: 'utf8' });
  const match = new RegExp(`^([0-9a-f]+) ([0-9a-f]+) T ${name}$`, 'm').exec(output);
  if (match?.[1] === undefined || match[2] === undefined) throw new Error(`${name} not found in ${elfPath}: rebuild with \`npm run firmware\``);
  const start = parseInt(match[1], 16) / 2;
  return { start, end: start + parseInt(match[2], 16) / 2 };
}

export async function measure(): Promise<Figure[]> {
  const vector = vectorWords(stepVector);
  const session = await startSession({ seed: 1, depthMm: fromMm });
  const { pen, device } = session;
  // A fresh beat first: a moving stepper counts as active output, and the move runs with the host loop paused.
  await pauseAfterHeartbeat(session);
  const commandCycle = pen.totalCycles;
  const reply = device.command('move_to', { depthUm: Math.round(toMm * 1000) });

  const isrCycles: number[] = [];
  let entrySp = -1;  // the stack pointer inside the vector; -1 while outside it
  let entryCycle = 0;
  let started = false;
  let endCycle = 0;
  const moveDone = (): boolean => {
    const { pc, SP } = pen.mcu;
    const cycle = pen.totalCycles;
    if (entrySp < 0 && pc === vector.start) {
      entrySp = SP;
      entryCycle = cycle;
    } else if (entrySp >= 0 && (pc < vector.start || pc >= vector.end)) {
      // Past the RETI, not merely in a called helper: the return address is popped, or another interrupt was
      // dispatched in the same step (avr8js then pushes again and adds its 2 dispatch cycles, not ours).
      const chained = SP === entrySp && pc < vectorTableWords;
      if (SP > entrySp || chained) {
        isrCycles.push(cycle - entryCycle - (chained ? dispatchCycles : 0));
        entrySp = -1;
      }
    }
    const enabled = ((pen.mcu.data[timer1Config.TIMSK] ?? 0) & compareInterruptEnable) !== 0;
    if (enabled) started = true;
    else if (started && endCycle === 0) endCycle = cycle;
    return started && !enabled && entrySp < 0;
  };
  if (pen.runUntil(moveDone, 1000) === null) throw new Error(`the move to ${toMm} mm did not finish within 1 s`);
  await reply;
  const telemetry = latestTelemetryAfter(session, penDescription.timing.telemetryPeriodMs + 10);
  if (telemetry?.fault !== 'none') progress(`SURPRISE stepper: the pen reported ${telemetry?.fault ?? 'nothing'} after the move`);
  const errorUm = Math.abs(pen.plant.trueDepthMm - toMm) * 1000;
  await closeSession(session);

  const worstCycles = Math.max(...isrCycles);
  const meanCycles = isrCycles.reduce((sum, cycles) => sum + cycles, 0) / isrCycles.length;
  const isrNote = `${stepVector} entry to after RETI (dispatch excluded), n=${isrCycles.length}`;
  return [
    { name: 'stepper_isr_max_cycles', value: worstCycles, unit: 'cycles', note: isrNote },
    { name: 'stepper_isr_mean_cycles', value: round(meanCycles, 1), unit: 'cycles', note: isrNote },
    {
      name: 'stepper_rate_upper_bound_steps_per_s', value: round(penDescription.board.cpuHz / worstCycles, 0), unit: 'steps/s',
      note: `upper bound, not a measurement: CPU clock / worst-case ISR cycles, ignoring every other interrupt (the configured maximum is ${penDescription.depthAxis.maxStepsPerSecond})`,
    },
    { name: 'depth_move_ms', value: round((endCycle - commandCycle) / cyclesPerMs, 2), unit: 'ms', note: `${fromMm} → ${toMm} mm, from the command's write to moving false, incl. line time` },
    { name: 'depth_move_final_error_um', value: round(errorUm, 2), unit: 'µm', note: `|true depth − ${toMm} mm| at rest` },
  ];
}
