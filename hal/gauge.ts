// The host's side of a digital dial indicator: its reading lines parsed, and a gauge on a serial port or TCP asked for one.
import { RealClock, type Clock } from '../hardware/clock.ts';
import { pen } from '../hardware/description.ts';
import { openTransport, SerialTransport, type Transport } from './link/transport.ts';

/** A length gauge the calibration reads the needle's protrusion from. */
export interface Gauge {
  readonly description: string;
  /** One reading, in mm. */
  read(): Promise<number>;
  close(): Promise<void>;
}

export class GaugeError extends Error {}

/** What the indicator's error codes mean (Sylvac-style RS-232 indicators; hardware/pen.json calibration.doc). */
const gaugeErrors: Readonly<Record<string, string>> = {
  ERR1: 'it did not understand the request',
  ERR3: 'the reading is outside its measuring range: check that the plunger rests on the needle and the gauge is zeroed on the tip',
};

const EXPECTED = 'a reading in mm such as "+0001.234" (sign or space, digits, decimals; an optional " mm" or ", MM")';
const READING = /^\s*([+-]?)\s*(\d+(?:\.\d*)?|\.\d+)(?:\s*,?\s*mm)?\s*$/i;
const GAUGE_ERROR = /^\s*(ERR\s*\d+)\s*$/i;

/** A reading line as the gauge sends it (CR or LF included or not), in mm; anything else is a GaugeError naming it. */
export function parseGaugeLine(line: string): number {
  const text = line.replace(/[\r\n]+$/, '');
  const error = GAUGE_ERROR.exec(text)?.[1];
  if (error !== undefined) {
    const code = error.replace(/\s+/g, '').toUpperCase();
    throw new GaugeError(`the gauge reports ${code}: ${gaugeErrors[code] ?? 'see its manual for this code'}`);
  }
  const match = READING.exec(text);
  if (match === null) throw new GaugeError(`the gauge sent ${JSON.stringify(text)}, expected ${EXPECTED}`);
  const magnitude = Number(match[2]);
  return match[1] === '-' ? -magnitude : magnitude;
}

export interface OpenGaugeOptions {
  /** How long a reading may take before the gauge counts as silent (default 1000 ms). */
  readonly timeoutMs?: number;
  readonly clock?: Clock;
}

const defaultTimeoutMs = 1000;

/**
 * Opens a gauge on `tcp://HOST:PORT` (the virtual pen's, `pen sim --gauge`) or a serial path, 8N1 at
 * pen.json calibration.virtualGauge.baud unless the path ends in `?baud=N` (e.g. /dev/ttyUSB1?baud=4800).
 */
export async function openGauge(port: string, options: OpenGaugeOptions = {}): Promise<Gauge> {
  const serial = /^(.*)\?baud=(\d+)$/.exec(port);
  let transport: Transport;
  if (port.startsWith('tcp:')) {
    transport = await openTransport(port);
  } else {
    const baud = serial === null ? pen.calibration.virtualGauge.baud : Number(serial[2]);
    if (!(baud >= 300 && baud <= 115200)) throw new GaugeError(`gauge baud rate ${serial?.[2] ?? ''} is outside 300–115200`);
    transport = await SerialTransport.open(serial?.[1] ?? port, baud);
  }
  return new LineGauge(transport, options.timeoutMs ?? defaultTimeoutMs, options.clock ?? new RealClock());
}

interface PendingRead {
  resolve(line: string): void;
  reject(error: Error): void;
}

/** Asks with '?' + CR and takes the next line; one request at a time, as the indicator answers in order. */
class LineGauge implements Gauge {
  private received = '';
  private pending: PendingRead | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private closedBecause: GaugeError | null = null;

  constructor(private readonly transport: Transport, private readonly timeoutMs: number, private readonly clock: Clock) {
    transport.onData((bytes) => this.onData(Buffer.from(bytes).toString('latin1')));
    transport.onClose((error) => {
      this.closedBecause = new GaugeError(`the gauge on ${transport.description} closed the connection${error ? `: ${error.message}` : ''}`);
      this.pending?.reject(this.closedBecause);
      this.pending = null;
    });
  }

  get description(): string {
    return `gauge on ${this.transport.description}`;
  }

  read(): Promise<number> {
    const reading = this.queue.then(() => this.requestLine()).then(parseGaugeLine);
    this.queue = reading.catch(() => undefined);
    return reading;
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  private requestLine(): Promise<string> {
    if (this.closedBecause !== null) return Promise.reject(this.closedBecause);
    // A late answer to a request that timed out must not be taken for this one's.
    this.received = '';
    return new Promise((resolve, reject) => {
      const timer = this.clock.after(this.timeoutMs, () => {
        this.pending = null;
        reject(new GaugeError(`no answer from the gauge on ${this.transport.description} within ${this.timeoutMs} ms: ` +
          'check that it is switched on, its cable, and its link settings (8N1, the baud rate given)'));
      });
      this.pending = {
        resolve: (line) => { timer.cancel(); resolve(line); },
        reject: (error) => { timer.cancel(); reject(error); },
      };
      this.transport.write(Buffer.from('?\r', 'latin1'));
    });
  }

  private onData(text: string): void {
    this.received += text;
    for (;;) {
      const end = this.received.search(/[\r\n]/);
      if (end < 0) return;
      const line = this.received.slice(0, end);
      this.received = this.received.slice(end + 1);
      // CR LF ends a line once; an unasked line (the gauge's own DATA key) has no reader and is dropped.
      if (line.trim() === '' || this.pending === null) continue;
      const pending = this.pending;
      this.pending = null;
      pending.resolve(line);
    }
  }
}
