// The HIL rig's fixtures: a second ATmega328P running Firmata (our firmware/rig or stock StandardFirmata), driven by
// johnny-five over firmata-io, wired to the pen as hardware/rig.json says. The same on the virtual bench (a
// VirtualRig's port, or `pen sim --rig tcp://…`) and on a real rig board on a serial port.
import { EventEmitter } from 'node:events';
import firmataIo, { type FirmataTransport } from 'firmata-io';
import five from 'johnny-five';
import rigJson from '../hardware/rig.json' with { type: 'json' };
import { RealClock, type Clock } from '../hardware/clock.ts';
import { SerialTransport, TcpTransport, type Transport } from './link/transport.ts';

/** A serialport-like stream: a node-serialport SerialPort, a net.Socket, or anything that emits the same. */
export interface SerialLike {
  write(data: Buffer, callback?: (error?: Error | null) => void): unknown;
  on(event: 'data', listener: (data: Buffer) => void): unknown;
  on(event: 'open' | 'connect' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  readonly isOpen?: boolean;
  readonly path?: string;
  close?(callback?: (error?: Error | null) => void): unknown;
  end?(): unknown;
}

/** What Rig.connect takes: a serialport-like stream, or one of the project's transports (hal/link/transport.ts). */
export type RigTransport = SerialLike | Transport;

export interface RigOptions {
  /** Times stimuli and reports; real time unless given (the rig's timings are wall-clock on every bench). */
  readonly clock?: Clock;
  /** ms to wait for johnny-five's "ready" (default 10 000). */
  readonly timeoutMs?: number;
  /** Names the port in errors and the rig's identity (default: the transport's description or path). */
  readonly description?: string;
}

export interface RigIdentity {
  /** The firmware's name from its QUERY_FIRMWARE reply (StandardFirmata reports its sketch file's name). */
  readonly firmwareName: string;
  /** The firmware's own version, major.minor. */
  readonly firmwareVersion: string;
  /** The Firmata protocol version it speaks, major.minor. */
  readonly protocolVersion: string;
  /** Where the rig is: the port or the virtual rig. */
  readonly port: string;
}

/** Stimulus to motor off as the rig saw it, each in ms from the moment the stimulus was written. */
export interface MotorOffTiming {
  /** The first digital report of motorEnable low. */
  readonly enableOffMs: number;
  /** The first A0 reading clearly below the reading at the stimulus (the RC-filtered PWM falling), or null when the
   * PWM was already near zero or did not fall within the timeout. */
  readonly dutyFallMs: number | null;
  /** The filtered duty (0–1) when the stimulus was written. */
  readonly dutyBefore: number;
}

type PenSignal = (typeof rigJson.wiring)[number]['penSignal'];

function rigPin(signal: PenSignal): { readonly analog: boolean; readonly number: number; readonly name: string } {
  const wire = rigJson.wiring.find((w) => w.penSignal === signal);
  if (wire === undefined) throw new Error(`hardware/rig.json wires no rig pin to ${signal}`);
  const match = /^([AD])(\d+)$/.exec(wire.rigPin);
  if (match === null) throw new Error(`hardware/rig.json: rig pin ${wire.rigPin} (${signal}) is neither Dn nor An`);
  return { analog: match[1] === 'A', number: Number(match[2]), name: wire.rigPin };
}

const isProjectTransport = (t: RigTransport): t is Transport => 'onData' in t && typeof t.onData === 'function';

/**
 * The stream firmata-io reads: it emits 'open' once the underlying transport is open (firmata-io turns that into
 * 'connect', without which johnny-five never emits 'ready'), then 'data', 'error' and 'close'.
 */
class FirmataLink extends EventEmitter implements FirmataTransport {
  private open = false;
  private closed = false;
  readonly description: string;

  constructor(private readonly inner: RigTransport, description: string | undefined) {
    super();
    if (isProjectTransport(inner)) {
      this.description = description ?? inner.description;
      inner.onData((bytes) => this.emit('data', Buffer.from(bytes)));
      inner.onClose((error) => {
        this.closed = true;
        if (error !== undefined) this.emit('error', error);
        this.emit('close');
      });
      // A project transport is open once it exists.
      process.nextTick(() => this.markOpen());
    } else {
      this.description = description ?? inner.path ?? 'the rig';
      inner.on('data', (data: Buffer) => this.emit('data', data));
      inner.on('error', (error: Error) => this.emit('error', error));
      inner.on('close', () => {
        this.closed = true;
        this.emit('close');
      });
      inner.on('open', () => this.markOpen());
      inner.on('connect', () => this.markOpen());
      // A socket has no isOpen; a socket given to us is connected (or emits 'connect' later).
      const alreadyOpen = inner.isOpen ?? !('connecting' in inner && inner.connecting === true);
      if (alreadyOpen) process.nextTick(() => this.markOpen());
    }
  }

  get isOpen(): boolean {
    return this.open && !this.closed;
  }

  private markOpen(): void {
    if (this.open || this.closed) return;
    this.open = true;
    this.emit('open');
  }

  write(data: Buffer, callback?: (error?: Error | null) => void): boolean {
    if (this.closed) {
      callback?.(new Error(`${this.description} is closed`));
      return false;
    }
    if (isProjectTransport(this.inner)) {
      this.inner.write(data);
      callback?.(null);
    } else {
      this.inner.write(data, callback);
    }
    return true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const inner = this.inner;
    if (isProjectTransport(inner)) {
      await inner.close();
    } else if (inner.close !== undefined) {
      const close = inner.close.bind(inner);
      await new Promise<void>((resolve) => close(() => resolve()));
    } else {
      inner.end?.();
    }
    this.closed = true;
  }
}

/** SYSTEM_RESET, REPORT_VERSION and QUERY_FIRMWARE, Firmata's bytes. */
const SYSTEM_RESET = [0xff];
const REPORT_VERSION = [0xf9];
const QUERY_FIRMWARE = [0xf0, 0x79, 0xf7];

export class Rig {
  private readonly estop: InstanceType<typeof five.Pin>;
  private readonly cartridge: InstanceType<typeof five.Pin>;
  private readonly footswitch: InstanceType<typeof five.Pin>;
  private readonly pwm: InstanceType<typeof five.Sensor>;
  private readonly enable: InstanceType<typeof five.Button>;
  private readonly tach: InstanceType<typeof five.Button>;
  private readonly stepperDir: InstanceType<typeof five.Button>;
  private readonly pins = {
    estop: rigPin('estop'),
    cartridge: rigPin('cartridgePresent'),
    footswitch: rigPin('footswitch'),
    motorPwm: rigPin('motorPwm'),
    tach: rigPin('tach'),
    motorEnable: rigPin('motorEnable'),
    stepperStep: rigPin('stepperStep'),
    stepperDir: rigPin('stepperDir'),
  };
  /** Listeners for every report, for waitFor. */
  private readonly reportListeners = new Set<() => void>();
  private lastError: Error | null = null;

  private constructor(
    private readonly board: InstanceType<typeof five.Board>,
    private readonly link: FirmataLink,
    private readonly clock: Clock,
  ) {
    const { Pin, Sensor, Button } = five;
    const out = (pin: number, high: boolean): InstanceType<typeof five.Pin> => {
      const p = new Pin({ board, pin, mode: Pin.OUTPUT });
      if (high) p.high();
      else p.low();
      return p;
    };
    // At rest: e-stop loop closed (low), cartridge present (low), footswitch released (high).
    this.estop = out(this.pins.estop.number, false);
    this.cartridge = out(this.pins.cartridge.number, false);
    this.footswitch = out(this.pins.footswitch.number, true);
    this.pwm = new Sensor({ board, pin: this.pins.motorPwm.name, freq: rigJson.samplingIntervalMs, threshold: 1 });
    this.enable = new Button({ board, pin: this.pins.motorEnable.number, invert: false });
    this.tach = new Button({ board, pin: this.pins.tach.number, invert: false });
    this.stepperDir = new Button({ board, pin: this.pins.stepperDir.number, invert: false });
    // The step line only needs reporting on: stepperDuring listens to its reports.
    board.io.pinMode(this.pins.stepperStep.number, board.io.MODES.INPUT);
    board.io.reportDigitalPin(this.pins.stepperStep.number, 1);
    const notify = (): void => {
      for (const listener of this.reportListeners) listener();
    };
    board.io.on('digital-read', notify);
    board.io.on('analog-read', notify);
    board.on('error', (error: Error) => {
      this.lastError = error;
    });
  }

  /**
   * Connects johnny-five to the rig over transport, resets the rig when the transport opens (no pin modes or reports
   * left from an earlier run), waits for "ready", and sets the rig's pins up as hardware/rig.json wires them, outputs at
   * their rest levels. Rejects naming the port when the rig does not answer within timeoutMs.
   */
  static async connect(transport: RigTransport, options: RigOptions = {}): Promise<Rig> {
    const clock = options.clock ?? new RealClock();
    const timeoutMs = options.timeoutMs ?? 10_000;
    const link = new FirmataLink(transport, options.description);
    link.once('open', () => {
      // A real board also resets on the port's DTR; this resets a rig that did not (a virtual one, a TCP one, a port
      // opened before), and asks for the version and name at once rather than after firmata-io's own timeout.
      link.write(Buffer.from([...SYSTEM_RESET, ...REPORT_VERSION, ...QUERY_FIRMWARE]));
    });
    const io = new firmataIo.Firmata(link, { reportVersionTimeout: Math.min(2000, timeoutMs / 4), samplingInterval: rigJson.samplingIntervalMs });
    // johnny-five's own timeout a second later than ours, so that ours, which names the port and says what to check, reports.
    const board = new five.Board({ io, repl: false, debug: false, sigint: false, timeout: timeoutMs + 1000 });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = clock.after(timeoutMs, () => {
          const heard = io.version.major === undefined ? 'no Firmata version heard' : `Firmata ${io.version.major}.${io.version.minor ?? 0} heard but no capabilities`;
          reject(new Error(`the rig on ${link.description} was not ready within ${timeoutMs} ms (${heard}): is it running StandardFirmata or firmware/build/rig.hex at ${rigJson.firmataBaud} baud?`));
        });
        board.once('ready', () => {
          timer.cancel();
          resolve();
        });
        board.once('error', (error: Error) => {
          timer.cancel();
          reject(new Error(`the rig on ${link.description}: ${error.message}`));
        });
        link.once('close', () => {
          timer.cancel();
          reject(new Error(`the rig on ${link.description} closed before it was ready`));
        });
      });
    } catch (error) {
      // Given up: stop johnny-five's and firmata-io's own timers, and let a late "error" from either fall on a listener.
      if (board.timer !== null) clearTimeout(board.timer);
      clearTimeout(io.reportVersionTimeoutId);
      board.removeAllListeners();
      board.on('error', () => undefined);
      await link.close().catch(() => undefined);
      throw error;
    }
    const rig = new Rig(board, link, clock);
    // The first reports of the inputs (sent as reporting is enabled) before anyone reads them.
    await rig.waitFor(() => rig.pwm.raw !== null, Math.min(timeoutMs, 2000)).catch(() => undefined);
    return rig;
  }

  /** Opens a rig by address: tcp://HOST:PORT (`pen sim --rig`) or a serial device (RIG_PORT) at rig.json's baud. */
  static async open(address: string, options: RigOptions = {}): Promise<Rig> {
    const tcp = /^tcp:\/\/([^:/]+):(\d+)\/?$/.exec(address);
    const transport = tcp !== null
      ? await TcpTransport.open(tcp[1] ?? '127.0.0.1', Number(tcp[2]))
      : await SerialTransport.open(address, rigJson.firmataBaud);
    try {
      return await Rig.connect(transport, { description: address, ...options });
    } catch (error) {
      await transport.close();
      throw error;
    }
  }

  /** The firmware's name and version and the Firmata protocol version, as the board reported them. */
  identity(): RigIdentity {
    const { firmware, version } = this.board.io;
    return {
      firmwareName: firmware.name ?? 'unknown',
      firmwareVersion: firmware.version === undefined ? 'unknown' : `${firmware.version.major}.${firmware.version.minor}`,
      protocolVersion: version.major === undefined ? 'unknown' : `${version.major}.${version.minor ?? 0}`,
      port: this.link.description,
    };
  }

  /** Opens the e-stop loop (trips the pen's e-stop). */
  pressEstop(): void {
    this.estop.high();
  }
  releaseEstop(): void {
    this.estop.low();
  }
  /** Opens the cartridge-detect switch: the pen sees its cartridge pulled. */
  pullCartridge(): void {
    this.cartridge.high();
  }
  fitCartridge(): void {
    this.cartridge.low();
  }
  pressFootswitch(): void {
    this.footswitch.low();
  }
  releaseFootswitch(): void {
    this.footswitch.high();
  }

  /** The motor PWM's duty, 0–1, from the last A0 reading of the RC-filtered PWM (lags the PWM by the filter's 100 ms). */
  motorPwmDuty(): number {
    const raw = this.pwm.raw ?? 0;
    return raw / this.pwm.resolution;
  }

  /** The motor driver's enable line as last reported. */
  motorEnabled(): boolean {
    return this.enable.isDown;
  }

  /**
   * Tach pulses per second over windowMs, from the rising edges in the rig's digital reports: the edges' count less one
   * over the time from the first to the last (no ±1-edge quantization of a fixed window), or the count over the window
   * when fewer than two edges came.
   */
  async tachHz(windowMs: number): Promise<number> {
    const risingAtMs: number[] = [];
    const stop = this.onTachRise(() => risingAtMs.push(this.clock.nowMs()));
    const start = this.clock.nowMs();
    await this.clock.sleep(windowMs);
    const elapsedMs = this.clock.nowMs() - start;
    stop();
    const first = risingAtMs[0];
    const final = risingAtMs.at(-1);
    if (first === undefined || final === undefined || final <= first) return risingAtMs.length / (elapsedMs / 1000);
    return (risingAtMs.length - 1) / ((final - first) / 1000);
  }

  /**
   * Watches the stepper's lines while action runs: the step edges the rig's reports showed (activity, not a count: the
   * pulses outrun Firmata's reports) and the direction line's levels while it stepped.
   */
  async stepperDuring(action: () => Promise<void>): Promise<{ readonly stepEdges: number; readonly deeperSeen: boolean; readonly shallowerSeen: boolean }> {
    const seen = { stepEdges: 0, deeperSeen: false, shallowerSeen: false };
    const event = `digital-read-${this.pins.stepperStep.number}`;
    let last: number | null = null;
    const onStep = (value: number): void => {
      if (last !== null && value !== last) {
        seen.stepEdges += 1;
        if (this.stepperDir.isDown) seen.deeperSeen = true;
        else seen.shallowerSeen = true;
      }
      last = value;
    };
    this.board.io.on(event, onStep);
    try {
      await action();
      await this.clock.sleep(3 * rigJson.samplingIntervalMs);  // the last reports on their way
    } finally {
      this.board.io.off(event, onStep);
    }
    return seen;
  }

  /**
   * Resolves once every report the rig sent before now has been handled: a pin state query's answer comes back behind
   * them on the same stream, however late the host reads it.
   */
  flushReports(timeoutMs = 1000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = this.clock.after(timeoutMs, () => reject(new Error(`the rig on ${this.link.description} did not answer a pin state query within ${timeoutMs} ms`)));
      this.board.io.queryPinState(this.pins.tach.number, () => {
        timer.cancel();
        resolve();
      });
    });
  }

  /**
   * The tach's rising edges the rig reported while action ran, for a timebase of the caller's own: counting starts
   * behind every report sent before action and ends behind every report sent before action finished, so that a host
   * that reads its socket late neither loses nor gains pulses at either end.
   */
  async tachPulsesDuring(action: () => Promise<void>): Promise<number> {
    let pulses = 0;
    await this.flushReports();
    const stop = this.onTachRise(() => { pulses += 1; });
    try {
      await action();
      await this.flushReports();
    } finally {
      stop();
    }
    return pulses;
  }

  /** Calls onRise at each rising edge of the tach in the rig's digital reports, from now until the returned stop. */
  private onTachRise(onRise: () => void): () => void {
    let last = this.tach.isDown;
    const event = `digital-read-${this.pins.tach.number}`;
    const onReport = (value: number): void => {
      const high = value !== 0;
      if (high && !last) onRise();
      last = high;
    };
    this.board.io.on(event, onReport);
    return () => this.board.io.off(event, onReport);
  }

  /** Resolves with the ms it took once predicate holds (checked at once and on every report); rejects after timeoutMs. */
  waitFor(predicate: () => boolean, timeoutMs: number, what = 'the condition'): Promise<number> {
    const start = this.clock.nowMs();
    if (predicate()) return Promise.resolve(0);
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!predicate()) return;
        done();
        resolve(this.clock.nowMs() - start);
      };
      const timer = this.clock.after(timeoutMs, () => {
        done();
        reject(new Error(`the rig on ${this.link.description} did not see ${what} within ${timeoutMs} ms${this.lastError === null ? '' : ` (last error: ${this.lastError.message})`}`));
      });
      const done = (): void => {
        timer.cancel();
        this.reportListeners.delete(check);
      };
      this.reportListeners.add(check);
    });
  }

  /**
   * Writes a stimulus and times, from that moment, the first report of motorEnable low and the first A0 reading
   * clearly below the one at the stimulus (3 % of full scale: above the PWM ripple through the RC filter).
   */
  async timeToMotorOff(stimulus: () => void, timeoutMs = 1000): Promise<MotorOffTiming> {
    const io = this.board.io;
    const before = this.pwm.raw ?? 0;
    const dutyBefore = before / this.pwm.resolution;
    const fallBelow = before - 0.03 * this.pwm.resolution;
    const seen: { dutyFallMs: number | null; enableOffMs: number | null } = { dutyFallMs: null, enableOffMs: null };
    const start = this.clock.nowMs();
    const onAnalog = (value: number): void => {
      if (seen.dutyFallMs === null && fallBelow > 0 && value < fallBelow) seen.dutyFallMs = this.clock.nowMs() - start;
    };
    const onDigital = (value: number): void => {
      if (seen.enableOffMs === null && value === 0) seen.enableOffMs = this.clock.nowMs() - start;
    };
    io.on(`analog-read-${this.pins.motorPwm.number}`, onAnalog);
    io.on(`digital-read-${this.pins.motorEnable.number}`, onDigital);
    try {
      stimulus();
      await this.waitFor(() => seen.enableOffMs !== null, timeoutMs, 'motorEnable low');
      if (fallBelow > 0) await this.waitFor(() => seen.dutyFallMs !== null, timeoutMs, 'the motor PWM falling').catch(() => undefined);
    } finally {
      io.off(`analog-read-${this.pins.motorPwm.number}`, onAnalog);
      io.off(`digital-read-${this.pins.motorEnable.number}`, onDigital);
    }
    return { enableOffMs: seen.enableOffMs ?? Number.NaN, dutyFallMs: seen.dutyFallMs, dutyBefore };
  }

  /**
   * Returns the rig's outputs to inputs (so the pen's own switches and pull-ups win through the series resistors: a
   * SYSTEM_RESET would not do, StandardFirmata's reset makes every digital pin an output driven low, which presses the
   * footswitch), stops its reports, and closes the transport once the last write has gone.
   */
  async close(): Promise<void> {
    this.reportListeners.clear();
    this.pwm.disable();
    const io = this.board.io;
    if (this.link.isOpen) {
      io.reportAnalogPin(this.pins.motorPwm.number, 0);
      io.reportDigitalPin(this.pins.tach.number, 0);
      io.reportDigitalPin(this.pins.motorEnable.number, 0);
      io.reportDigitalPin(this.pins.stepperStep.number, 0);
      io.reportDigitalPin(this.pins.stepperDir.number, 0);
      for (const pin of [this.pins.footswitch, this.pins.cartridge, this.pins.estop]) io.pinMode(pin.number, io.MODES.INPUT);
      // On wall time whatever the rig's clock: a simulated one may be about to stop.
      const deadline = performance.now() + 500;
      while (io.pending > 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    io.removeAllListeners();
    this.board.removeAllListeners();
    await this.link.close();
  }
}
