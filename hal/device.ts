// PenDevice: the typed device API over the reliable link: identity, telemetry, heartbeat, depth axis, needle drive, arming,
// and auth: service commands run behind a challenge–response for their role (hal/auth.ts), and provisioning.
import type { Clock, Timer } from '../hardware/clock.ts';
import { pen } from '../hardware/description.ts';
import {
  PROTOCOL_VERSION, Role, calibrationSourceInfo, errorCodeInfo, messageSpecs, resetCauseInfo, type CalibrationSourceName, type HostMessageName,
  type MessageFields, type ResetCauseName,
} from '../hardware/generated/protocol.ts';
import { challengeAnswer, keyedRoleOf, keyedRoles, penSerialPattern, virtualPenKeys, type KeyedRole, type RoleKeys } from './auth.ts';
import {
  checkDepthCalibration, checkDepthMm, checkSensorCalibration, checkStrokesPerSecond, HostRefusedError,
  type DepthCalibrationValues, type SensorCalibrationValues,
} from './limits.ts';
import { decodeTelemetry, type Telemetry } from './telemetry.ts';
import { checkArmingDate, decodeParts, partBits, partNames, romBytes, romHex, type PartName, type Parts } from './parts.ts';
import type { Message } from './link/codec.ts';
import { PenLink, type LinkOptions, type LinkStats } from './link/reliable-link.ts';
import type { Transport } from './link/transport.ts';

export interface PenIdentity {
  /** The serial number the pen was provisioned with; '' when it has none yet. */
  readonly serial: string;
  readonly boardName: string;
  readonly firmwareVersion: string;
  readonly protocolVersion: number;
  readonly buildId: string;
  readonly resetCause: ResetCauseName;
  readonly resetCauseText: string;
}

export class ProtocolMismatchError extends Error {}

export interface DepthCalibration extends DepthCalibrationValues, SensorCalibrationValues {
  readonly source: CalibrationSourceName;
  /** How many calibrations have been stored in this pen. */
  readonly storedCount: number;
}

/** The part a refusal was about, and its ID chip's ROM id (hex, '' when none was read good). */
export interface RefusedPart {
  readonly part: PartName;
  readonly rom: string;
}

/** The pen refused a command; code and detail come from the firmware, and the part when it was about one (part_refused). */
export class PenRefusedError extends Error {
  constructor(readonly command: string, readonly code: string, readonly detail: number, text: string, readonly refusedPart: RefusedPart | null = null) {
    const part = refusedPart === null ? '' : `, ${refusedPart.part} ${refusedPart.rom === '' ? '(no id read)' : refusedPart.rom}`;
    super(`pen refused ${command}: ${text} (${code}${part}, detail ${detail})`);
  }
}

export interface ConnectOptions extends Partial<LinkOptions> {
  readonly clock: Clock;
  /** For tests of the version handshake: the protocol version this host claims. */
  readonly hostProtocolVersion?: number;
  /** Send heartbeats every heartbeatPeriodMs while connected (default true). */
  readonly heartbeat?: boolean;
}

/** What the pen's role checks have counted (in EEPROM) and whether it is provisioned (get_auth_status). */
export interface AuthStatus {
  readonly provisioned: boolean;
  readonly bootCount: number;
  /** Wrong answers to challenges, ever (saturates at 65535). */
  readonly wrongAnswers: number;
  /** Refusals by the role checks, wrong answers included (saturates at 65535). */
  readonly refusals: number;
  readonly consecutiveFailures: number;
  /** Challenges are refused for this long yet after wrong answers. */
  readonly lockoutMs: number;
  /** Keys staged for provision, not yet stored. */
  readonly stagedKeys: readonly KeyedRole[];
  readonly writePending: boolean;
}

/** A service command run on a grant: the role proven and the command it was for. */
export interface GrantUse {
  readonly role: KeyedRole;
  readonly command: HostMessageName;
}

/** The pen latched a fault while a request was waiting for it. */
export class PenFaultError extends Error {
  constructor(readonly fault: string, text: string) {
    super(`pen fault ${fault}: ${text}`);
  }
}

export type { Telemetry } from './telemetry.ts';
export { HostRefusedError } from './limits.ts';

const heartbeatPeriodMs = Math.floor(pen.timing.heartbeatTimeoutMs / 5);
/** How long a challenge is retried while the pen finishes an EEPROM write (a provisioning takes under 1 s). */
const eepromBusyRetryMs = 3000;
const eepromBusyPollMs = 20;
/** How long a session's first needle start is retried while the pen burns the parts' marks (two writes, two reads: under 1 s). */
const partsBusyRetryMs = 3000;
const partsBusyPollMs = 20;

function identityFrom(fields: MessageFields['identify_reply']): PenIdentity {
  const cause = resetCauseInfo[fields.resetCause];
  return {
    serial: fields.serial,
    boardName: fields.boardName,
    firmwareVersion: `${fields.firmwareMajor}.${fields.firmwareMinor}.${fields.firmwarePatch}`,
    protocolVersion: fields.protocolVersion,
    buildId: fields.buildId.toString(16).padStart(8, '0'),
    resetCause: cause?.name ?? 'unknown',
    resetCauseText: cause?.text ?? `unknown reset cause ${fields.resetCause}`,
  };
}

/** What to tell a person whose service command the role checks refused. */
const authHints: Readonly<Record<string, string>> = {
  wrong_answer: 'the key does not match the one this pen holds (re-provisioned elsewhere, or the wrong key file)',
  locked_out: 'wrong answers were given lately; wait out the lockout (detail, in ms) and try again',
  not_provisioned: 'provision the pen first (pen provision --serial SN)',
  no_challenge: 'another frame came between the challenge and the answer, or it timed out; try again',
  role_required: 'another frame came between the grant and the command; try again',
};

export class PenDevice {
  readonly depth: DepthAxis;
  readonly needle: NeedleDrive;
  /** Where service commands find their role's key: by default the test keys, for virtual pens only (hal/auth.ts). */
  keys: RoleKeys = virtualPenKeys;
  /** The grants this device has used, in order: for the audit log. */
  readonly grantsUsed: GrantUse[] = [];
  private readonly telemetryListeners: ((telemetry: Telemetry) => void)[] = [];
  private latest: Telemetry | null = null;
  private heartbeatTimer: Timer | null = null;
  private heartbeatOn = false;
  private closed = false;
  /** Set while a challenge–response and its command are under way: other commands wait (STOP never does). */
  private exclusive: Promise<unknown> | null = null;

  private constructor(private readonly link: PenLink, private currentIdentity: PenIdentity, readonly clock: Clock) {
    this.depth = new DepthAxis(this);
    this.needle = new NeedleDrive(this);
    link.onEvent((message) => {
      if (message.name !== 'telemetry') return;
      this.latest = decodeTelemetry(message.fields);
      for (const listener of this.telemetryListeners) listener(this.latest);
    });
    link.onLost(() => this.setHeartbeat(false));
  }

  /** Opens the link, exchanges protocol versions and reads the pen's identity. */
  static async connect(transport: Transport, options: ConnectOptions): Promise<PenDevice> {
    const link = await PenLink.open(transport, { ...options });
    const hostVersion = options.hostProtocolVersion ?? PROTOCOL_VERSION;
    try {
      const reply = await link.request('identify', { hostProtocolVersion: hostVersion });
      if (reply.name !== 'identify_reply') throw new Error(`pen answered identify with ${reply.name}`);
      const identity = reply.fields;
      if (identity.protocolVersion !== hostVersion) {
        throw new ProtocolMismatchError(
          `protocol mismatch: the pen on ${transport.description} speaks version ${identity.protocolVersion}, ` +
            `this host speaks version ${hostVersion}; flash matching firmware or use a matching host`,
        );
      }
      const device = new PenDevice(link, identityFrom(identity), options.clock);
      device.setHeartbeat(options.heartbeat ?? true);
      return device;
    } catch (error) {
      await link.close();
      throw error;
    }
  }

  /** Who the pen is, as it said at connect (or at the last readIdentity). */
  get identity(): PenIdentity {
    return this.currentIdentity;
  }

  /** Asks the pen who it is again (after provisioning, the serial is new). */
  async readIdentity(): Promise<PenIdentity> {
    const reply = await this.command('identify', { hostProtocolVersion: PROTOCOL_VERSION });
    if (reply.name !== 'identify_reply') throw new Error(`pen answered identify with ${reply.name}`);
    this.currentIdentity = identityFrom(reply.fields);
    return this.currentIdentity;
  }

  get linkStats(): Readonly<LinkStats> {
    return this.link.stats;
  }

  /** The newest telemetry record, or null before the first arrives. */
  get telemetry(): Telemetry | null {
    return this.latest;
  }

  onTelemetry(listener: (telemetry: Telemetry) => void): void {
    this.telemetryListeners.push(listener);
  }

  /** Called once if the link is lost (silence, closed transport, no answer after retries). */
  onLinkLost(listener: (error: Error) => void): void {
    this.link.onLost(listener);
  }

  async status(): Promise<Telemetry> {
    const reply = await this.command('get_status', {});
    if (reply.name !== 'telemetry') throw new Error(`pen answered get_status with ${reply.name}`);
    this.latest = decodeTelemetry(reply.fields);
    return this.latest;
  }

  async heartbeat(): Promise<void> {
    await this.command('heartbeat', {});
  }

  /** Starts or stops the periodic heartbeat (stopping it lets the pen's host-silence failsafe act). */
  setHeartbeat(enabled: boolean): void {
    this.heartbeatTimer?.cancel();
    this.heartbeatTimer = null;
    this.heartbeatOn = enabled && !this.closed;
    if (!this.heartbeatOn) return;
    const beat = (): void => {
      this.heartbeat().catch(() => {});  // a lost link is reported through onLinkLost
      this.heartbeatTimer = this.clock.after(heartbeatPeriodMs, beat);
    };
    beat();
  }

  /** Motor off, disarm, needle home; the pen acts on it in its link layer, ahead of anything queued. */
  async stop(): Promise<void> {
    await this.command('stop', {});
    await this.status();  // state changed: refresh what host-side checks read
  }

  /**
   * Allows the needle motor: refused unless homed, cartridge present and cleared, no interlock, heartbeat fresh, and both
   * parts fit for use by their ID chips. dateMs is today by the host's clock: the pen has none, and checks the
   * cartridge's expiry against this date.
   */
  async arm(dateMs: number): Promise<void> {
    await this.command('arm', { todayDay: checkArmingDate(dateMs) });
    await this.status();  // state changed: refresh what host-side checks read
  }

  async disarm(): Promise<void> {
    await this.command('disarm', {});
    await this.status();  // state changed: refresh what host-side checks read
  }

  /** Leaves FAULT; refused while the cause persists. Faults that may have lost position need homing after. */
  async clearFault(): Promise<void> {
    await this.command('clear_fault', {});
    await this.status();  // state changed: refresh what host-side checks read
  }

  /** Tells the pen the fitted cartridge, named by its ID chip's ROM id (16 hex digits), was checked and may be used. */
  async clearCartridge(cartridgeRom: string): Promise<void> {
    await this.command('clear_cartridge', { cartridgeRom: romBytes(cartridgeRom) });
  }

  /** Both calibrations in force, and whether they are the default, stored ones, or unreadable. */
  async calibration(): Promise<DepthCalibration> {
    const reply = await this.command('get_calibration', {});
    if (reply.name !== 'calibration') throw new Error(`pen answered get_calibration with ${reply.name}`);
    const f = reply.fields;
    return {
      stepsPerMm: f.stepsPerMmX100 / 100, zeroOffsetMm: f.zeroOffsetUm / 1000, sensorZeroMv: f.sensorZeroMv,
      sensorMvPerMm: f.sensorMvPerMm, source: calibrationSourceInfo[f.source]?.name ?? 'invalid', storedCount: f.storedCount,
    };
  }

  /** Stores the step calibration in the pen (checked against the bounds from the pen's tolerances here first); technician. */
  async setDepthCalibration(calibration: DepthCalibrationValues): Promise<void> {
    await this.serviceCommand('set_depth_calibration', checkDepthCalibration(calibration));
  }

  /** Stores the depth sensor's calibration: its own command, so no single frame moves both depth channels; engineer. */
  async setSensorCalibration(calibration: SensorCalibrationValues): Promise<void> {
    await this.serviceCommand('set_sensor_calibration', checkSensorCalibration(calibration));
  }

  /** The needle time the pen has counted over its life (RUNNING with the motor on), as kept in its EEPROM. */
  async usage(): Promise<{ needleSeconds: number }> {
    const reply = await this.command('get_usage', {});
    if (reply.name !== 'usage') throw new Error(`pen answered get_usage with ${reply.name}`);
    return { needleSeconds: reply.fields.needleSeconds };
  }

  /** Whether the pen is provisioned, and what its role checks have counted. */
  async authStatus(): Promise<AuthStatus> {
    const reply = await this.command('get_auth_status', {});
    if (reply.name !== 'auth_status') throw new Error(`pen answered get_auth_status with ${reply.name}`);
    const f = reply.fields;
    return {
      provisioned: f.provisioned !== 0, bootCount: f.bootCount, wrongAnswers: f.wrongAnswers, refusals: f.refusals,
      consecutiveFailures: f.consecutiveFailures, lockoutMs: f.lockoutMs,
      stagedKeys: keyedRoles.filter((role) => (f.stagedKeys >> Role[role]) & 1), writePending: f.writePending !== 0,
    };
  }

  /** The fitted parts as the pen last read their ID chips; reread: read those chips again (reading shows it under way). */
  async parts(reread: readonly PartName[] = []): Promise<Parts> {
    const reply = await this.command('get_parts', { reread: partBits(reread) });
    if (reply.name !== 'parts') throw new Error(`pen answered get_parts with ${reply.name}`);
    return decodeParts(reply.fields);
  }

  /** The fitted parts once no chip read or write is under way (the pen reads them at start-up and after a fitting). */
  async settledParts(timeoutMs = partsBusyRetryMs): Promise<Parts> {
    const deadline = this.clock.nowMs() + timeoutMs;
    for (;;) {
      const parts = await this.parts();
      if (parts.reading.length === 0 && !parts.writing) return parts;
      if (this.clock.nowMs() >= deadline) throw new Error(`the pen was still reading its parts' ID chips after ${timeoutMs} ms`);
      await this.clock.sleep(partsBusyPollMs);
    }
  }

  /**
   * Gives the pen its serial number and a key per keyed role. A provisioned pen needs the engineer's grant, with the
   * engineer key of the serial it has now (this.keys). Resolves once the pen has written them and reports the new serial.
   */
  async provision(serial: string, keys: Readonly<Record<KeyedRole, Uint8Array>>): Promise<PenIdentity> {
    if (!penSerialPattern.test(serial)) {
      throw new HostRefusedError(`serial "${serial}" is not 1–16 printable ASCII characters without spaces`);
    }
    await this.exclusively(async () => {
      await this.waitForEeprom();
      for (const role of keyedRoles) await this.send('provision_key', { role: Role[role], key: keys[role] });
      await (this.identity.serial === '' ? this.send('provision', { serial }) : this.granted('provision', { serial }));
    });
    await this.waitForEeprom();
    const identity = await this.readIdentity();
    if (identity.serial !== serial) throw new Error(`the pen reports serial "${identity.serial}" after provisioning "${serial}"`);
    return identity;
  }

  /**
   * A service command: a challenge for its role, the answer with that role's key (this.keys), then the command as the
   * very next frame, the heartbeat held meanwhile. Commands without a role are sent as they are.
   */
  async serviceCommand<K extends HostMessageName>(name: K, fields: MessageFields[K]): Promise<Message> {
    if (messageSpecs[name].role === null) return this.command(name, fields);
    return this.exclusively(() => this.granted(name, fields));
  }

  private async granted<K extends HostMessageName>(name: K, fields: MessageFields[K]): Promise<Message> {
    const spec = messageSpecs[name];
    const role = spec.role === null ? null : keyedRoleOf(Role[spec.role]);
    if (role === null) return this.send(name, fields);
    const { serial } = this.identity;
    if (serial === '') throw new HostRefusedError(`${name} needs the ${role} role, and this pen is not provisioned: provision it first (pen provision --serial SN)`);
    const key = this.keys.key(serial, role);
    if (key === null) throw new HostRefusedError(`${name} needs the ${role} key of pen ${serial}, and there is none (${this.keys.where(serial, role)})`);
    try {
      const challenge = await this.requestChallenge(Role[role], spec.id);
      await this.send('answer_challenge', { mac: challengeAnswer(key, challenge.nonce, serial, spec.id) });
      const reply = await this.send(name, fields);
      this.grantsUsed.push({ role, command: name });
      return reply;
    } catch (error) {
      const hint = error instanceof PenRefusedError ? authHints[error.code] : undefined;
      if (error instanceof PenRefusedError && hint !== undefined) {
        throw new PenRefusedError(name, error.code, error.detail, `${errorCodeInfo[codeNumber(error.code)]?.text ?? error.code} (as ${role} of pen ${serial}): ${hint}`);
      }
      throw error;
    }
  }

  /** A challenge, retried while the pen finishes an EEPROM write (it issues none until the write is durable). */
  private async requestChallenge(role: number, commandId: number): Promise<MessageFields['challenge']> {
    const deadline = this.clock.nowMs() + eepromBusyRetryMs;
    for (;;) {
      try {
        const reply = await this.send('request_challenge', { role, commandId });
        if (reply.name !== 'challenge') throw new Error(`pen answered request_challenge with ${reply.name}`);
        return reply.fields;
      } catch (error) {
        if (!(error instanceof PenRefusedError && error.code === 'eeprom_busy') || this.clock.nowMs() >= deadline) throw error;
        await this.clock.sleep(eepromBusyPollMs);
      }
    }
  }

  /** Until the pen has no EEPROM write in progress (bounded). */
  private async waitForEeprom(): Promise<void> {
    const deadline = this.clock.nowMs() + eepromBusyRetryMs;
    for (;;) {
      const reply = await this.send('get_auth_status', {});
      if (reply.name !== 'auth_status') throw new Error(`pen answered get_auth_status with ${reply.name}`);
      if (reply.fields.writePending === 0) return;
      if (this.clock.nowMs() >= deadline) throw new Error(`the pen's EEPROM write did not end within ${eepromBusyRetryMs} ms`);
      await this.clock.sleep(eepromBusyPollMs);
    }
  }

  /** Runs steps with no other command between them (STOP excepted) and the heartbeat held: a grant is for the next frame. */
  private async exclusively<T>(steps: () => Promise<T>): Promise<T> {
    while (this.exclusive !== null) await this.exclusive.catch(() => {});
    const heartbeat = this.heartbeatOn;
    this.setHeartbeat(false);
    const run = steps();
    this.exclusive = run;
    try {
      return await run;
    } finally {
      this.exclusive = null;
      if (heartbeat && !this.closed) this.setHeartbeat(true);
    }
  }

  /** Resolves with the first telemetry record that satisfies done; rejects on a fault or after timeoutMs. */
  async waitFor(done: (telemetry: Telemetry) => boolean, timeoutMs: number, what: string): Promise<Telemetry> {
    return new Promise((resolve, reject) => {
      const finish = (outcome: () => void): void => {
        timer.cancel();
        this.telemetryListeners.splice(this.telemetryListeners.indexOf(listener), 1);
        outcome();
      };
      const listener = (telemetry: Telemetry): void => {
        if (done(telemetry)) finish(() => resolve(telemetry));
        else if (telemetry.state === 'fault') finish(() => reject(new PenFaultError(telemetry.fault, telemetry.faultText)));
      };
      const timer = this.clock.after(timeoutMs, () => finish(() => reject(new Error(`${what}: not done within ${timeoutMs} ms`))));
      this.telemetryListeners.push(listener);
    });
  }

  close(): Promise<void> {
    this.closed = true;
    this.setHeartbeat(false);
    return this.link.close();
  }

  /** Sends a command (after any challenge–response under way; STOP at once); an error reply becomes a PenRefusedError. */
  async command<K extends HostMessageName>(name: K, fields: MessageFields[K]): Promise<Message> {
    if (name !== 'stop') while (this.exclusive !== null) await this.exclusive.catch(() => {});
    return this.send(name, fields);
  }

  private async send<K extends HostMessageName>(name: K, fields: MessageFields[K]): Promise<Message> {
    const reply = await this.link.request(name, fields);
    if (reply.name === 'error' || reply.name === 'part_refused') {
      const info = errorCodeInfo[reply.fields.code];
      const part = reply.name === 'part_refused' ? { part: partNames[reply.fields.part] ?? 'cartridge', rom: romHex(reply.fields.rom) } : null;
      throw new PenRefusedError(name, info?.name ?? `code ${reply.fields.code}`, reply.fields.detail, info?.text ?? 'unknown error', part);
    }
    return reply;
  }
}

function codeNumber(name: string): number {
  return Number(Object.entries(errorCodeInfo).find(([, info]) => info.name === name)?.[0] ?? -1);
}

/** The depth stepper: homing and absolute moves, in millimetres, checked against the depth window first. */
export class DepthAxis {
  constructor(private readonly device: PenDevice) {}

  /** Finds the home switch; resolves once the pen reports IDLE and homed. */
  async home(timeoutMs = 5000): Promise<void> {
    await this.device.command('home', {});
    await this.device.waitFor((t) => t.state === 'idle' && t.homed, timeoutMs, 'homing');
  }

  /** Moves to depthMm (0.50–2.00 mm); resolves when the pen reports it there and still. */
  async moveTo(depthMm: number, timeoutMs = 3000): Promise<void> {
    const depthUm = checkDepthMm(depthMm);
    const latest = this.device.telemetry;
    if (latest !== null && !latest.homed) throw new HostRefusedError('not homed: home the depth axis before moving it');
    await this.device.command('move_to', { depthUm });
    await this.device.waitFor((t) => !t.moving && Math.round(t.targetDepthMm * 1000) === depthUm, timeoutMs, `move to ${depthMm} mm`);
  }
}

/** The needle motor: speed in strokes per second, within the pen description's range. */
export class NeedleDrive {
  constructor(private readonly device: PenDevice) {}

  /** Starts the motor; a session's first start waits (bounded) while the pen burns the parts' one-way marks. */
  async start(strokesPerSecond: number): Promise<void> {
    const speed = checkStrokesPerSecond(strokesPerSecond);
    const latest = this.device.telemetry;
    if (latest !== null && latest.state !== 'armed' && latest.state !== 'running') {
      throw new HostRefusedError(`the needle runs only when armed; the pen is ${latest.state.replace('_', ' ')}`);
    }
    const deadline = this.device.clock.nowMs() + partsBusyRetryMs;
    for (;;) {
      try {
        await this.device.command('start_needle', { strokesPerSecond: speed });
        return;
      } catch (error) {
        if (!(error instanceof PenRefusedError && error.code === 'parts_busy') || this.device.clock.nowMs() >= deadline) throw error;
        await this.device.clock.sleep(partsBusyPollMs);
      }
    }
  }

  async stop(): Promise<void> {
    await this.device.command('stop_needle', {});
  }
}
