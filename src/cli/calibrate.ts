// `pen calibrate`: the guided calibration with a gauge (src/calibration/procedure.ts) from the command line: the gauge read
// on its own port or typed at a prompt, live progress, every outcome recorded with an audit entry, Ctrl-C leaving the
// old calibration in force; and `pen calibration history` and `pen calibration restore-default`.
import { writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Command, Option } from 'commander';
import { RealClock } from '../../hardware/clock.ts';
import { pen, stepsPerMm as nominalStepsPerMm } from '../../hardware/description.ts';
import { openGauge, type Gauge } from '../../hal/gauge.ts';
import { PenDevice } from '../../hal/device.ts';
import {
  calibrationInput, channelRole, describeValues, runCalibration, type CalibrationChannel, type CalibrationEvent, type CalibrationOutcome,
} from '../calibration/procedure.ts';
import { renderCertificate } from '../calibration/certificate.ts';
import type { CalibrationRecord, CalibrationValues } from '../store/calibrations.ts';
import { defaultStorePath, PenStore } from '../store/store.ts';
import { auditActor, operatorName, penRecordIdentity, serviceRole } from '../store/actor.ts';
import { defaultKeysDir, KeyFiles } from '../provision/keys.ts';
import { connectPort } from './connect-port.ts';
import { ExitCode, exitCodeFor, UsageError } from './format.ts';
import { describeCause, onInterrupt } from './interrupt.ts';
import { keysDirOption } from './provision.ts';
import { openTarget, type Target } from './target.ts';

export interface CalibrateCommandOptions {
  readonly portOption: () => Option;
  readonly firmwareOption: () => Option;
  readonly dbOption: () => Option;
  readonly jsonOption: () => Option;
}

interface CalibrateFlags {
  readonly port?: string;
  readonly firmware?: string;
  readonly db?: string;
  readonly json?: boolean;
  readonly keysDir?: string;
  readonly gauge?: string;
  readonly technician: string;
  readonly gaugeId: string;
  readonly gaugeDue: string;
  readonly sensor?: boolean;
  readonly certificate?: string;
}

/** Today as YYYY-MM-DD in local time: a gauge due today may still be used today. */
const today = (): string => {
  const now = new Date();
  return `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}-${String(now.getDate()).padStart(2, '0')}`;
};

/** Checks the flags before anything connects: a usage error names what is wrong and what to give. */
function checkFlags(flags: CalibrateFlags): void {
  if (flags.technician.trim() === '') throw new UsageError('--technician needs the name of who calibrates, e.g. --technician "A. Smith"');
  if (flags.gaugeId.trim() === '') throw new UsageError('--gauge-id needs the gauge\'s id (its serial or inventory number)');
  const date = /^(\d{4})-(\d{2})-(\d{2})$/.exec(flags.gaugeDue);
  const valid = date !== null && new Date(Date.UTC(Number(date[1]), Number(date[2]) - 1, Number(date[3]))).toISOString().slice(0, 10) === flags.gaugeDue;
  if (!valid) throw new UsageError(`--gauge-due must be the date the gauge's own calibration is due, as YYYY-MM-DD (got "${flags.gaugeDue}")`);
  if (flags.gaugeDue < today()) {
    throw new UsageError(`gauge ${flags.gaugeId} was due for its own calibration on ${flags.gaugeDue}: a gauge past its due date cannot calibrate a pen; ` +
      'use a gauge whose calibration is current');
  }
}

/** The end of the typed readings (Ctrl-D, or a pipe that ran dry). */
class EndOfInput extends Error {}

/**
 * The gauge as a person reads it: each reading typed at a prompt (on stderr, so stdout keeps the progress), checked to
 * be millimetres near the point; a line that is not is explained and asked again. Lines typed ahead are kept in order.
 */
class TypedGauge implements Gauge {
  readonly description = 'readings typed at the prompt';
  /** The point being read, for the prompt and the plausibility check; set from the procedure's read events. */
  asking: { pointMm: number; text: string } = { pointMm: 0, text: 'gauge reading' };
  private readonly lines: string[] = [];
  private waiting: { resolve(line: string): void; reject(error: Error): void } | null = null;
  private ended = false;
  private readonly input = createInterface({ input: process.stdin, terminal: false });

  constructor(onEnd: () => void) {
    this.input.on('line', (line) => {
      const waiting = this.waiting;
      this.waiting = null;
      if (waiting === null) this.lines.push(line);
      else waiting.resolve(line);
    });
    // Lines typed ahead (a pipe) are still read after the input closes; the end counts once they run out.
    this.input.on('close', () => {
      this.ended = true;
      if (this.waiting === null) return;
      onEnd();
      this.waiting.reject(new EndOfInput('end of input'));
      this.waiting = null;
    });
    this.onEnd = onEnd;
  }

  private readonly onEnd: () => void;

  async read(): Promise<number> {
    for (;;) {
      process.stderr.write(`${this.asking.text}: gauge reading in mm? `);
      const line = await this.nextLine();
      const problem = typedReadingProblem(line, this.asking.pointMm);
      if (problem === null) return Number(line.trim().replace(/\s*mm$/i, ''));
      process.stderr.write(`  ${problem}; type it again\n`);
    }
  }

  close(): Promise<void> {
    this.input.close();
    return Promise.resolve();
  }

  private nextLine(): Promise<string> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.ended) {
      this.onEnd();
      return Promise.reject(new EndOfInput('end of input'));
    }
    return new Promise((resolve, reject) => { this.waiting = { resolve, reject }; });
  }
}

/** How far a typed reading may be from the point asked for: a typo (µm typed for mm, a slipped digit) is further. */
const typedReadingSpanMm = 0.5;

/** Why a typed line is not a reading (null when it is): a plain decimal in mm, near the point being read. */
export function typedReadingProblem(line: string, pointMm: number): string | null {
  const text = line.trim().replace(/\s*mm$/i, '');
  if (!/^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(text)) return `"${line.trim()}" is not a reading: type the gauge's value in mm, e.g. ${pointMm.toFixed(3)}`;
  const value = Number(text);
  if (Math.abs(value - pointMm) > typedReadingSpanMm) {
    return `${text} mm is more than ${typedReadingSpanMm} mm from the ${pointMm.toFixed(2)} mm point: type millimetres (e.g. ${pointMm.toFixed(3)}), ` +
      'and check that the gauge was zeroed on the tip';
  }
  return null;
}

/** The exit code of an outcome: 0 accepted, 1 rejected, 130 interrupted, else the failure's own (3 link, 5 refused). */
function exitCodeOf(outcome: CalibrationOutcome): number {
  if (outcome.verdict === 'accepted') return ExitCode.ok;
  if (outcome.verdict === 'rejected') return ExitCode.failure;
  return outcome.stoppedBy === 'interrupt' || outcome.stoppedBy === null ? ExitCode.interrupted : exitCodeFor(outcome.stoppedBy);
}

function summaryLines(outcome: CalibrationOutcome, record: CalibrationRecord, certificate: string | undefined): string[] {
  const lines = [`${outcome.verdict.toUpperCase()}${outcome.reason === null ? '' : `: ${outcome.reason}`}`];
  const unchanged = outcome.verdict === 'accepted' ? 'unchanged (the fit found the values in force)' : 'the old one';
  lines.push(outcome.newValues === null ? `calibration in force: ${unchanged}, ${describeValues(outcome.oldValues)}`
    : `calibration in force: ${describeValues(outcome.newValues)} (was ${describeValues(outcome.oldValues)})`);
  lines.push(`recorded as calibration #${record.id} (${(outcome.durationMs / 1000).toFixed(1)} s)${certificate === undefined ? '' : `; certificate ${certificate}`}`);
  return lines;
}

async function calibrate(flags: CalibrateFlags): Promise<number> {
  checkFlags(flags);
  const channel: CalibrationChannel = flags.sensor === true ? 'sensor' : 'depth';
  const json = flags.json === true;
  const say = (line: string, event?: object): void => console.log(json ? JSON.stringify({ event: line, ...event }) : line);
  const controller = new AbortController();
  let stopCause = '';
  const stopOnInterrupt = onInterrupt((cause) => {
    if (controller.signal.aborted) return;
    stopCause = describeCause(cause);
    say(`${stopCause}: stopping; the old calibration stays in force`);
    controller.abort();
  });
  const extraDevices: PenDevice[] = [];
  let target: Target | null = null;
  let gauge: Gauge | null = null;
  try {
    target = await openTarget({ port: flags.port, firmware: flags.firmware });
    const opened = target;
    opened.device.keys = new KeyFiles(flags.keysDir ?? defaultKeysDir());
    const typed = flags.gauge === undefined ? new TypedGauge(() => {
      if (controller.signal.aborted) return;
      stopCause = 'end of input';
      controller.abort();
    }) : null;
    gauge = typed ?? await openGauge(flags.gauge ?? '');
    say(`calibrating the ${channel === 'depth' ? 'depth steps' : 'depth sensor'} of ${opened.where} (serial ${opened.device.identity.serial || 'none'}) ` +
      `as ${channelRole[channel]} ${flags.technician}, gauge ${flags.gaugeId} (due ${flags.gaugeDue}; ${gauge.description})`);
    const store = PenStore.open(flags.db ?? defaultStorePath(), new RealClock());
    const actor = { ...auditActor(opened.device.identity), role: channelRole[channel] };  // the role the procedure stores in
    try {
      let outcome: CalibrationOutcome;
      try {
        outcome = await runCalibration({
          device: opened.device, gauge, channel, signal: controller.signal,
          onEvent: (event: CalibrationEvent) => {
            if (event.kind === 'read' && typed !== null) {
              typed.asking = { pointMm: event.pointMm, text: `${event.pointMm.toFixed(2)} mm from ${event.approach} (${event.index}/${event.count})` };
            }
            else if (event.kind !== 'read' || json) say(event.text, json ? event : undefined);
          },
          reconnect: async () => {
            const device = opened.virtualPen === null ? await connectPort(opened.where, true)
              : await PenDevice.connect(opened.virtualPen.openPort(), { clock: opened.virtualPen.clock });
            device.keys = opened.device.keys;
            extraDevices.push(device);
            return device;
          },
        });
      } catch (error) {
        store.audit(null, `calibrate_${channel}`, { target: opened.where, gaugeId: flags.gaugeId }, `refused: ${(error as Error).message}`, actor);
        throw error;
      }
      const device = extraDevices.at(-1) ?? opened.device;
      const needleSeconds = await device.usage().then((usage) => usage.needleSeconds, () => null);
      const record = store.calibrations.add(calibrationInput(outcome, {
        pen: penRecordIdentity(device.identity), technician: flags.technician, gaugeId: flags.gaugeId, gaugeDue: flags.gaugeDue, needleSeconds,
      }));
      store.audit(null, `calibrate_${channel}`, {
        target: opened.where, calibration: record.id, gaugeId: flags.gaugeId, gaugeDue: flags.gaugeDue, technician: flags.technician,
        old: outcome.oldValues, new: outcome.newValues, grants: [...opened.device.grantsUsed, ...extraDevices.flatMap((d) => d.grantsUsed)].map((g) => `${g.role}: ${g.command}`),
      }, outcome.verdict === 'accepted' ? 'ok' : `${outcome.verdict}: ${outcome.reason ?? ''}`, actor);
      if (flags.certificate !== undefined) writeFileSync(flags.certificate, renderCertificate(record));
      if (stopCause !== '' && outcome.verdict === 'aborted') say(`${stopCause}: calibration abandoned; the old calibration is in force`);
      const lines = summaryLines(outcome, record, flags.certificate);
      if (json) console.log(JSON.stringify({ summary: lines, record }));
      else for (const line of lines) console.log(line);
      return exitCodeOf(outcome);
    } finally {
      store.close();
    }
  } finally {
    stopOnInterrupt();
    await gauge?.close();
    for (const device of extraDevices) await device.close().catch(() => {});
    await target?.close();
  }
}

/** Registers `pen calibrate`. */
export function addCalibrateCommand(program: Command, options: CalibrateCommandOptions, setExitCode: (code: number) => void): void {
  const { acceptance } = pen.calibration;
  program
    .command('calibrate')
    .description('guided depth calibration with a gauge (technician; --sensor: the depth sensor\'s, engineer): the needle parks at ' +
      `${pen.calibration.pointsMm.join(', ')} mm with the motor off, approached from below (and from above at ` +
      `${pen.calibration.backlashPointsMm.join(', ')} mm for backlash); the gauge is read there ${pen.calibration.readingsPerPoint} times; ` +
      `a least-squares fit must meet residuals ±${acceptance.maxResidualUm} µm, backlash ±${acceptance.maxBacklashUm} µm and predicted error ` +
      `±${acceptance.maxPredictedErrorUm} µm before it is stored, then ±${acceptance.maxVerifyErrorUm} µm at ${pen.calibration.verifyPointsMm.join(', ')} mm ` +
      'after, or the old calibration is put back. Every outcome is recorded. Exits 0 accepted, 1 rejected (the criterion and point said), ' +
      '2 bad usage or a gauge past its own due date, 3 pen unreachable, 130 interrupted (the old calibration in force)')
    .requiredOption('--technician <name>', 'who calibrates, for the record')
    .requiredOption('--gauge-id <id>', 'the gauge\'s id (serial or inventory number), for the record')
    .requiredOption('--gauge-due <YYYY-MM-DD>', 'when the gauge\'s own calibration is due; a gauge past it is refused')
    .option('--gauge <port>', 'read a digital indicator on its own port: a serial path (9600 8N1; add ?baud=N for another rate) or ' +
      'tcp://HOST:PORT (pen sim --gauge); without it, type each reading at the prompt')
    .option('--sensor', 'calibrate the depth sensor against the carriage position, verified with the gauge (engineer)')
    .option('--certificate <file>', 'write the calibration certificate (HTML) of this calibration to the file')
    .addOption(keysDirOption())
    .addOption(options.portOption()).addOption(options.firmwareOption()).addOption(options.dbOption()).addOption(options.jsonOption())
    .action(async (flags: CalibrateFlags) => {
      setExitCode(await calibrate(flags));
    });
}

const describeRecord = (r: CalibrationRecord): string => {
  const values = (v: CalibrationValues | null): string => (v === null ? 'unchanged' : describeValues(v));
  const gauge = r.gaugeId === null ? 'no gauge' : `gauge ${r.gaugeId} (due ${r.gaugeDue ?? '?'})`;
  return `#${r.id} ${r.at} ${r.kind} ${r.verdict.toUpperCase()} pen ${r.pen.serial ?? '(no serial)'} by ${r.technician}, ${gauge}: ` +
    `${values(r.newValues)}${r.reason === null ? '' : `; ${r.reason}`}`;
};

/** `pen calibration history`: the store's calibration records, oldest first. */
export function calibrationHistory(flags: { db?: string; json?: boolean; pen?: string }): void {
  const store = PenStore.open(flags.db ?? defaultStorePath(), new RealClock());
  try {
    const records = store.calibrations.history(flags.pen);
    if (flags.json === true) console.log(JSON.stringify(records, null, 2));
    else if (records.length === 0) console.log(`no calibrations on record${flags.pen === undefined ? '' : ` for pen ${flags.pen}`}`);
    else for (const record of records) console.log(describeRecord(record));
  } finally {
    store.close();
  }
}

/**
 * `pen calibration restore-default`: the nominal step calibration of hardware/pen.json stored in the pen (technician's
 * grant), read back and recorded as kind restore_default, with an audit entry.
 */
export async function restoreDefaultCalibration(
  flags: { port?: string; firmware?: string; db?: string; json?: boolean; keysDir?: string; technician?: string; eeprom?: string },
): Promise<void> {
  const technician = flags.technician ?? operatorName();
  const target = await openTarget({ port: flags.port, firmware: flags.firmware, ...(flags.eeprom === undefined ? {} : { eeprom: flags.eeprom }) });
  const store = PenStore.open(flags.db ?? defaultStorePath(), new RealClock());
  const actor = { ...auditActor(target.device.identity), role: serviceRole('set_depth_calibration') };
  try {
    const { device } = target;
    device.keys = new KeyFiles(flags.keysDir ?? defaultKeysDir());
    const before = await device.calibration();
    const oldValues: CalibrationValues = { stepsPerMm: before.stepsPerMm, zeroOffsetMm: before.zeroOffsetMm, sensorZeroMv: before.sensorZeroMv, sensorMvPerMm: before.sensorMvPerMm };
    try {
      await device.setDepthCalibration({ stepsPerMm: nominalStepsPerMm, zeroOffsetMm: 0 });
    } catch (error) {
      store.audit(null, 'calibration_restore_default', { target: target.where, old: oldValues }, `refused: ${(error as Error).message}`, actor);
      throw error;
    }
    const after = await device.calibration();
    const newValues: CalibrationValues = { stepsPerMm: after.stepsPerMm, zeroOffsetMm: after.zeroOffsetMm, sensorZeroMv: after.sensorZeroMv, sensorMvPerMm: after.sensorMvPerMm };
    const needleSeconds = await device.usage().then((usage) => usage.needleSeconds, () => null);
    const record = store.calibrations.add({
      kind: 'restore_default', pen: penRecordIdentity(device.identity), technician, gaugeId: null, gaugeDue: null, verdict: 'accepted', reason: null,
      readings: [], fit: null, verification: null, oldValues, newValues, needleSeconds,
    });
    store.audit(null, 'calibration_restore_default', {
      target: target.where, calibration: record.id, old: oldValues, new: newValues, grants: device.grantsUsed.map((g) => `${g.role}: ${g.command}`),
    }, 'ok', actor);
    console.log(flags.json === true ? JSON.stringify(record) :
      `restored the default step calibration of ${target.where}: ${describeValues(newValues)} (was ${describeValues(oldValues)}); recorded as #${record.id}`);
  } finally {
    store.close();
    await target.close();
  }
}
