// `pen status` and `pen stop` where another process may hold the pen: status attaches read-only to the holder's
// status socket (or opens the pen itself when nobody holds it); stop relays STOP through the holder, which sends it
// on the link it holds, because STOP must reach the pen whoever holds it.
import type { Telemetry } from '../../hal/device.ts';
import { LinkLostError } from '../../hal/link/reliable-link.ts';
import { BusyError, describeTelemetry, ExitCode, numberOption, UsageError } from './format.ts';
import { onInterrupt } from './interrupt.ts';
import { commandLine, connectToOwner, nextOfType, type OwnerConnection, type OwnerInfo } from './status-socket.ts';
import { nameTarget, openTarget, type TargetName } from './target.ts';
import { RealClock } from '../../hardware/clock.ts';
import { defaultStorePath, PenStore } from '../store/store.ts';
import { describeCalibrationDue, penCalibrationDue } from '../calibration/due.ts';

export interface StatusFlags {
  readonly port?: string;
  readonly eeprom?: string;
  readonly firmware?: string;
  readonly db?: string;
  readonly json?: boolean;
  readonly watch?: boolean;
  readonly interval?: string;
}

export const intervalRange = { minMs: 50, maxMs: 60_000, defaultMs: 250 } as const;

/** How long `pen status` waits for the holder's first telemetry, and `pen stop` for the holder to confirm STOP. */
const ownerAnswerMs = 3000;

export function intervalOption(value: string | undefined): number {
  const ms = numberOption(value, '--interval', String(intervalRange.defaultMs)) ?? intervalRange.defaultMs;
  if (!Number.isInteger(ms) || ms < intervalRange.minMs || ms > intervalRange.maxMs) {
    throw new UsageError(`--interval ${value ?? ''} ms is outside ${intervalRange.minMs}–${intervalRange.maxMs} ms (whole milliseconds; telemetry comes every 50 ms)`);
  }
  return ms;
}

/** HH:MM:SS.mmm, local time. */
export function timeOfDay(at: Date): string {
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())}.${String(at.getMilliseconds()).padStart(3, '0')}`;
}

export function describeOwner(owner: OwnerInfo): string {
  return `pid ${owner.pid}'s session (${owner.command}, since ${timeOfDay(new Date(owner.since))})`;
}

/** Prints telemetry records: once, or (watching) at most one per interval, each line time-stamped. */
function statusPrinter(
  flags: StatusFlags, where: string, owner: OwnerInfo | null, intervalMs: number, extra: Record<string, unknown> = {},
): (telemetry: Telemetry, at: Date) => void {
  let lastPrintedMs = -Infinity;
  return (telemetry, at) => {
    if (at.getTime() - lastPrintedMs < intervalMs) return;
    lastPrintedMs = at.getTime();
    if (flags.json === true) {
      console.log(JSON.stringify({ target: where, at: at.toISOString(), ...(owner === null ? {} : { heldBy: owner }), ...telemetry, ...extra }));
    } else if (flags.watch === true) {
      console.log(describeTelemetry(telemetry).split('\n').map((line) => `${timeOfDay(at)}${line}`).join('\n'));
    } else {
      console.log(`${where}:\n${describeTelemetry(telemetry)}`);
    }
  };
}

/** `pen status`: attached to the holder of the pen when there is one, else on a link of its own. Returns the exit code. */
export async function statusCommand(flags: StatusFlags): Promise<number> {
  const intervalMs = intervalOption(flags.interval);
  const name = nameTarget({ port: flags.port, eeprom: flags.eeprom });
  for (let attempt = 0; ; attempt++) {
    const connection = name.key === null ? null : await connectToOwner(name.key, name.where);
    if (connection !== null) return watchThroughOwner(connection, name, flags, intervalMs);
    try {
      return await watchOwnLink(name, flags, intervalMs);
    } catch (error) {
      // Another process took the pen between our look and our claim: attach to it instead.
      if (!(error instanceof BusyError) || attempt > 0) throw error;
    }
  }
}

async function watchOwnLink(name: TargetName, flags: StatusFlags, intervalMs: number): Promise<number> {
  const target = await openTarget({
    port: flags.port, eeprom: flags.eeprom, firmware: flags.firmware, timeMode: flags.watch === true ? 'real' : 'virtual',
  });
  try {
    // The calibration-due state needs get_usage and the store: on our own link only (the holder relays telemetry alone).
    const store = PenStore.open(flags.db ?? defaultStorePath(), new RealClock());
    const calibration = await penCalibrationDue(target.device, store, store.epochMs()).finally(() => store.close());
    const print = statusPrinter(flags, name.where, null, intervalMs, { calibration });
    if (flags.watch === true && flags.json !== true) console.log(`${name.where} (every ${intervalMs} ms; Ctrl-C to stop):`);
    print(await target.device.status(), new Date());
    if (flags.json !== true) console.log(describeCalibrationDue(calibration));
    if (flags.watch !== true) return ExitCode.ok;
    target.device.onTelemetry((telemetry) => print(telemetry, new Date()));
    let stopListening = (): void => {};
    const ended = await new Promise<Error | null>((resolve) => {
      stopListening = onInterrupt(() => resolve(null));
      target.device.onLinkLost(resolve);
    }).finally(() => stopListening());
    if (ended !== null) throw ended instanceof LinkLostError ? ended : new LinkLostError(ended.message);
    return ExitCode.ok;
  } finally {
    await target.close();
  }
}

async function watchThroughOwner(connection: OwnerConnection, name: TargetName, flags: StatusFlags, intervalMs: number): Promise<number> {
  const { owner } = connection;
  try {
    if (flags.json !== true) console.log(`attached read-only to ${describeOwner(owner)}, which holds ${name.where}:`);
    connection.send({ type: 'watch' });
    const first = await nextOfType(connection, ['telemetry'], ownerAnswerMs);
    if (first === null) {
      throw new BusyError(`busy: pid ${owner.pid} (${owner.command}) holds ${name.where} but sent no telemetry within ${ownerAnswerMs} ms`);
    }
    const print = statusPrinter(flags, name.where, owner, intervalMs);
    print(first.telemetry, new Date(first.at));
    if (flags.watch !== true) return ExitCode.ok;
    const ended = { byInterrupt: false };
    const stopListening = onInterrupt(() => {
      ended.byInterrupt = true;
      connection.close();
    });
    try {
      for (let message = await connection.next(); message !== null; message = await connection.next()) {
        if (message.type === 'telemetry') print(message.telemetry, new Date(message.at));
      }
    } finally {
      stopListening();
    }
    if (!ended.byInterrupt && flags.json !== true) console.log(`${timeOfDay(new Date())} pid ${owner.pid} released ${name.where}; status ends`);
    return ExitCode.ok;
  } finally {
    connection.close();
  }
}

export interface StopFlags {
  readonly port?: string;
  readonly eeprom?: string;
  readonly json?: boolean;
}

/**
 * When another process holds the pen, has it send STOP on its link and prints what the pen reports after it; returns
 * the holder that sent it, or null when nobody holds the pen (the caller then opens it and stops it itself).
 */
export async function relayStop(flags: StopFlags): Promise<{ readonly where: string; readonly owner: OwnerInfo } | null> {
  const name = nameTarget({ port: flags.port, eeprom: flags.eeprom });
  if (name.key === null) return null;
  const connection = await connectToOwner(name.key, name.where);
  if (connection === null) return null;
  const { owner } = connection;
  try {
    connection.send({ type: 'stop', from: `pid ${process.pid} (${commandLine()})` });
    const reply = await nextOfType(connection, ['stopped', 'error'], ownerAnswerMs);
    if (reply === null) {
      throw new LinkLostError(`STOP not confirmed: pid ${owner.pid} (${owner.command}) holds ${name.where} and did not answer within ${ownerAnswerMs} ms ` +
        '(without its heartbeats the pen goes safe by itself; use the pen\'s E-stop if in doubt)');
    }
    if (reply.type === 'error') throw new Error(`STOP through pid ${owner.pid} (${owner.command}) failed: ${reply.message}`);
    const t = reply.telemetry;
    if (flags.json === true) {
      console.log(JSON.stringify({ target: name.where, stoppedThrough: owner, ...(t ?? {}) }));
    } else {
      const state = t === null ? 'no telemetry yet' : `state ${t.state}, needle ${t.needleOn ? 'ON' : 'off'}`;
      console.log(`stopped ${name.where} through ${describeOwner(owner)}: ${state}`);
    }
    return { where: name.where, owner };
  } finally {
    connection.close();
  }
}
