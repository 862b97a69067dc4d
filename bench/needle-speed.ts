// Needle speed: puncture-rate error of the plant's true speed against the setpoint, at 50/100/150 strokes/s, nominal and heavy load.
import { progress, round, type Figure } from './figure.ts';
import { closeSession, startSession } from './running-pen.ts';

const setpoints = [50, 100, 150] as const;
const loads = ['nominal', 'heavy'] as const;
const settleMs = 1500;
const samplePeriodMs = 10;
const sampleCount = 100;  // 1 s of samples

async function errorsPercent(strokesPerSecond: number, load: (typeof loads)[number], seed: number): Promise<number[]> {
  const session = await startSession({ seed, depthMm: 1.0, strokesPerSecond, load, settleMs });  // the needle runs only inside the window
  const errors: number[] = [];
  for (let i = 0; i < sampleCount; i++) {
    await session.pen.clock.sleep(samplePeriodMs);
    errors.push((100 * (session.pen.plant.strokesPerSecond - strokesPerSecond)) / strokesPerSecond);
  }
  const fault = session.device.telemetry?.fault ?? 'no telemetry';
  if (fault !== 'none') progress(`SURPRISE needle ${strokesPerSecond} strokes/s ${load}: the pen reported ${fault}`);
  await closeSession(session);
  return errors;
}

export async function measure(): Promise<Figure[]> {
  const figures: Figure[] = [];
  let seed = 1;
  for (const strokesPerSecond of setpoints) {
    for (const load of loads) {
      const errors = await errorsPercent(strokesPerSecond, load, seed++);
      const meanPercent = errors.reduce((sum, error) => sum + error, 0) / errors.length;
      const maxPercent = Math.max(...errors.map(Math.abs));
      const prefix = `needle_${strokesPerSecond}sps_${load}`;
      const note = `true speed every ${samplePeriodMs} ms for ${sampleCount * samplePeriodMs} ms after ${settleMs} ms settling`;
      figures.push({ name: `${prefix}_mean_error_percent`, value: round(meanPercent, 2), unit: '%', note: `signed; ${note}` });
      figures.push({ name: `${prefix}_max_error_percent`, value: round(maxPercent, 2), unit: '%', note: `largest |error|; ${note}` });
      progress(`${strokesPerSecond} strokes/s, ${load} load: mean ${round(meanPercent, 2)} %, max ${round(maxPercent, 2)} %`);
    }
  }
  return figures;
}
