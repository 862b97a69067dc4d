// The treatment session: connect → self-test → home → ready (fitted parts checked against the registry) → treatment
// (pause/resume, rate-limited depth) → end, driven by the supervisory loop, with every state-changing command audited
// and every fault stored; a client's session spacing is checked as the session is recorded (spacing.ts).
import type { Clock } from '../../hardware/clock.ts';
import { pen } from '../../hardware/description.ts';
import { PROTOCOL_VERSION } from '../../hardware/generated/protocol.ts';
import type { PenDevice, Telemetry } from '../../hal/device.ts';
import { checkDepthMm, checkStrokesPerSecond, HostRefusedError } from '../../hal/limits.ts';
import { dayDate, dayNumber, type PartChip, type PartName } from '../../hal/parts.ts';
import type { PenStore } from '../store/store.ts';
import type { RecordActor } from '../store/parts.ts';
import { auditActor, operatorName, penRecordIdentity } from '../store/actor.ts';
import {
  cartridgeReport, noseconeReport, normalizePartId, RegistryRefusedError, SterilizationRegistry, type FittedPart, type PartCondition,
} from '../sterilization/registry.ts';
import { PlausibilityMonitor } from '../safety/plausibility.ts';
import { SpacingRefusedError, spacingFromStore, spacingRefusal } from './spacing.ts';
import { penCalibrationDue, type CalibrationDue } from '../calibration/due.ts';
import { SupervisoryLoop, type LatenessStats } from './loop.ts';

export type SessionPhase = 'connected' | 'homing' | 'homed' | 'ready' | 'treating' | 'paused' | 'ended' | 'faulted';

/** The session refused a request; the message says what to fix ("not homed", "cartridge missing", ...). */
export class SessionRefusedError extends Error {}

export interface SessionOptions {
  readonly clock: Clock;
  readonly store: PenStore;
  /** What the session talks to, for the records: a port, or the in-process virtual pen. */
  readonly target: string;
  readonly loopRateHz?: number;
  /** The needle runs only while the footswitch is pressed; releasing it pauses the treatment. */
  readonly footswitchControl?: boolean;
  /** Depth changes during treatment move no faster than this. */
  readonly depthRateMmPerSecond?: number;
  /** The firmware build (8 hex digits, as the pen identifies it) the pen must run; any build of the right version when absent. */
  readonly expectedBuildId?: string;
}

export interface TreatmentPlan {
  readonly depthMm: number;
  readonly strokesPerSecond: number;
  /** Needle-on time after which the treatment ends; null runs until stop(). */
  readonly durationS: number | null;
}

/** What a treatment is recorded with beyond its plan and the parts prepare() checked: the client. */
export interface SessionRecordContext {
  /** The client's pseudonymous reference (spacing.ts); null or absent: not given, and spacing is not checked. */
  readonly clientRef?: string | null;
  /** A clinician's reason to treat the client sooner than the spacing allows; audited with the session when it is used. */
  readonly spacingOverride?: string | null;
}

/** The parts prepare() found fitted and usable, by their chips' ROM ids, with the registry's word on each. */
export interface PreparedParts {
  readonly cartridge: FittedPart;
  readonly nosecone: FittedPart;
}

export interface SelfTestCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface SessionSummary {
  readonly sessionId: number;
  readonly outcome: 'completed' | 'stopped' | 'faulted';
  readonly reason: string;
  readonly depthMm: number;
  readonly strokesPerSecond: number;
  readonly needleSeconds: number;
  readonly strokes: number;
  readonly faults: readonly string[];
  readonly loop: LatenessStats;
}

export type SessionEvent =
  | { readonly kind: 'phase'; readonly phase: SessionPhase }
  | { readonly kind: 'fault'; readonly source: 'pen' | 'host'; readonly code: string; readonly text: string }
  | { readonly kind: 'tick'; readonly telemetry: Telemetry; readonly needleSeconds: number };

export const maxTreatmentSeconds = 3600;
/** Conditions a nosecone leaves through reprocessing, with the command that records it. */
const reprocessable: readonly PartCondition[] = ['never_sterilized', 'used_since_sterilized', 'indicator_failed', 'load_recalled', 'shelf_life_expired'];
const heartbeatPeriodMs = pen.timing.heartbeatTimeoutMs / 5;
const depthCommandStepMm = 0.01;

interface Treatment {
  readonly plan: TreatmentPlan;
  readonly sessionId: number;
  readonly plausibility: PlausibilityMonitor;
  readonly faults: string[];
  readonly finished: Promise<SessionSummary>;
  finish: (outcome: SessionSummary['outcome'], reason: string) => void;
  needleMs: number;
  strokes: number;
  lastTickMs: number;
  targetDepthMm: number;
  commandedDepthMm: number;
  depthAllowanceMm: number;
  moveInFlight: boolean;
  needleCommandInFlight: boolean;
  done: boolean;
}

export class TreatmentSession {
  private currentPhase: SessionPhase = 'connected';
  private readonly listeners: ((event: SessionEvent) => void)[] = [];
  private readonly loop: SupervisoryLoop;
  private treatment: Treatment | null = null;
  private starting = false;
  private lastHeartbeatMs = -Infinity;
  /** Set by prepare(): the parts the next treatment is recorded with. */
  private prepared: PreparedParts | null = null;

  /**
   * Starts the supervisory loop at once: from here on the loop, not a timer of its own, sends the heartbeats,
   * so a host that stalls starves the pen of them and the pen goes safe.
   */
  constructor(private readonly device: PenDevice, private readonly options: SessionOptions) {
    this.loop = new SupervisoryLoop({
      clock: options.clock, rateHz: options.loopRateHz ?? 100, latenessBudgetMs: pen.timing.heartbeatTimeoutMs / 2,
    });
    this.loop.onTick(() => this.tick());
    this.loop.onOverrun((reason) => this.onOverrun(reason));
    // Without a link the pen goes safe on its heartbeat timeout; the treatment ends here with the reason.
    device.onLinkLost((error) => {
      const treatment = this.treatment;
      if (treatment === null) return;
      this.recordFault(treatment, 'host', 'link_lost', error.message);
      treatment.finish('faulted', error.message);
    });
    this.loop.start();
  }

  /** Stops the loop (and with it the heartbeats: a pen left armed goes safe on its own). */
  close(): void {
    this.loop.stop();
  }

  get loopStats(): LatenessStats {
    return this.loop.stats();
  }

  get phase(): SessionPhase {
    return this.currentPhase;
  }

  onEvent(listener: (event: SessionEvent) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Checks the pen can be used: it runs the firmware this host carries, no fault latched, e-stop closed, supply and
   * sensors plausible.
   */
  async selfTest(): Promise<SelfTestCheck[]> {
    const t = await this.device.status();
    const { supplyMinMv, supplyMaxMv, temperatureLimitDeciC } = pen.limits;
    const checks: SelfTestCheck[] = [
      this.firmwareCheck(),
      { name: 'fault', ok: t.state !== 'fault', detail: t.state === 'fault' ? `${t.fault} latched: ${t.faultText}` : 'none latched' },
      { name: 'e-stop', ok: !t.estopTripped, detail: t.estopTripped ? 'tripped' : 'closed' },
      {
        name: 'supply', ok: t.supplyVolts * 1000 >= supplyMinMv && t.supplyVolts * 1000 <= supplyMaxMv,
        detail: `${t.supplyVolts.toFixed(2)} V (allowed ${supplyMinMv / 1000}–${supplyMaxMv / 1000} V)`,
      },
      {
        name: 'temperature', ok: t.temperatureC > -10 && t.temperatureC * 10 < temperatureLimitDeciC,
        detail: `${t.temperatureC.toFixed(1)} °C (limit ${temperatureLimitDeciC / 10} °C)`,
      },
      { name: 'needle motor', ok: !t.needleOn && t.motorCurrentMa < 100, detail: `off, ${t.motorCurrentMa} mA` },
    ];
    const failed = checks.filter((check) => !check.ok);
    if (failed.length > 0) throw new SessionRefusedError(`self-test failed: ${failed.map((c) => `${c.name} ${c.detail}`).join('; ')}`);
    return checks;
  }

  /** The pen's identity against what this host carries: protocol version, board, firmware version and, when named, build. */
  private firmwareCheck(): SelfTestCheck {
    const identity = this.device.identity;
    const firmware = pen.board.firmwareVersion.join('.');
    const build = this.options.expectedBuildId;
    const mismatches = [
      identity.protocolVersion === PROTOCOL_VERSION ? null : `the pen speaks protocol version ${identity.protocolVersion}, this host ${PROTOCOL_VERSION}`,
      identity.boardName === pen.board.name ? null : `the pen is a ${identity.boardName}, this host drives a ${pen.board.name}`,
      identity.firmwareVersion === firmware ? null : `the pen runs firmware ${identity.firmwareVersion}, this host carries ${firmware}`,
      build === undefined || identity.buildId === build.toLowerCase() ? null : `the pen runs build ${identity.buildId}, expected ${build}`,
    ].filter((mismatch) => mismatch !== null);
    const detail = mismatches.length > 0 ? mismatches.join(', ')
      : `version ${identity.protocolVersion}, ${identity.boardName} firmware ${identity.firmwareVersion} build ${identity.buildId}`;
    return { name: 'protocol', ok: mismatches.length === 0, detail };
  }

  async home(): Promise<void> {
    if (this.treatment !== null) throw new SessionRefusedError('a treatment is running: end it before homing');
    this.setPhase('homing');
    try {
      await this.audited('home', {}, () => this.device.depth.home());
      this.setPhase('homed');
    } catch (error) {
      this.setPhase('connected');
      throw error;
    }
  }

  /**
   * Checks the fitted parts against the registry (checkFittedParts: a part that may not be used is refused here, before
   * the pen is asked, with what to do) and clears the cartridge for use by its ROM id; arms nothing yet. Refuses a pen
   * past its calibration's grace period; returns the calibration-due state with the parts, so a caller warns when due.
   */
  async prepare(expectedCartridgeId: string | null = null): Promise<PreparedParts & { readonly calibration: CalibrationDue }> {
    const t = await this.device.status();
    if (t.state === 'fault') throw new SessionRefusedError(`fault latched: ${t.fault} (${t.faultText}); clear it first`);
    if (!t.homed) throw new SessionRefusedError('not homed');
    if (!t.cartridgePresent) throw new SessionRefusedError('cartridge missing');
    this.prepared = null;
    if (this.currentPhase === 'ready') this.setPhase('homed');  // a refusal below leaves nothing prepared
    const calibration = await this.checkCalibrationDue();
    const prepared = await checkFittedParts(this.device, this.options.store, expectedCartridgeId);
    const cartridgeRom = prepared.cartridge.status.id;
    await this.audited('clear_cartridge', { cartridgeRom, noseconeRom: prepared.nosecone.status.id }, () => this.device.clearCartridge(cartridgeRom));
    this.prepared = prepared;
    this.setPhase('ready');
    return { ...prepared, calibration };
  }

  /** The calibration-due state; past the grace period, a refusal saying why and what to do, in the audit log. */
  private async checkCalibrationDue(): Promise<CalibrationDue> {
    const { store, target } = this.options;
    const due = await penCalibrationDue(this.device, store, store.epochMs());
    if (due.state !== 'overdue') return due;
    const reason = `${due.text}: treatments are refused until the pen is calibrated: pen calibrate --port PORT (this pen: ${target})`;
    const args = { calibration: due.state, dueAt: due.dueAt, needleHoursSince: due.needleHoursSince, needleSeconds: due.needleSeconds };
    store.audit(null, 'prepare', args, `refused: ${reason}`, auditActor(this.device.identity));
    throw new SessionRefusedError(reason);
  }

  /**
   * Runs a treatment to its end; resolves with what happened. Refusals throw before anything moves: among them a client
   * treated too recently (SpacingRefusedError) unless the context gives an override.
   */
  async treat(plan: TreatmentPlan, context: SessionRecordContext = {}): Promise<SessionSummary> {
    this.checkPlan(plan);
    if (this.starting || this.treatment !== null) throw new SessionRefusedError('a treatment is already running');
    this.starting = true;
    try {
      return await this.startTreatment(plan, context);
    } finally {
      this.starting = false;
    }
  }

  private async startTreatment(plan: TreatmentPlan, context: SessionRecordContext): Promise<SessionSummary> {
    const t = await this.device.status();
    if (t.state === 'fault') throw new SessionRefusedError(`fault latched: ${t.fault} (${t.faultText}); clear it first`);
    if (!t.homed) throw new SessionRefusedError('not homed');
    if (!t.cartridgePresent) throw new SessionRefusedError('cartridge missing');
    const parts = this.prepared;
    if (!t.cartridgeCleared || this.currentPhase !== 'ready' || parts === null) throw new SessionRefusedError('cartridge not cleared for use: prepare the session first');

    const sessionId = this.recordStart(plan, context, parts);
    const treatment = this.newTreatment(plan, sessionId);
    this.treatment = treatment;
    try {
      await this.audited('move_to', { depthMm: plan.depthMm }, () => this.device.depth.moveTo(plan.depthMm), sessionId);
      // The pen has no clock: it checks the cartridge's expiry against the store's date, the records' time.
      const dateMs = this.options.store.epochMs();
      await this.audited('arm', { hostDate: dayDate(dayNumber(dateMs)) }, () => this.device.arm(dateMs), sessionId);
      if (this.options.footswitchControl === true && !(this.device.telemetry?.footswitchPressed ?? false)) {
        this.setPhase('paused');
      } else {
        await this.audited('start_needle', { strokesPerSecond: plan.strokesPerSecond }, () => this.device.needle.start(plan.strokesPerSecond), sessionId);
        this.options.store.markNeedleStarted(sessionId);
        this.setPhase('treating');
      }
    } catch (error) {
      // A fault while starting ends the treatment like any other: recorded, and the pen made safe.
      treatment.finish('faulted', `could not start: ${error instanceof Error ? error.message : String(error)}`);
    }
    return treatment.finished;
  }

  /**
   * The session's record, in one transaction with the spacing check: a client treated less than the spacing ago is
   * refused unless the context overrides it, and an override used is audited with the session, its reason and the
   * treatment it overrides.
   */
  private recordStart(plan: TreatmentPlan, context: SessionRecordContext, parts: PreparedParts): number {
    const { store } = this.options;
    const { identity } = this.device;
    const clientRef = context.clientRef ?? null;
    const override = context.spacingOverride?.trim() ?? '';
    return store.transaction(() => {
      const verdict = clientRef === null ? null : spacingFromStore(store, clientRef);
      if (verdict !== null && !verdict.allowed && override === '') throw new SpacingRefusedError(spacingRefusal(verdict, store.epochMs()));
      const sessionId = store.startSession({
        target: this.options.target, board: identity.boardName, firmware: identity.firmwareVersion,
        buildId: identity.buildId, serial: penRecordIdentity(identity).serial,
        depthMm: plan.depthMm, strokesPerSecond: plan.strokesPerSecond, plannedSeconds: plan.durationS,
        clientRef, cartridgePartId: parts.cartridge.status.id, noseconePartId: parts.nosecone.status.id,
      });
      if (verdict !== null && !verdict.allowed) {
        store.audit(sessionId, 'override_spacing', {
          clientRef, reason: override, minimumDays: verdict.minimumDays, lastSession: verdict.last?.sessionId ?? null,
          lastTreatedAt: verdict.last?.treatedAt ?? null, daysSince: Math.round((verdict.daysSince ?? 0) * 100) / 100, allowedFrom: verdict.allowedFrom,
        }, 'ok', auditActor(identity));
      }
      return sessionId;
    });
  }

  /** Changes the depth during treatment; the needle moves there at the session's depth rate. */
  setDepth(depthMm: number): void {
    checkDepthMm(depthMm);
    if (this.treatment === null) throw new SessionRefusedError('no treatment is running');
    this.treatment.targetDepthMm = depthMm;
  }

  pause(): void {
    if (this.currentPhase !== 'treating' || this.treatment === null) throw new SessionRefusedError(`cannot pause: the session is ${this.currentPhase}`);
    this.commandNeedle(this.treatment, false);
  }

  resume(): void {
    if (this.currentPhase !== 'paused' || this.treatment === null) throw new SessionRefusedError(`cannot resume: the session is ${this.currentPhase}`);
    this.commandNeedle(this.treatment, true);
  }

  /** Ends a running treatment: the pen stops (motor off, needle home) before this resolves. */
  async stop(reason: string): Promise<SessionSummary | null> {
    const treatment = this.treatment;
    if (treatment === null) {
      await this.audited('stop', { reason }, () => this.device.stop());
      return null;
    }
    treatment.finish('stopped', reason);
    return treatment.finished;
  }

  /** After a fault: clears it on the pen (refused while its cause persists) and returns to connected or homed. */
  async recover(): Promise<void> {
    await this.audited('clear_fault', {}, () => this.device.clearFault());
    const t = await this.device.status();
    this.setPhase(t.homed ? 'homed' : 'connected');
  }

  /** Throws a SessionRefusedError naming what is out of range, before anything is sent. */
  checkPlan(plan: TreatmentPlan): void {
    try {
      checkDepthMm(plan.depthMm);
      checkStrokesPerSecond(plan.strokesPerSecond);
    } catch (error) {
      if (error instanceof HostRefusedError) throw new SessionRefusedError(error.message);
      throw error;
    }
    if (plan.durationS !== null && !(plan.durationS > 0 && plan.durationS <= maxTreatmentSeconds)) {
      throw new SessionRefusedError(`duration ${String(plan.durationS)} s is outside 0–${maxTreatmentSeconds} s`);
    }
  }

  private newTreatment(plan: TreatmentPlan, sessionId: number): Treatment {
    let finish: Treatment['finish'] = () => {};
    const finished = new Promise<SessionSummary>((resolve) => {
      finish = (outcome, reason) => {
        if (treatment.done) return;
        treatment.done = true;
        void this.conclude(treatment, outcome, reason).then(resolve);
      };
    });
    const treatment: Treatment = {
      plan, sessionId, finished, plausibility: new PlausibilityMonitor(), faults: [],
      finish: (outcome, reason) => finish(outcome, reason),
      needleMs: 0, strokes: 0, lastTickMs: this.options.clock.nowMs(),
      targetDepthMm: plan.depthMm, commandedDepthMm: plan.depthMm, depthAllowanceMm: 0,
      moveInFlight: false, needleCommandInFlight: false, done: false,
    };
    return treatment;
  }

  private onOverrun(reason: string): void {
    const treatment = this.treatment;
    if (treatment !== null) {
      this.recordFault(treatment, 'host', 'host_stall', reason);
      treatment.finish('faulted', reason);
      return;
    }
    this.options.store.recordFault(null, 'host', 'host_stall', reason, {}, penRecordIdentity(this.device.identity));
    this.listeners.forEach((listener) => listener({ kind: 'fault', source: 'host', code: 'host_stall', text: reason }));
    this.device.stop().catch(() => {});
  }

  private tick(): void {
    const nowMs = this.options.clock.nowMs();
    if (nowMs - this.lastHeartbeatMs >= heartbeatPeriodMs) {
      this.lastHeartbeatMs = nowMs;
      this.device.heartbeat().catch(() => {});  // a lost link reaches the user through the device's onLinkLost
    }
    if (this.treatment !== null && !this.treatment.done) this.treatmentTick(this.treatment, nowMs);
  }

  private treatmentTick(treatment: Treatment, nowMs: number): void {
    const elapsedMs = nowMs - treatment.lastTickMs;
    treatment.lastTickMs = nowMs;
    const t = this.device.telemetry;
    if (t === null) return;
    if (t.state === 'fault') {
      this.recordFault(treatment, 'pen', t.fault, t.faultText, t);
      treatment.finish('faulted', `pen fault ${t.fault}: ${t.faultText}`);
      return;
    }
    const issue = treatment.plausibility.check(t, nowMs);
    if (issue !== null) {
      this.recordFault(treatment, 'host', issue.code, issue.text, t);
      treatment.finish('faulted', `host check ${issue.code}: ${issue.text}`);
      return;
    }
    if (this.options.footswitchControl === true) {
      if (t.footswitchPressed && this.currentPhase === 'paused') this.commandNeedle(treatment, true);
      if (!t.footswitchPressed && this.currentPhase === 'treating') this.commandNeedle(treatment, false);
    }
    if (this.currentPhase === 'treating' && t.needleOn) {
      treatment.needleMs += elapsedMs;
      treatment.strokes += (t.strokesPerSecond * elapsedMs) / 1000;
    }
    this.followDepth(treatment, elapsedMs);
    this.listeners.forEach((listener) => listener({ kind: 'tick', telemetry: t, needleSeconds: treatment.needleMs / 1000 }));
    const planned = treatment.plan.durationS;
    if (planned !== null && treatment.needleMs >= planned * 1000) treatment.finish('completed', `${planned} s of needle time done`);
  }

  // Rate-limited depth: the commanded depth walks toward the target at the depth rate, one move_to in flight.
  private followDepth(treatment: Treatment, elapsedMs: number): void {
    const remaining = treatment.targetDepthMm - treatment.commandedDepthMm;
    if (remaining === 0) {
      treatment.depthAllowanceMm = 0;
      return;
    }
    const rate = this.options.depthRateMmPerSecond ?? 0.5;
    treatment.depthAllowanceMm = Math.min(treatment.depthAllowanceMm + (rate * elapsedMs) / 1000, 5 * depthCommandStepMm);
    const step = Math.min(Math.abs(remaining), treatment.depthAllowanceMm);
    if (treatment.moveInFlight || (step < depthCommandStepMm && step < Math.abs(remaining))) return;
    treatment.depthAllowanceMm -= step;
    const next = Math.round((treatment.commandedDepthMm + Math.sign(remaining) * step) * 1000) / 1000;
    treatment.commandedDepthMm = next;
    treatment.moveInFlight = true;
    this.device.command('move_to', { depthUm: Math.round(next * 1000) })
      .then(() => this.options.store.audit(treatment.sessionId, 'move_to', { depthMm: next }, 'ok', auditActor(this.device.identity)))
      .catch((error: unknown) => treatment.finish('faulted', `depth change refused: ${String(error)}`))
      .finally(() => { treatment.moveInFlight = false; });
  }

  private commandNeedle(treatment: Treatment, on: boolean): void {
    if (treatment.needleCommandInFlight) return;
    treatment.needleCommandInFlight = true;
    this.setPhase(on ? 'treating' : 'paused');
    const { strokesPerSecond } = treatment.plan;
    const command = on
      ? this.audited('start_needle', { strokesPerSecond, reason: 'resume' }, () => this.device.needle.start(strokesPerSecond), treatment.sessionId)
        .then(() => this.options.store.markNeedleStarted(treatment.sessionId))
      : this.audited('stop_needle', { reason: 'pause' }, () => this.device.needle.stop(), treatment.sessionId);
    command
      .catch((error: unknown) => treatment.finish('faulted', `needle ${on ? 'resume' : 'pause'} refused: ${String(error)}`))
      .finally(() => { treatment.needleCommandInFlight = false; });
  }

  private async conclude(treatment: Treatment, outcome: SessionSummary['outcome'], reason: string): Promise<SessionSummary> {
    // The pen is made safe first, whatever happened: motor off, disarmed, needle home.
    await this.audited('stop', { reason }, () => this.device.stop(), treatment.sessionId).catch(() => {});
    const t = this.device.telemetry;
    if (t?.state === 'fault') {
      // The pen latched a fault of its own (a stalled host shows up here as heartbeat_lost).
      this.recordFault(treatment, 'pen', t.fault, t.faultText, t);
      outcome = 'faulted';
    }
    const summary: SessionSummary = {
      sessionId: treatment.sessionId, outcome, reason, depthMm: treatment.plan.depthMm, strokesPerSecond: treatment.plan.strokesPerSecond,
      needleSeconds: Math.round(treatment.needleMs) / 1000, strokes: Math.round(treatment.strokes), faults: treatment.faults,
      loop: this.loop.stats(),
    };
    this.options.store.endSession(treatment.sessionId, outcome, { ...summary });
    this.treatment = null;
    this.prepared = null;  // the parts' standing changed: the next treatment is prepared afresh
    this.setPhase(outcome === 'faulted' ? 'faulted' : 'ended');
    return summary;
  }

  private recordFault(treatment: Treatment, source: 'pen' | 'host', code: string, text: string, t?: Telemetry): void {
    const key = `${source}:${code}`;
    if (treatment.faults.includes(key)) return;
    treatment.faults.push(key);
    const context = t === undefined ? {} : {
      state: t.state, depthMm: t.depthMm, sensedDepthMm: t.sensedDepthMm, strokesPerSecond: t.strokesPerSecond,
      motorCurrentMa: t.motorCurrentMa, temperatureC: t.temperatureC, supplyVolts: t.supplyVolts, uptimeMs: t.uptimeMs,
    };
    this.options.store.recordFault(treatment.sessionId, source, code, text, context, penRecordIdentity(this.device.identity));
    this.listeners.forEach((listener) => listener({ kind: 'fault', source, code, text }));
  }

  private async audited<T>(command: string, args: Record<string, unknown>, run: () => Promise<T>, sessionId: number | null = null): Promise<T> {
    const actor = auditActor(this.device.identity);
    try {
      const result = await run();
      this.options.store.audit(sessionId, command, args, 'ok', actor);
      return result;
    } catch (error) {
      this.options.store.audit(sessionId, command, args, `refused: ${error instanceof Error ? error.message : String(error)}`, actor);
      throw error;
    }
  }

  private setPhase(phase: SessionPhase): void {
    if (phase === this.currentPhase) return;
    this.currentPhase = phase;
    this.listeners.forEach((listener) => listener({ kind: 'phase', phase }));
  }
}

/**
 * The fitted parts, read once the pen has settled, each cross-checked against the parts registry (a part first seen is
 * registered); a SessionRefusedError naming each part that may not be used now (unreadable, used, expired, not sterile,
 * possibly cloned), its id, why and what to do. expectedCartridgeId: refuse unless this ROM id is the cartridge fitted.
 */
export async function checkFittedParts(device: PenDevice, store: PenStore, expectedCartridgeId: string | null = null): Promise<PreparedParts> {
  let expected: string | null = null;
  try {
    expected = expectedCartridgeId === null ? null : normalizePartId(expectedCartridgeId);
  } catch (error) {
    if (error instanceof RegistryRefusedError) throw new SessionRefusedError(error.message);
    throw error;
  }
  const parts = await device.settledParts();
  const unread = [chipProblem('cartridge', parts.cartridge), chipProblem('nosecone', parts.nosecone)].filter((problem) => problem !== null);
  if (unread.length > 0) throw new SessionRefusedError(unread.join('; '));
  if (expected !== null && parts.cartridge.rom !== expected) {
    throw new SessionRefusedError(`the fitted cartridge is ${parts.cartridge.rom}, not ${expected}: fit cartridge ${expected}, or leave out --cartridge to use the one fitted`);
  }
  const actor: RecordActor = { pen: penRecordIdentity(device.identity), operator: operatorName() };
  const registry = new SterilizationRegistry(store);
  // Both checked before either refusal, so that both parts are on record and both problems are named at once.
  const prepared = {
    cartridge: registry.checkFitted(cartridgeReport(parts.cartridge), actor),
    nosecone: registry.checkFitted(noseconeReport(parts.nosecone), actor),
  };
  const refusals = (['cartridge', 'nosecone'] as const).filter((part) => !prepared[part].usable).map((part) => partRefusal(part, prepared[part]));
  if (refusals.length > 0) throw new SessionRefusedError(refusals.join('; '));
  return prepared;
}

/** Why a part's chip gives nothing to check, or null when it read good. */
function chipProblem(part: PartName, chip: PartChip): string | null {
  if (chip.status === 'ok') return null;
  const what = part === 'cartridge' ? 'refit the cartridge, or fit another' : 'check the nosecone is seated and its contacts clean, or fit another';
  return `the ${part}'s ID chip does not read good: ${chip.statusText} (${chip.status}): ${what}`;
}

/** A part the registry does not accept, or not now: which, its id, why, and what to do. */
function partRefusal(part: PartName, fitted: FittedPart): string {
  const { id, condition, text } = fitted.status;
  if (!fitted.check.accepted) return `${part} ${id} refused: ${fitted.check.problems.join('; ')}: take it out of use and report it (pen parts show ${id})`;
  if (part === 'nosecone' && reprocessable.includes(condition)) {
    return `${part} ${id}: ${text} (pen sterilize --part ${id} --cycle NAME --sterilizer ID --load N --indicator pass --operator NAME)`;
  }
  return `${part} ${id}: ${text}`;
}
