// PenDevice: the typed device API over the reliable link: identity, telemetry, heartbeat, depth axis, needle drive, arming.
import type { Clock, Timer } from '../hardware/clock.ts';
import { pen } from '../hardware/description.ts';
import {
  PROTOCOL_VERSION, calibrationSourceInfo, errorCodeInfo, resetCauseInfo, type CalibrationSourceName, type HostMessageName, type MessageFields, type ResetCauseName,
} from '../hardware/generated/protocol.ts';
import {
  checkDepthCalibration, checkDepthMm, checkSensorCalibration, checkStrokesPerSecond, HostRefusedError,
  type DepthCalibrationValues, type SensorCalibrationValues,
} from './limits.ts';
import { decodeTelemetry, type Telemetry } from './telemetry.ts';
import type { Message } from './link/codec.ts';
import { PenLink, type LinkOptions, type LinkStats } from './link/reliable-link.ts';
import type { Transport } from './link/transport.ts';

export interface PenIdentity {
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

/** The pen refused a command; code and detail come from the firmware. */
export class PenRefusedError extends Error {
  constructor(readonly command: string, readonly code: string, readonly detail: number, text: string) {
    super(`pen refused ${command}: ${text} (${code}, detail ${detail})`);
  }
}

export interface ConnectOptions extends Partial<LinkOptions> {
  readonly clock: Clock;
  /** For tests of the version handshake: the protocol version this host claims. */
  readonly hostProtocolVersion?: number;
  /** Send heartbeats every heartbeatPeriodMs while connected (default true). */
  readonly heartbeat?: boolean;
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

export class PenDevice {
  readonly depth: DepthAxis;
  readonly needle: NeedleDrive;
  private readonly telemetryListeners: ((telemetry: Telemetry) => void)[] = [];
  private latest: Telemetry | null = null;
  private heartbeatTimer: Timer | null = null;
  private closed = false;

  private constructor(private readonly link: PenLink, readonly identity: PenIdentity, readonly clock: Clock) {
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
      const cause = resetCauseInfo[identity.resetCause];
      const device = new PenDevice(link, {
        boardName: identity.boardName,
        firmwareVersion: `${identity.firmwareMajor}.${identity.firmwareMinor}.${identity.firmwarePatch}`,
        protocolVersion: identity.protocolVersion,
        buildId: identity.buildId.toString(16).padStart(8, '0'),
        resetCause: cause?.name ?? 'unknown',
        resetCauseText: cause?.text ?? `unknown reset cause ${identity.resetCause}`,
      }, options.clock);
      device.setHeartbeat(options.heartbeat ?? true);
      return device;
    } catch (error) {
      await link.close();
      throw error;
    }
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
    if (!enabled || this.closed) return;
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

  /** Allows the needle motor: refused unless homed, cartridge present and cleared, no interlock, heartbeat fresh. */
  async arm(): Promise<void> {
    await this.command('arm', {});
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

  /** Tells the pen the fitted cartridge was checked (identity, sterilization) and may be used. */
  async clearCartridge(cartridgeId: number): Promise<void> {
    if (!Number.isInteger(cartridgeId) || cartridgeId < 0 || cartridgeId > 0xffffffff) {
      throw new HostRefusedError(`cartridge id ${String(cartridgeId)} is not a 32-bit unsigned number`);
    }
    await this.command('clear_cartridge', { cartridgeId });
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

  /** Stores the step calibration in the pen (checked against the bounds from the pen's tolerances here first). */
  async setDepthCalibration(calibration: DepthCalibrationValues): Promise<void> {
    await this.command('set_depth_calibration', checkDepthCalibration(calibration));
  }

  /** Stores the depth sensor's calibration: its own command, so no single frame moves both depth channels. */
  async setSensorCalibration(calibration: SensorCalibrationValues): Promise<void> {
    await this.command('set_sensor_calibration', checkSensorCalibration(calibration));
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

  /** Sends a command; an error reply becomes a PenRefusedError. */
  async command<K extends HostMessageName>(name: K, fields: MessageFields[K]): Promise<Message> {
    const reply = await this.link.request(name, fields);
    if (reply.name === 'error') {
      const info = errorCodeInfo[reply.fields.code];
      throw new PenRefusedError(name, info?.name ?? `code ${reply.fields.code}`, reply.fields.detail, info?.text ?? 'unknown error');
    }
    return reply;
  }
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

  async start(strokesPerSecond: number): Promise<void> {
    const speed = checkStrokesPerSecond(strokesPerSecond);
    const latest = this.device.telemetry;
    if (latest !== null && latest.state !== 'armed' && latest.state !== 'running') {
      throw new HostRefusedError(`the needle runs only when armed; the pen is ${latest.state.replace('_', ' ')}`);
    }
    await this.device.command('start_needle', { strokesPerSecond: speed });
  }

  async stop(): Promise<void> {
    await this.device.command('stop_needle', {});
  }
}
