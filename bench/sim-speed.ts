// Simulator speed: how many simulated MHz the virtual pen reaches running the real firmware image.
import { pen as penDescription } from '../hardware/description.ts';
import { VirtualPen } from '../hardware/sim/virtual-pen.ts';
import { progress, round, type Figure } from './figure.ts';

const warmUpSimMs = 500;
const measuredSimMs = 8000;
const chunkSimMs = 2000;

export function measure(): Promise<Figure[]> {
  const pen = new VirtualPen();
  // Past boot and JIT warm-up, so the figure is the steady state.
  pen.runFor(warmUpSimMs);
  let wallMs = 0;
  for (let doneSimMs = 0; doneSimMs < measuredSimMs; doneSimMs += chunkSimMs) {
    const startMs = performance.now();
    pen.runFor(chunkSimMs);
    wallMs += performance.now() - startMs;
    progress(`simulated ${doneSimMs + chunkSimMs} of ${measuredSimMs} ms`);
  }
  const realTimeFactor = measuredSimMs / wallMs;
  const simulatedMhz = (penDescription.board.cpuHz / 1e6) * realTimeFactor;
  return Promise.resolve([
    { name: 'sim_speed_mhz', value: round(simulatedMhz, 2), unit: 'MHz', note: `${measuredSimMs} ms simulated in ${round(wallMs, 0)} ms wall` },
    { name: 'sim_real_time_factor', value: round(realTimeFactor, 2), unit: 'x', note: 'simulated time / wall time; above 1 is faster than the chip' },
  ]);
}
