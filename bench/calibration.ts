// The guided calibration (src/calibration/procedure.ts) on virtual pens read by the virtual gauge: how long it takes in
// simulated time, its worst fit residual, and the true depth error over the window after it, on a nominal pen and on one
// at a tolerance corner of hardware/pen.json (home offset and travel scale at their limits, with backlash).
import { pen as description } from '../hardware/description.ts';
import { VirtualGauge } from '../hardware/sim/gauge.ts';
import { VirtualPen } from '../hardware/sim/virtual-pen.ts';
import { testKeys } from '../hal/auth.ts';
import { PenDevice } from '../hal/device.ts';
import { runCalibration } from '../src/calibration/procedure.ts';
import type { FitResult } from '../src/calibration/types.ts';
import { progress, round, type Figure } from './figure.ts';

/** Every 0.05 mm over the window: where the true depth error is looked at after the calibration. */
const windowStepMm = 0.05;

interface Plant {
  readonly name: string;
  readonly note: string;
  readonly offsetMm: number;
  readonly scaleError: number;
  readonly backlashMm: number;
}

async function calibrated(plant: Plant): Promise<Figure[]> {
  const pen = new VirtualPen({ seed: 7 });
  Object.assign(pen.plant, { offsetMm: plant.offsetMm, scaleError: plant.scaleError, backlashMm: plant.backlashMm });
  pen.start();
  const device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
  try {
    // A virtual pen's serial (SIM-…): the host answers its challenges with the published test keys.
    await device.provision('SIM-BENCH', testKeys);
    const outcome = await runCalibration({ device, gauge: new VirtualGauge(pen.plant, { seed: 7 }).asGauge() });
    if (outcome.verdict !== 'accepted') throw new Error(`calibration bench: the ${plant.name} pen's calibration was ${outcome.verdict}: ${outcome.reason ?? ''}`);
    const fit = outcome.fit as FitResult;
    const { min, max } = description.depthWindowMm;
    let worstUm = 0;
    // Approached from below, as a treatment comes to its depth.
    await device.depth.home();
    for (let depthMm = min; depthMm <= max + 1e-9; depthMm += windowStepMm) {
      const pointMm = Math.round(depthMm * 1000) / 1000;
      await device.depth.moveTo(pointMm);
      worstUm = Math.max(worstUm, Math.abs(pen.plant.trueDepthMm - pointMm) * 1000);
    }
    progress(`${plant.name}: ${outcome.newValues?.stepsPerMm ?? '?'} steps/mm, zero offset ${outcome.newValues?.zeroOffsetMm ?? '?'} mm, ` +
      `${(outcome.durationMs / 1000).toFixed(1)} s simulated`);
    const note = `${plant.note}; virtual gauge ${description.calibration.virtualGauge.noiseMm} mm noise, ${description.calibration.readingsPerPoint} readings a point`;
    return [
      { name: `calibration_${plant.name}_duration_s`, value: round(outcome.durationMs / 1000, 1), unit: 's', note: `simulated, preconditions to verified; ${note}` },
      { name: `calibration_${plant.name}_worst_residual_um`, value: round(Math.max(...fit.residuals.map((r) => Math.abs(r.residualUm))), 2), unit: 'µm', note },
      { name: `calibration_${plant.name}_window_error_um`, value: round(worstUm, 2), unit: 'µm',
        note: `worst |true − commanded depth| after, every ${windowStepMm} mm over ${min}–${max} mm from below; ${note}` },
    ];
  } finally {
    await device.close();
    await pen.stop();
  }
}

export async function measure(): Promise<Figure[]> {
  const { homeOffsetUm, depthScalePpm } = description.tolerances;
  return [
    ...await calibrated({ name: 'nominal', note: 'nominal pen', offsetMm: 0, scaleError: 0, backlashMm: 0 }),
    ...await calibrated({
      name: 'corner', note: `home offset +${homeOffsetUm} µm, scale −${depthScalePpm} ppm, backlash 15 µm`,
      offsetMm: homeOffsetUm / 1000, scaleError: -depthScalePpm / 1e6, backlashMm: 0.015,
    }),
  ];
}
