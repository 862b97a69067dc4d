// `pen doctor`: a board check for bring-up, as a pass/fail table. Identity and protocol version; the calibration in
// EEPROM; every input's level; every sensor against its plausible range (hardware/pen.json limits); a stepper jog (home,
// 0.5 mm, back) that watches the home switch and the depth sensor follow the step count; with --spin, the fitted parts
// checked against the parts registry, then a short armed spin-up at 50 strokes/s that checks the tach and the motor
// current (it uses the fitted cartridge and nosecone, recorded as a session); the status LED as a check for the eye. Each check
// is bounded in time, and the pen is stopped at the end whatever happened. Exit 0 all passed, 1 a check failed, 3 the
// link failed.
import { Option, type Command } from 'commander';
import { RealClock } from '../../hardware/clock.ts';
import { pen as description, stepsPerMm as nominalStepsPerMm } from '../../hardware/description.ts';
import { PROTOCOL_VERSION, type FaultName } from '../../hardware/generated/protocol.ts';
import { PenFaultError, PenRefusedError, type DepthCalibration, type PenDevice, type Telemetry } from '../../hal/device.ts';
import { LinkLostError } from '../../hal/link/reliable-link.ts';
import { TransportError } from '../../hal/link/transport.ts';
import { auditActor, penRecordIdentity } from '../store/actor.ts';
import { defaultStorePath, PenStore } from '../store/store.ts';
import { checkFittedParts, type PreparedParts } from '../control/session.ts';
import { ExitCode } from './format.ts';
import { parseCartridge } from './run-options.ts';
import { openTarget } from './target.ts';

export type CheckStatus = 'pass' | 'fail' | 'skip' | 'look';

export interface CheckResult {
  readonly id: string;
  readonly title: string;
  readonly status: CheckStatus;
  /** What was found (for a skip: why it was not run; for a look: what to look for). */
  readonly detail: string;
  /** What a healthy board gives. */
  readonly expected: string;
}

export interface DoctorFlags {
  readonly port?: string;
  readonly firmware?: string;
  readonly json?: boolean;
  readonly db?: string;
  readonly spin?: boolean;
  readonly cartridge?: string;
}

const { limits, needleDrive, depthAxis, sensors } = description;
const jogDepthMm = description.depthWindowMm.min;
const spinStrokesPerSecond = needleDrive.minStrokesPerSecond;
const spinMs = 1200;
/** A motor that draws less than this while driven is not connected (the shunt reads a few mA of noise). */
const minRunningCurrentMa = 50;
const mismatchToleranceMm = depthAxis.mismatchToleranceUm / 1000;
/** Bounds, in real time: a check that has no result by then fails. */
const checkBoundMs = 6000;
const stopBoundMs = 3000;

/** The table the firmware converts NTC counts with (hardware/generate.ts ntcTable), and its interpolation (sensors.c). */
function ntcTableDeciC(): number[] {
  const { ntcPullupOhms, ntcR25Ohms, ntcBeta } = sensors;
  return Array.from({ length: 33 }, (_, i) => {
    const counts = Math.min(Math.max(i * 32, 1), 1022);
    const ohms = (ntcPullupOhms * counts) / (1023 - counts);
    const kelvin = 1 / (1 / 298.15 + Math.log(ohms / ntcR25Ohms) / ntcBeta);
    return Math.round((kelvin - 273.15) * 10);
  });
}

function temperatureAtCounts(counts: number): number {
  const table = ntcTableDeciC();
  const index = Math.min(Math.floor(counts / 32), table.length - 2);
  const low = table[index] ?? 0;
  const high = table[index + 1] ?? 0;
  return (low + Math.trunc(((high - low) * (counts - index * 32)) / 32)) / 10;
}

/** The temperatures the firmware reports at its NTC open and short limits: a reading beyond them is a broken sensor. */
const ntcOpenC = temperatureAtCounts(limits.ntcOpenCounts);
const ntcShortC = temperatureAtCounts(limits.ntcShortCounts);

/** The depth sensor's output, in mV, from the sensed depth in telemetry and the calibrations that produced it. */
function depthSensorMv(t: Telemetry, calibration: Pick<DepthCalibration, 'stepsPerMm' | 'zeroOffsetMm' | 'sensorZeroMv' | 'sensorMvPerMm'>): number {
  const carriageMm = ((t.sensedDepthMm - calibration.zeroOffsetMm) * calibration.stepsPerMm) / nominalStepsPerMm;
  return Math.round(calibration.sensorZeroMv + calibration.sensorMvPerMm * carriageMm);
}

/** Faults the pen will not clear while their cause persists, and the check that reads that cause. */
const faultCheck: Partial<Record<FaultName, string>> = {
  estop: 'estop', cartridge_removed: 'cartridge', over_temperature: 'temperature', temperature_sensor: 'temperature',
  supply_out_of_range: 'supply', depth_sensor: 'depth-sensor',
};

const isLinkError = (error: unknown): boolean => error instanceof LinkLostError || error instanceof TransportError;
const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));
const mm = (value: number): string => `${value.toFixed(3)} mm`;

function faultText(error: unknown): string {
  if (error instanceof PenFaultError) return `the pen latched ${error.fault}: ${error.message.replace(/^pen fault [a-z_]+: /, '')}`;
  return messageOf(error);
}

/** Rejects with a timeout after ms (real time), without keeping the process alive after promise settles. */
function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

class Checks {
  readonly results: CheckResult[] = [];
  linkLost: Error | null = null;

  add(id: string, title: string, status: CheckStatus, detail: string, expected: string): void {
    this.results.push({ id, title, status, detail, expected });
  }

  status(id: string): CheckStatus | undefined {
    return this.results.find((result) => result.id === id)?.status;
  }

  /** Runs one bounded check: a link failure aborts the doctor (exit 3); any other error fails the check. */
  async run(id: string, title: string, expected: string, body: () => Promise<{ ok: boolean; detail: string }>): Promise<boolean> {
    let ok = false;
    let detail: string;
    try {
      ({ ok, detail } = await bounded(body(), checkBoundMs, title));
    } catch (error) {
      if (isLinkError(error)) throw error;
      detail = faultText(error);
    }
    if (this.linkLost !== null) throw this.linkLost;
    this.add(id, title, ok ? 'pass' : 'fail', detail, expected);
    return ok;
  }

  get failed(): CheckResult[] {
    return this.results.filter((result) => result.status === 'fail');
  }
}

interface DepthPoint {
  readonly where: string;
  readonly stepsMm: number;
  readonly sensedMm: number;
  readonly switchPressed: boolean;
}

const point = (where: string, t: Telemetry): DepthPoint => ({ where, stepsMm: t.depthMm, sensedMm: t.sensedDepthMm, switchPressed: t.homeSwitchPressed });

/** Polls until the needle is still and the motor off, or the bound passes; returns the last status. */
async function settle(device: PenDevice, boundMs: number): Promise<Telemetry> {
  const deadline = performance.now() + boundMs;
  let t = await device.status();
  while ((t.moving || t.needleOn) && performance.now() < deadline) {
    await device.clock.sleep(20);
    t = await device.status();
  }
  return t;
}

async function identityAndSensors(device: PenDevice, checks: Checks, notes: string[]): Promise<{ now: Telemetry; persistent: FaultName | null }> {
  const id = device.identity;
  const expectedIdentity = `board ${description.board.name}, protocol version ${PROTOCOL_VERSION} (this host's)`;
  const identityOk = id.boardName === description.board.name && id.protocolVersion === PROTOCOL_VERSION;
  const hostFirmware = description.board.firmwareVersion.join('.');
  checks.add('identity', 'identity and protocol version', identityOk ? 'pass' : 'fail',
    `${id.boardName}, firmware ${id.firmwareVersion} (build ${id.buildId})${id.firmwareVersion === hostFirmware ? '' : ` (this host's sources: ${hostFirmware})`}, ` +
    `protocol version ${id.protocolVersion}; last reset: ${id.resetCauseText}`, expectedIdentity);

  const read: { calibration: DepthCalibration | null } = { calibration: null };
  await checks.run('calibration', 'calibration in EEPROM', 'a readable calibration: source default (none stored yet) or stored, not invalid', async () => {
    const c = await device.calibration();
    read.calibration = c;
    return {
      ok: c.source !== 'invalid',
      detail: `${c.source}${c.source === 'invalid' ? ': neither EEPROM copy passes its CRC; store a calibration again' : ''} (${c.storedCount} stored so far): ` +
        `${c.stepsPerMm.toFixed(2)} steps/mm, zero offset ${mm(c.zeroOffsetMm)}; depth sensor ${c.sensorZeroMv} mV + ${c.sensorMvPerMm} mV/mm`,
    };
  });

  // A fault latched before we came (a previous session, a reset) is cleared when its cause is gone; one whose cause
  // persists fails the check that reads the cause.
  let now = await device.status();
  let persistent: FaultName | null = null;
  if (now.state === 'fault') {
    const latched = now.fault;
    try {
      await device.clearFault();
      notes.push(`fault ${latched} was latched at start (${now.faultText}); cleared: its cause is gone`);
    } catch (error) {
      if (isLinkError(error) || !(error instanceof PenRefusedError)) throw error;
      persistent = latched;
      notes.push(`fault ${latched} is latched (${now.faultText}) and the pen will not clear it: its cause persists`);
    }
    now = await device.status();
  }
  const latchedFor = (id: string): string | null =>
    persistent !== null && faultCheck[persistent] === id ? `; the pen holds fault ${persistent}: ${now.faultText}` : null;
  const input = (id: string, title: string, ok: boolean, detail: string, expected: string): void => {
    const latched = latchedFor(id);
    checks.add(id, title, ok && latched === null ? 'pass' : 'fail', `${detail}${latched ?? ''}`, expected);
  };
  input('estop', 'e-stop loop', !now.estopTripped, now.estopTripped ? 'tripped (loop open)' : 'closed, not tripped', 'not tripped');
  input('cartridge', 'cartridge switch', now.cartridgePresent, now.cartridgePresent ? 'cartridge present' : 'no cartridge', 'cartridge present');
  input('footswitch', 'footswitch', !now.footswitchPressed, now.footswitchPressed ? 'pressed' : 'released', 'released');
  checks.add('home-switch', 'home switch (level)', 'pass', `${now.homeSwitchPressed ? 'pressed' : 'open'} (its change is checked by the jog)`,
    'either level here: where the needle stands is unknown until homed');
  const supplyMv = Math.round(now.supplyVolts * 1000);
  input('supply', 'supply voltage', supplyMv >= limits.supplyMinMv && supplyMv <= limits.supplyMaxMv, `${now.supplyVolts.toFixed(2)} V`,
    `${(limits.supplyMinMv / 1000).toFixed(2)}–${(limits.supplyMaxMv / 1000).toFixed(2)} V`);
  const c = now.temperatureC;
  const temperatureLimitC = limits.temperatureLimitDeciC / 10;
  input('temperature', 'temperature (NTC)', c > ntcOpenC && c < ntcShortC && c <= temperatureLimitC,
    `${c.toFixed(1)} °C${c <= ntcOpenC ? ': the NTC reads open' : c >= ntcShortC ? ': the NTC reads shorted' : c > temperatureLimitC ? ': too hot' : ''}`,
    `NTC neither open (≤ ${ntcOpenC.toFixed(1)} °C, ADC ≥ ${limits.ntcOpenCounts}) nor shorted (≥ ${ntcShortC.toFixed(1)} °C, ADC ≤ ${limits.ntcShortCounts}); ` +
    `at most ${temperatureLimitC.toFixed(1)} °C`);
  const { calibration } = read;
  const cal = calibration ?? { stepsPerMm: nominalStepsPerMm, zeroOffsetMm: 0, sensorZeroMv: sensors.depthSensorZeroMv, sensorMvPerMm: sensors.depthSensorMvPerMm };
  const depthMv = depthSensorMv(now, cal);
  input('depth-sensor', 'depth sensor output', depthMv >= limits.depthSensorMinMv && depthMv <= limits.depthSensorMaxMv,
    `about ${depthMv} mV (sensed depth ${mm(now.sensedDepthMm)}, through the calibration${calibration === null ? ', nominal: the calibration could not be read' : ''})`,
    `${limits.depthSensorMinMv}–${limits.depthSensorMaxMv} mV`);
  return { now, persistent };
}

async function jog(device: PenDevice, checks: Checks, blocked: string | null): Promise<void> {
  const titles = {
    homing: 'homing (home switch found)',
    switch: 'jog: home switch follows the needle',
    depth: 'jog: depth sensor follows the step count',
  } as const;
  const expected = {
    homing: 'the home switch is found and opens on the back-off; 0 mm is set there',
    switch: `open at ${jogDepthMm.toFixed(2)} mm, pressed back at home`,
    depth: `sensor within ±${mm(mismatchToleranceMm)} of the step count (the firmware's mismatch tolerance) at home, ${jogDepthMm.toFixed(2)} mm and back`,
  } as const;
  if (blocked !== null) {
    checks.add('homing', titles.homing, 'skip', blocked, expected.homing);
    checks.add('jog-switch', titles.switch, 'skip', blocked, expected.switch);
    checks.add('jog-depth', titles.depth, 'skip', blocked, expected.depth);
    return;
  }
  const points: DepthPoint[] = [];
  const homed = await checks.run('homing', titles.homing, expected.homing, async () => {
    await device.depth.home(4000);
    const t = await device.status();
    points.push(point('after homing', t));
    return { ok: t.homed && t.state === 'idle', detail: `homed: ${mm(t.depthMm)} by steps, sensor ${mm(t.sensedDepthMm)}, switch ${t.homeSwitchPressed ? 'pressed' : 'open'}` };
  });
  if (!homed) {
    const why = 'not run: homing failed';
    checks.add('jog-switch', titles.switch, 'skip', why, expected.switch);
    checks.add('jog-depth', titles.depth, 'skip', why, expected.depth);
    return;
  }
  let failure: unknown = null;
  try {
    await bounded((async () => {
      await device.depth.moveTo(jogDepthMm, 2000);
      points.push(point(`at ${jogDepthMm.toFixed(2)} mm`, await device.status()));
      await device.stop();  // the needle retracts to the home switch
      const back = await settle(device, 2000);
      if (back.state === 'fault') throw new PenFaultError(back.fault, back.faultText);
      if (back.moving) throw new Error('the retract home did not end within 2000 ms');
      points.push(point('back home', back));
    })(), checkBoundMs, 'the jog');
  } catch (error) {
    if (isLinkError(error)) throw error;
    failure = error;
  }
  if (checks.linkLost !== null) throw checks.linkLost;
  const switchFault = failure instanceof PenFaultError && (failure.fault === 'home_switch_stuck' || failure.fault === 'homing_failed');
  const out = points.find((p) => p.where.startsWith('at '));
  const back = points.find((p) => p.where === 'back home');
  const incomplete = `not complete: the jog stopped${failure === null ? '' : ` (${faultText(failure)})`}`;
  if (switchFault) checks.add('jog-switch', titles.switch, 'fail', faultText(failure), expected.switch);
  else if (out === undefined || back === undefined) checks.add('jog-switch', titles.switch, 'skip', incomplete, expected.switch);
  else {
    checks.add('jog-switch', titles.switch, !out.switchPressed && back.switchPressed ? 'pass' : 'fail',
      `${out.switchPressed ? 'pressed' : 'open'} at ${jogDepthMm.toFixed(2)} mm, ${back.switchPressed ? 'pressed' : 'open'} back at home`, expected.switch);
  }
  const readings = points.map((p) => `${p.where}: steps ${mm(p.stepsMm)}, sensor ${mm(p.sensedMm)}`).join('; ');
  const worst = Math.max(0, ...points.map((p) => Math.abs(p.stepsMm - p.sensedMm)));
  if (failure !== null && !switchFault) {
    checks.add('jog-depth', titles.depth, 'fail', `${faultText(failure)}${readings === '' ? '' : `; ${readings}`}`, expected.depth);
  } else if (out === undefined || back === undefined) {
    checks.add('jog-depth', titles.depth, 'skip', incomplete, expected.depth);
  } else {
    checks.add('jog-depth', titles.depth, worst <= mismatchToleranceMm ? 'pass' : 'fail', `${readings} (largest difference ${mm(worst)})`, expected.depth);
  }
}

/**
 * The spin's parts: the fitted cartridge and nosecone, which the spin uses (the pen burns their one-way marks as the
 * motor first starts), checked against the parts registry as for a treatment. Null when they may not be used (a failed check).
 */
async function spinParts(device: PenDevice, checks: Checks, store: PenStore, cartridgeId: string | null): Promise<PreparedParts | null> {
  let parts: PreparedParts | null = null;
  await checks.run('parts', 'fitted parts for the spin', 'a cartridge and a nosecone the parts registry accepts and that are ready (pen parts)', async () => {
    parts = await checkFittedParts(device, store, cartridgeId);
    return { ok: true, detail: `cartridge ${parts.cartridge.status.id} (${parts.cartridge.status.text}), nosecone ${parts.nosecone.status.id} (${parts.nosecone.status.text}); the spin uses them` };
  });
  return parts;
}

async function spin(
  device: PenDevice, checks: Checks, notes: string[], store: PenStore, where: string, cartridgeId: string | null, blocked: string | null,
): Promise<void> {
  const tolerance = (spinStrokesPerSecond * needleDrive.speedTolerancePercent) / 100;
  const held = (spinStrokesPerSecond * 5) / 100;  // the firmware's held band (motor.c HELD_TOLERANCE_PERCENT)
  const titles = { tach: 'needle spin-up: tach', current: 'needle motor current' } as const;
  const expected = {
    tach: `${spinStrokesPerSecond} ± ${tolerance} strokes/s within ${needleDrive.atSpeedTimeoutMs} ms of the start, then held within ±${held}`,
    current: `draws current (over ${minRunningCurrentMa} mA), never over ${needleDrive.currentLimitMa} mA`,
  } as const;
  const before = blocked === null ? await device.status() : null;
  const blockedBy = blocked ?? (before?.state === 'fault' ? `not run: the pen holds fault ${before.fault} (${before.faultText})` : null);
  const parts = blockedBy === null ? await spinParts(device, checks, store, cartridgeId) : null;
  const why = blockedBy ?? (parts === null ? 'not run: the fitted parts may not be used (see the parts check)' : null);
  if (why !== null || parts === null) {
    checks.add('needle-tach', titles.tach, 'skip', why ?? '', expected.tach);
    checks.add('needle-current', titles.current, 'skip', why ?? '', expected.current);
    return;
  }
  const { identity } = device;
  // The spin uses the parts as a treatment does, so the registry counts it: a session of its own, without a client.
  const sessionId = store.startSession({
    target: where, board: identity.boardName, firmware: identity.firmwareVersion, buildId: identity.buildId, serial: penRecordIdentity(identity).serial,
    depthMm: jogDepthMm, strokesPerSecond: spinStrokesPerSecond, plannedSeconds: spinMs / 1000,
    clientRef: null, cartridgePartId: parts.cartridge.status.id, noseconePartId: parts.nosecone.status.id,
  });
  const samples: { ms: number; t: Telemetry }[] = [];
  let recordingFrom: number | null = null;
  device.onTelemetry((t) => {
    if (recordingFrom !== null) samples.push({ ms: device.clock.nowMs() - recordingFrom, t });
  });
  let failure: unknown = null;
  try {
    await bounded((async () => {
      await device.depth.moveTo(jogDepthMm, 2000);
      await device.clearCartridge(parts.cartridge.status.id);
      await device.arm(store.epochMs());
      await device.needle.start(spinStrokesPerSecond);
      // Timed from the pen's acceptance: a session's first start waits while the pen burns the parts' marks.
      recordingFrom = device.clock.nowMs();
      store.markNeedleStarted(sessionId);
      while (device.clock.nowMs() - recordingFrom < spinMs && samples.at(-1)?.t.state !== 'fault') await device.clock.sleep(50);
      const last = samples.at(-1)?.t;
      if (last?.state === 'fault') throw new PenFaultError(last.fault, last.faultText);
    })(), checkBoundMs, 'the spin');
  } catch (error) {
    if (isLinkError(error)) throw error;
    failure = error;
  } finally {
    recordingFrom = null;
    await bounded(device.stop(), stopBoundMs, 'STOP').catch((error: unknown) => { if (failure === null) failure = error; });
    store.endSession(sessionId, failure === null ? 'completed' : 'faulted', { doctorSpin: true, ...(failure === null ? {} : { reason: faultText(failure) }) });
  }
  if (samples.some((s) => s.t.needleOn)) {
    notes.push(`the spin used cartridge ${parts.cartridge.status.id} and nosecone ${parts.nosecone.status.id} (session ${sessionId}): ` +
      'fit a new cartridge and reprocess the nosecone before a treatment');
  }
  if (checks.linkLost !== null) throw checks.linkLost;
  const running = samples.filter((s) => s.t.needleOn);
  const speeds = running.map((s) => s.t.strokesPerSecond);
  const within = (s: { t: Telemetry }): boolean => Math.abs(s.t.strokesPerSecond - spinStrokesPerSecond) <= tolerance;
  const holds = (s: { t: Telemetry }): boolean => Math.abs(s.t.strokesPerSecond - spinStrokesPerSecond) <= held;
  // At speed from the first reading within the tolerance that the speed then holds: a reading caught on the way up to
  // the spin-up's overshoot is not.
  const settled = running.findIndex((s, i) => within(s) && running.slice(i).every(holds));
  const reached = settled >= 0 ? running[settled] : running.find(within);
  const after = reached === undefined ? [] : running.filter((s) => s.ms >= reached.ms);
  const spread = after.length === 0 ? '' : `, then ${Math.min(...after.map((s) => s.t.strokesPerSecond)).toFixed(1)}–${Math.max(...after.map((s) => s.t.strokesPerSecond)).toFixed(1)}`;
  const peakMa = Math.max(0, ...running.map((s) => s.t.motorCurrentMa));
  const currentFault = failure instanceof PenFaultError && failure.fault === 'motor_overcurrent';
  const seen = `peak ${speeds.length === 0 ? 0 : Math.max(...speeds).toFixed(1)} strokes/s` +
    (reached === undefined ? ', never within the tolerance' : `, within the tolerance after ${Math.round(reached.ms)} ms${spread}`);
  if (failure !== null && !currentFault) {
    checks.add('needle-tach', titles.tach, 'fail', `${faultText(failure)}; ${seen}`, expected.tach);
  } else {
    const ok = reached !== undefined && reached.ms <= needleDrive.atSpeedTimeoutMs + 100 &&
      after.every(holds);
    checks.add('needle-tach', titles.tach, currentFault ? 'skip' : ok ? 'pass' : 'fail', currentFault ? `not judged: ${faultText(failure)}` : seen, expected.tach);
  }
  if (running.length === 0 && !currentFault) {
    checks.add('needle-current', titles.current, 'skip', 'not judged: no reading while the needle was driven', expected.current);
  } else {
    const ok = !currentFault && peakMa > minRunningCurrentMa && peakMa <= needleDrive.currentLimitMa;
    checks.add('needle-current', titles.current, ok ? 'pass' : 'fail',
      `${currentFault ? `${faultText(failure)}; ` : ''}peak ${peakMa} mA over ${running.length} readings while driven`, expected.current);
  }
}

export interface DoctorReport {
  readonly target: string;
  readonly identity: PenDevice['identity'];
  readonly checks: readonly CheckResult[];
  readonly notes: readonly string[];
  readonly failed: readonly string[];
  readonly linkError: string | null;
  /** The pen as it was left, or null when it could not be read. */
  readonly final: Telemetry | null;
}

function describeReport(report: DoctorReport): string {
  const mark: Record<CheckStatus, string> = { pass: 'PASS', fail: 'FAIL', skip: 'SKIP', look: 'LOOK' };
  const width = Math.max(...report.checks.map((check) => check.title.length));
  const lines = [`pen doctor: ${report.identity.boardName} on ${report.target}`];
  for (const note of report.notes) lines.push(`  note: ${note}`);
  for (const check of report.checks) {
    lines.push(`  ${mark[check.status]}  ${check.title.padEnd(width)}  ${check.detail}`);
    if (check.status === 'fail') lines.push(`        ${' '.repeat(width)}  expected: ${check.expected}`);
  }
  const f = report.final;
  lines.push(f === null
    ? '  pen left: unknown (no answer); its heartbeat failsafe stops the motor and retracts the needle once the host is silent'
    : `  pen left: state ${f.state.replace('_', ' ')}${f.fault === 'none' ? '' : ` (fault ${f.fault}: \`pen clear-fault\` once fixed)`}, ` +
      `needle ${f.needleOn ? 'ON' : 'off'}, ${f.moving ? 'moving' : 'still'} at ${mm(f.depthMm)}`);
  if (report.linkError !== null) lines.push(`link failed: ${report.linkError}`);
  else if (report.failed.length === 0) lines.push(`all ${report.checks.filter((check) => check.status === 'pass').length} checks passed`);
  else {
    const names = report.checks.filter((check) => check.status === 'fail').map((check) => check.title);
    lines.push(`${names.length} check${names.length === 1 ? '' : 's'} failed: ${names.join('; ')}`);
  }
  return lines.join('\n');
}

export async function doctorCommand(flags: DoctorFlags): Promise<number> {
  const cartridgeId = parseCartridge(flags.cartridge);  // checked before the pen is contacted
  const target = await openTarget({ port: flags.port, firmware: flags.firmware });
  const { device } = target;
  const checks = new Checks();
  device.onLinkLost((error) => { checks.linkLost = error; });
  const notes: string[] = [];
  let linkError: string | null = null;
  let final: Telemetry | null = null;
  let store: PenStore | null = null;
  try {
    store = PenStore.open(flags.db ?? defaultStorePath(), new RealClock());
    const { now, persistent } = await identityAndSensors(device, checks, notes);
    const blocked = now.state === 'fault'
      ? `not run: the pen holds fault ${now.fault} (${now.faultText})${persistent === null ? '' : ', whose cause persists'}`
      : now.estopTripped ? 'not run: the e-stop is tripped' : null;
    await jog(device, checks, blocked);
    const spinBlocked = flags.spin !== true
      ? 'not run: add --spin once a cartridge and a sterile nosecone are fitted and the needle may run (the spin uses them)'
      : blocked ?? (checks.status('homing') !== 'pass' ? 'not run: the depth axis is not homed'
        : checks.status('cartridge') !== 'pass' ? 'not run: no cartridge is fitted (see the cartridge switch)' : null);
    await spin(device, checks, notes, store, target.where, cartridgeId, spinBlocked);
  } catch (error) {
    if (!isLinkError(error)) throw error;
    linkError = messageOf(error);
  } finally {
    // Stopped and safe whatever happened: STOP (motor off, disarm, needle home), then the pen as it was left.
    if (checks.linkLost === null) {
      try {
        await bounded(device.stop(), stopBoundMs, 'STOP');
        final = await bounded(settle(device, 2000), stopBoundMs, 'reading the pen after STOP');
      } catch (error) {
        linkError ??= `could not stop the pen: ${messageOf(error)}`;
      }
    }
    if (final !== null) {
      checks.add('status-led', 'status LED', 'look', final.state === 'fault'
        ? 'look: the status LED blinks fast (5 Hz) now, as a fault is latched; slowly (1 Hz) once cleared'
        : 'look: the status LED blinks slowly (1 Hz)', 'a slow blink (1 Hz) while healthy, fast (5 Hz) with a fault latched');
    }
    const failed = checks.failed.map((check) => check.id);
    try {
      store?.audit(null, 'doctor', { target: target.where, spin: flags.spin === true, checks: checks.results.map(({ id, status }) => ({ id, status })) },
        linkError !== null ? `link failed: ${linkError}` : failed.length === 0 ? 'ok' : `failed: ${failed.join(', ')}`, auditActor(device.identity));
    } finally {
      store?.close();
      await target.close();
    }
  }
  const failed = checks.failed.map((check) => check.id);
  const report: DoctorReport = { target: target.where, identity: device.identity, checks: checks.results, notes, failed, linkError, final };
  console.log(flags.json === true ? JSON.stringify(report, null, 2) : describeReport(report));
  if (linkError !== null) return ExitCode.link;
  return failed.length === 0 ? ExitCode.ok : ExitCode.failure;
}

export interface DoctorOptions {
  readonly portOption: () => Option;
  readonly firmwareOption: () => Option;
  readonly dbOption: () => Option;
  readonly jsonOption: () => Option;
}

/** Registers `pen doctor`; setExitCode receives the command's exit code. */
export function addDoctorCommand(program: Command, options: DoctorOptions, setExitCode: (code: number) => void): void {
  program
    .command('doctor')
    .description('board check for bring-up, as a pass/fail table: identity and protocol version, calibration in EEPROM, every input, every sensor ' +
      'against its plausible range (hardware/pen.json limits), a stepper jog (home, 0.5 mm, back) checking the home switch and the depth sensor; ' +
      'with --spin, the fitted parts checked against the parts registry and a short armed spin-up that uses them; the pen is stopped at the end. Exits 0 all passed, 1 a check failed (named), 3 the link failed')
    .option('--spin', 'a cartridge and a sterile nosecone are fitted and the needle may run: check them against the parts registry, then arm and ' +
      `spin at ${spinStrokesPerSecond} strokes/s for about 1 s, checking the tach and the motor current. The spin USES the fitted cartridge and ` +
      'nosecone (the pen burns their one-way marks; recorded as a session): fit a new cartridge, and reprocess the nosecone, before a treatment')
    .option('--cartridge <id>', 'with --spin, refuse unless this is the fitted cartridge: its ID chip\'s ROM id, 16 hex digits')
    .addOption(options.portOption()).addOption(options.firmwareOption()).addOption(options.dbOption()).addOption(options.jsonOption())
    .action(async (flags: DoctorFlags) => {
      setExitCode(await doctorCommand(flags));
    });
}
