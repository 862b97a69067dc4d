// CLI output and input: exit codes, error mapping, identity and telemetry text, number options.
import { PenRefusedError, ProtocolMismatchError, HostRefusedError, type PenIdentity, type Telemetry } from '../../hal/device.ts';
import { LinkLostError } from '../../hal/link/reliable-link.ts';
import { TransportError } from '../../hal/link/transport.ts';
import { SessionRefusedError } from '../control/session.ts';

/** Exit codes a script can act on. */
export const ExitCode = {
  ok: 0, failure: 1, usage: 2, link: 3, protocolMismatch: 4, refused: 5, treatmentFaulted: 6, busy: 7, interrupted: 130,
} as const;

export const exitCodeHelp =
  'Exit codes: 0 ok, 1 failure, 2 bad usage, 3 link failed or lost, 4 protocol mismatch, 5 refused (by the host or the pen), ' +
  '6 treatment ended by a fault (pen safe), 7 busy (another process holds the pen; it is named), 130 interrupted (pen stopped first).';

export class UsageError extends Error {}

/** Another process holds the pen's link; the message names it (pid, command). */
export class BusyError extends Error {}

export function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError) return ExitCode.usage;
  if (error instanceof BusyError) return ExitCode.busy;
  if (error instanceof ProtocolMismatchError) return ExitCode.protocolMismatch;
  if (error instanceof LinkLostError || error instanceof TransportError) return ExitCode.link;
  if (error instanceof PenRefusedError || error instanceof HostRefusedError || error instanceof SessionRefusedError) return ExitCode.refused;
  return ExitCode.failure;
}

/** A plain decimal number: optional sign, digits, optional fraction. No hex, exponent, Infinity or spaces. */
const plainDecimal = /^[+-]?(\d+(\.\d*)?|\.\d+)$/;

/** Parses a numeric option, or throws a usage error naming the option, what is allowed and an example. */
export function numberOption(value: string | undefined, name: string, example: string): number | undefined {
  if (value === undefined) return undefined;
  if (!plainDecimal.test(value)) {
    throw new UsageError(`${name} must be a plain decimal number (digits, an optional sign and decimal point), e.g. ${name} ${example} (got "${value}")`);
  }
  return Number(value);
}

export function describeIdentity(identity: PenIdentity, where: string): string {
  return [
    `pen ${identity.boardName} on ${where}, serial ${identity.serial === '' ? '(none: not provisioned)' : identity.serial}`,
    `  firmware ${identity.firmwareVersion} (build ${identity.buildId}), protocol version ${identity.protocolVersion}`,
    `  last reset: ${identity.resetCauseText}`,
  ].join('\n');
}

export function describeTelemetry(t: Telemetry): string {
  const fault = t.fault === 'none' ? 'no fault' : `FAULT ${t.fault}: ${t.faultText}`;
  return [
    `  state ${t.state.replace('_', ' ')}, ${fault}, up ${(t.uptimeMs / 1000).toFixed(2)} s`,
    `  depth ${t.depthMm.toFixed(3)} mm (sensor ${t.sensedDepthMm.toFixed(3)} mm)${t.homed ? '' : ', not homed'}; ` +
      `needle ${t.needleOn ? `${t.strokesPerSecond.toFixed(1)} strokes/s` : 'off'}, ${t.motorCurrentMa} mA`,
    `  ${t.temperatureC.toFixed(1)} °C, supply ${t.supplyVolts.toFixed(2)} V; cartridge ${t.cartridgePresent ? (t.cartridgeCleared ? 'cleared' : 'fitted, not cleared') : 'missing'}` +
      `${t.estopTripped ? '; E-STOP TRIPPED' : ''}${t.footswitchPressed ? '; footswitch pressed' : ''}; home switch ${t.homeSwitchPressed ? 'pressed' : 'open'}`,
  ].join('\n');
}

/** One line for a live display: state, depth, speed, current, temperature, elapsed. */
export function statusLine(phase: string, t: Telemetry, elapsedS: number, plannedS: number | null): string {
  const elapsed = plannedS === null ? `${elapsedS.toFixed(1)} s` : `${elapsedS.toFixed(1)}/${plannedS} s`;
  return `${phase.padEnd(8)} depth ${t.depthMm.toFixed(2)} mm  ${t.strokesPerSecond.toFixed(1).padStart(5)} strokes/s  ` +
    `${String(t.motorCurrentMa).padStart(4)} mA  ${t.temperatureC.toFixed(1)} °C  elapsed ${elapsed}`;
}
