// The client of the virtual pen's control channel (`pen sim --control`, hardware/sim/control.ts): sets the plant faults
// a real bench cannot cause (hardware/rig.json virtualOnly) and reads the plant back.
import { RealClock, type Clock } from '../hardware/clock.ts';
import type { PlantReading, PlantSettingName, PlantSettings } from '../hardware/sim/control.ts';
import { openTransport, type Transport } from './link/transport.ts';

export type { PlantReading, PlantSettingName, PlantSettings } from '../hardware/sim/control.ts';

/** The channel refused a request (its own words), did not answer in time, or is gone. */
export class SimControlError extends Error {}

export interface SimControlOptions {
  /** How long one request may wait for its answer (default 2000 ms). */
  readonly timeoutMs?: number;
  readonly clock?: Clock;
}

const defaultTimeoutMs = 2000;

interface Pending {
  readonly id: number;
  resolve(reply: Record<string, unknown>): void;
  reject(error: Error): void;
}

/** One connection to the control channel; requests go one at a time, each answered (or timed out) before the next. */
export class SimControl {
  private received = '';
  /** Replies carry °C, – and ·: a character split between two chunks must stay whole. */
  private readonly decoder = new TextDecoder();
  private nextId = 1;
  private pending: Pending | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private closedBecause: SimControlError | null = null;

  private constructor(private readonly transport: Transport, private readonly timeoutMs: number, private readonly clock: Clock) {
    transport.onData((bytes) => this.onData(this.decoder.decode(bytes, { stream: true })));
    transport.onClose((error) => {
      this.closedBecause = new SimControlError(`the control channel on ${transport.description} closed${error ? `: ${error.message}` : ''}`);
      this.pending?.reject(this.closedBecause);
      this.pending = null;
    });
  }

  /** Connects to `tcp://HOST:PORT`, where `pen sim --control` serves the channel. */
  static async open(address: string, options: SimControlOptions = {}): Promise<SimControl> {
    if (!address.startsWith('tcp:')) throw new SimControlError(`the control channel is on TCP: give tcp://HOST:PORT (got "${address}")`);
    let transport: Transport;
    try {
      transport = await openTransport(address);
    } catch (error) {
      throw new SimControlError(`cannot reach the control channel: ${(error as Error).message}`);
    }
    return new SimControl(transport, options.timeoutMs ?? defaultTimeoutMs, options.clock ?? new RealClock());
  }

  get description(): string {
    return `virtual pen control on ${this.transport.description}`;
  }

  /** Sets one plant setting; resolves with the plant after the change. */
  set<Name extends PlantSettingName>(name: Name, value: PlantSettings[Name]): Promise<PlantReading> {
    return this.reading({ set: name, value });
  }

  /** The plant settings now, with the temperature the NTC sees and the simulated time. */
  plant(): Promise<PlantReading> {
    return this.reading({ get: 'plant' });
  }

  /** One setting back to a healthy plant's. */
  clear(name: PlantSettingName): Promise<PlantReading> {
    return this.reading({ clear: name });
  }

  /** Every setting back to a healthy plant's. */
  clearAll(): Promise<PlantReading> {
    return this.reading({ clear: 'all' });
  }

  /**
   * Sends any request object as it is (for tests of the channel's refusals) and resolves with the reply object,
   * accepted or not; only silence and a lost connection reject.
   */
  request(body: Readonly<Record<string, unknown>>): Promise<Record<string, unknown>> {
    const reply = this.queue.then(() => this.send(body));
    this.queue = reply.catch(() => undefined);
    return reply;
  }

  /**
   * Puts a new, unused cartridge's chip in the holder and resolves with its ROM id (hex). The cartridge-detect line is
   * left alone: pull it before and fit it after (the rig does), so that the pen reads the new chip as a fitting.
   */
  async fitNewCartridgeChip(): Promise<string> {
    const reading = await this.reading({ fit: 'new-cartridge' });
    if (reading.cartridgeRom === undefined) throw new SimControlError('the control channel fitted a cartridge but did not say its ROM id');
    return reading.cartridgeRom;
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  private async reading(body: Readonly<Record<string, unknown>>): Promise<PlantReading> {
    const reply = await this.request(body);
    if (reply['ok'] !== true) throw new SimControlError(typeof reply['error'] === 'string' ? reply['error'] : `the control channel refused ${JSON.stringify(body)}`);
    const { plant, handpieceC, simTimeMs, cartridgeRom } = reply as unknown as PlantReading;
    return { plant, handpieceC, simTimeMs, ...(cartridgeRom === undefined ? {} : { cartridgeRom }) };
  }

  private send(body: Readonly<Record<string, unknown>>): Promise<Record<string, unknown>> {
    if (this.closedBecause !== null) return Promise.reject(this.closedBecause);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = this.clock.after(this.timeoutMs, () => {
        this.pending = null;
        reject(new SimControlError(`no answer from the control channel on ${this.transport.description} within ${this.timeoutMs} ms ` +
          `to ${JSON.stringify(body)}: is \`pen sim --control\` still running?`));
      });
      this.pending = {
        id,
        resolve: (reply) => { timer.cancel(); resolve(reply); },
        reject: (error) => { timer.cancel(); reject(error); },
      };
      this.transport.write(Buffer.from(`${JSON.stringify({ ...body, id })}\n`, 'utf8'));
    });
  }

  private onData(text: string): void {
    this.received += text;
    for (;;) {
      const end = this.received.indexOf('\n');
      if (end < 0) return;
      const line = this.received.slice(0, end);
      this.received = this.received.slice(end + 1);
      let reply: unknown;
      try {
        reply = JSON.parse(line);
      } catch {
        continue;  // not a reply line: the channel never sends one, so it is not ours to answer
      }
      // A late answer to a request that timed out carries that request's id: it must not be taken for this one's.
      const pending = this.pending;
      if (pending === null || typeof reply !== 'object' || reply === null || (reply as { id?: unknown }).id !== pending.id) continue;
      this.pending = null;
      pending.resolve(reply as Record<string, unknown>);
    }
  }
}
