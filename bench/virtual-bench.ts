// The virtual bench's speed: simulated ms per wall ms with both MCUs running (the pen's firmware and the rig's Firmata,
// reporting as the HIL suite has it report), on one core, for each rig firmware built or fetched. Below 1 the bench
// falls behind the wall clock, and a real-time host's timings against it would mean nothing.
import { existsSync } from 'node:fs';
import { VirtualPen } from '../hardware/sim/virtual-pen.ts';
import { rigFirmwareHexPath, standardFirmataHexPath, VirtualRig } from '../hardware/sim/virtual-rig.ts';
import rigDescription from '../hardware/rig.json' with { type: 'json' };
import { progress, round, type Figure } from './figure.ts';

/** Past the rig firmware's boot (StandardFirmata blinks its version for about 1.8 s) and JIT warm-up. */
const warmUpSimMs = 2500;
const measuredSimMs = 8000;
const chunkSimMs = 2000;

const firmwares = [
  { figure: 'virtual_bench_real_time_factor_rig', path: rigFirmwareHexPath },
  { figure: 'virtual_bench_real_time_factor_standard_firmata', path: standardFirmataHexPath },
] as const;

function measureWith(firmwarePath: string): { readonly factor: number; readonly wallMs: number; readonly sliceCycles: number } {
  const pen = new VirtualPen();
  const rig = new VirtualRig(pen, { firmwarePath });
  const port = rig.openPort();
  pen.runFor(warmUpSimMs);
  // Firmata at work as in the suite: A0 and D8–D15 reported every samplingIntervalMs.
  const intervalMs = rigDescription.samplingIntervalMs;
  port.write(Uint8Array.from([0xf0, 0x7a, intervalMs & 0x7f, intervalMs >> 7, 0xf7, 0xc0, 1, 0xd1, 1]));
  let reportBytes = 0;
  port.onData((bytes) => { reportBytes += bytes.length; });
  let wallMs = 0;
  for (let doneSimMs = 0; doneSimMs < measuredSimMs; doneSimMs += chunkSimMs) {
    const startMs = performance.now();
    pen.runFor(chunkSimMs);
    wallMs += performance.now() - startMs;
    progress(`simulated ${doneSimMs + chunkSimMs} of ${measuredSimMs} ms (pen + rig running ${firmwarePath})`);
  }
  if (reportBytes === 0) throw new Error(`the rig (${firmwarePath}) sent no reports: the figure would not be of a working bench`);
  return { factor: measuredSimMs / wallMs, wallMs, sliceCycles: rig.sliceCycles };
}

export function measure(): Promise<Figure[]> {
  const present = firmwares.filter((firmware) => existsSync(firmware.path));
  if (present.length === 0) throw new Error(`no rig firmware: build ${rigFirmwareHexPath} or fetch ${standardFirmataHexPath} (npm run setup)`);
  return Promise.resolve(present.map(({ figure, path }) => {
    const { factor, wallMs, sliceCycles } = measureWith(path);
    return {
      name: figure, value: round(factor, 2), unit: 'x',
      note: `simulated ms per wall ms, pen + rig (${path.split('/').at(-1) ?? path}) in lock-step slices of ${sliceCycles} cycles, one core; ` +
        `${measuredSimMs} ms simulated in ${round(wallMs, 0)} ms wall; at least 1 is required`,
    };
  }));
}
