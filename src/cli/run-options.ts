// `pen run`'s values, each parsed and checked before anything connects: a refused command never touches the pen.
import { checkDepthMm, checkStrokesPerSecond, HostRefusedError } from '../../hal/limits.ts';
import { maxLoopRateHz } from '../control/loop.ts';
import { maxTreatmentSeconds } from '../control/session.ts';
import { clientRefFormat, clientRefPattern } from '../control/spacing.ts';
import { normalizePartId, RegistryRefusedError } from '../sterilization/registry.ts';
import { numberOption, UsageError } from './format.ts';

export interface RunFlags {
  readonly depth: string;
  readonly speed: string;
  readonly duration?: string | undefined;
  readonly cartridge?: string | undefined;
  readonly rate: string;
  readonly client?: string | undefined;
  readonly overrideSpacing?: string | undefined;
}

export interface RunValues {
  readonly depthMm: number;
  readonly strokesPerSecond: number;
  readonly durationS: number | null;
  /** The cartridge (its chip's ROM id) the session must find fitted; null: whichever is fitted. */
  readonly cartridgeId: string | null;
  readonly loopRateHz: number;
  /** The client's pseudonymous reference; null: none given (the session is recorded without one, spacing unchecked). */
  readonly clientRef: string | null;
  /** The clinician's reason to treat the client sooner than the spacing allows; null: none. */
  readonly spacingOverride: string | null;
}

/** The shortest treatment `pen run --duration` accepts: a 0 s treatment would be nothing but homing and arming. */
export const minDurationS = 1;
const maxReasonLength = 500;

/** --client and --override-spacing: a well-formed pseudonym, and a reason that says something, only with a client. */
function parseClient(flags: RunFlags): Pick<RunValues, 'clientRef' | 'spacingOverride'> {
  const clientRef = flags.client ?? null;
  if (clientRef !== null && !clientRefPattern.test(clientRef)) throw new UsageError(`--client "${clientRef}" is not a client reference: ${clientRefFormat}`);
  if (flags.overrideSpacing === undefined) return { clientRef, spacingOverride: null };
  if (clientRef === null) throw new UsageError('--override-spacing overrides the spacing of one client\'s sessions: give --client REF too');
  const reason = flags.overrideSpacing.trim();
  if (reason === '' || reason.length > maxReasonLength) {
    throw new UsageError(`--override-spacing needs a reason of 1–${maxReasonLength} characters, e.g. --override-spacing "finishing the session cut short by a needle jam"`);
  }
  return { clientRef, spacingOverride: reason };
}

/** --cartridge: the ROM id the fitted cartridge must have (pen run, pen doctor), or a usage error naming the format. */
export function parseCartridge(text: string | undefined): string | null {
  if (text === undefined) return null;
  try {
    return normalizePartId(text);
  } catch (error) {
    if (error instanceof RegistryRefusedError) throw new UsageError(`--cartridge: ${error.message}`);
    throw error;
  }
}

/**
 * Parses and checks every value of `pen run`. A value that is not a plain number is a usage error (exit 2); a
 * number outside the pen's limits is refused by the host (exit 5) with the allowed range; --rate outside its range
 * is a usage error, as it is the host's own setting; so are a malformed --client or --cartridge and an --override-spacing
 * without a reason or without a client.
 */
export function parseRunFlags(flags: RunFlags): RunValues {
  const depthMm = numberOption(flags.depth, '--depth', '1.0') ?? Number.NaN;
  const strokesPerSecond = numberOption(flags.speed, '--speed', '100') ?? Number.NaN;
  const durationS = numberOption(flags.duration, '--duration', '30') ?? null;
  const cartridgeId = parseCartridge(flags.cartridge);
  const loopRateHz = numberOption(flags.rate, '--rate', '100') ?? 100;
  if (loopRateHz < 1 || loopRateHz > maxLoopRateHz) throw new UsageError(`--rate ${flags.rate} Hz is outside 1–${maxLoopRateHz} Hz`);
  const client = parseClient(flags);
  checkDepthMm(depthMm);
  checkStrokesPerSecond(strokesPerSecond);
  if (durationS !== null && !(durationS >= minDurationS && durationS <= maxTreatmentSeconds)) {
    throw new HostRefusedError(`duration ${flags.duration ?? ''} s is outside ${minDurationS}–${maxTreatmentSeconds} s`);
  }
  return { depthMm, strokesPerSecond, durationS, cartridgeId, loopRateHz, ...client };
}
