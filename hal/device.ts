// PenDevice: the typed device API over the reliable link (identity, telemetry, stop, link health).
import type { Clock } from '../hardware/clock.ts';
import {
  PROTOCOL_VERSION, errorCodeInfo, faultInfo, penStateInfo, resetCauseInfo,
  type FaultName, type HostMessageName, type MessageFields, type PenStateName, type ResetCauseName,
} from '../hardware/generated/protocol.ts';
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

export interface Telemetry {
  readonly state: PenStateName;
  readonly fault: FaultName;
  readonly faultText: string;
  readonly uptimeMs: number;
  /** Frames the pen rejected (bad length, CRC or sync) and bytes it dropped resynchronising. */
  readonly penRxFramesBad: number;
  readonly penRxBytesDropped: number;
}

export class ProtocolMismatchError extends Error {}

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
}

function telemetryFrom(fields: MessageFields['telemetry']): Telemetry {
  const fault = faultInfo[fields.faultCode];
  return {
    state: penStateInfo[fields.state]?.name ?? 'fault',
    fault: fault?.name ?? 'none',
    faultText: fault?.text ?? `unknown fault code ${fields.faultCode}`,
    uptimeMs: fields.uptimeMs,
    penRxFramesBad: fields.rxFramesBad,
    penRxBytesDropped: fields.rxBytesDropped,
  };
}

export class PenDevice {
  private readonly telemetryListeners: ((telemetry: Telemetry) => void)[] = [];
  private latest: Telemetry | null = null;

  private constructor(private readonly link: PenLink, readonly identity: PenIdentity) {
    link.onEvent((message) => {
      if (message.name !== 'telemetry') return;
      this.latest = telemetryFrom(message.fields);
      for (const listener of this.telemetryListeners) listener(this.latest);
    });
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
      return new PenDevice(link, {
        boardName: identity.boardName,
        firmwareVersion: `${identity.firmwareMajor}.${identity.firmwareMinor}.${identity.firmwarePatch}`,
        protocolVersion: identity.protocolVersion,
        buildId: identity.buildId.toString(16).padStart(8, '0'),
        resetCause: cause?.name ?? 'unknown',
        resetCauseText: cause?.text ?? `unknown reset cause ${identity.resetCause}`,
      });
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
    return telemetryFrom(reply.fields);
  }

  async heartbeat(): Promise<void> {
    await this.command('heartbeat', {});
  }

  /** Motor off and disarm; the pen acts on it in its link layer. */
  async stop(): Promise<void> {
    await this.command('stop', {});
  }

  close(): Promise<void> {
    return this.link.close();
  }

  private async command<K extends HostMessageName>(name: K, fields: MessageFields[K]): Promise<Message> {
    const reply = await this.link.request(name, fields);
    if (reply.name === 'error') {
      const info = errorCodeInfo[reply.fields.code];
      throw new PenRefusedError(name, info?.name ?? `code ${reply.fields.code}`, reply.fields.detail, info?.text ?? 'unknown error');
    }
    return reply;
  }
}
