// `pen run`'s values, each parsed and checked before anything connects: a refused command never touches the pen.
import { checkDepthMm, checkStrokesPerSecond, HostRefusedError } from '../../hal/limits.ts';
import { maxLoopRateHz } from '../control/loop.ts';
import { maxTreatmentSeconds } from '../control/session.ts';
import { numberOption, UsageError } from './format.ts';

export interface RunFlags {
  readonly depth: string;
  readonly speed: string;
  readonly duration?: string | undefined;
  readonly cartridge: string;
  readonly rate: string;
}

export interface RunValues {
  readonly depthMm: number;
  readonly strokesPerSecond: number;
  readonly durationS: number | null;
  readonly cartridgeId: number;
  readonly loopRateHz: number;
}

/** The shortest treatment `pen run --duration` accepts: a 0 s treatment would be nothing but homing and arming. */
export const minDurationS = 1;
const maxCartridgeId = 0xffffffff;

/**
 * Parses and checks every value of `pen run`. A value that is not a plain number is a usage error (exit 2); a
 * number outside the pen's limits is refused by the host (exit 5) with the allowed range; --rate outside its range
 * is a usage error, as it is the host's own setting.
 */
export function parseRunFlags(flags: RunFlags): RunValues {
  const depthMm = numberOption(flags.depth, '--depth', '1.0') ?? Number.NaN;
  const strokesPerSecond = numberOption(flags.speed, '--speed', '100') ?? Number.NaN;
  const durationS = numberOption(flags.duration, '--duration', '30') ?? null;
  const cartridgeId = numberOption(flags.cartridge, '--cartridge', '1') ?? 1;
  const loopRateHz = numberOption(flags.rate, '--rate', '100') ?? 100;
  if (loopRateHz < 1 || loopRateHz > maxLoopRateHz) throw new UsageError(`--rate ${flags.rate} Hz is outside 1–${maxLoopRateHz} Hz`);
  checkDepthMm(depthMm);
  checkStrokesPerSecond(strokesPerSecond);
  if (durationS !== null && !(durationS >= minDurationS && durationS <= maxTreatmentSeconds)) {
    throw new HostRefusedError(`duration ${flags.duration ?? ''} s is outside ${minDurationS}–${maxTreatmentSeconds} s`);
  }
  if (!Number.isInteger(cartridgeId) || cartridgeId < 0 || cartridgeId > maxCartridgeId) {
    throw new HostRefusedError(`cartridge id ${flags.cartridge} is outside 0–${maxCartridgeId} (whole numbers)`);
  }
  return { depthMm, strokesPerSecond, durationS, cartridgeId, loopRateHz };
}
