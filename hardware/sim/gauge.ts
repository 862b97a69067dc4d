// The virtual dial gauge: a digital indicator on the needle measuring the plant's true protrusion, with its resolution,
// noise and range from hardware/pen.json calibration.virtualGauge, answering Sylvac-style request lines, in process or on TCP.
import { createServer, type Server } from 'node:net';
import { pen } from '../description.ts';
import { gaussian, seededRandom, type PenPlant } from './plant.ts';
import type { ListenAddress } from './tcp-server.ts';

export interface VirtualGaugeOptions {
  /** Seeds the gauge's own noise, apart from the plant's, so its readings replay for a seed. */
  readonly seed?: number;
  readonly resolutionMm?: number;
  /** One standard deviation, in mm, before rounding to the resolution. */
  readonly noiseMm?: number;
  /** The indicator reads within ±rangeMm of its zero (set on the cartridge tip); beyond, it shows ERR3. */
  readonly rangeMm?: number;
}

/** hal/gauge.ts's Gauge, by shape: hardware/ does not import the host's layers. */
export interface InProcessGauge {
  readonly description: string;
  read(): Promise<number>;
  close(): Promise<void>;
}

export class GaugeOutOfRangeError extends Error {}

export class VirtualGauge {
  readonly resolutionMm: number;
  readonly noiseMm: number;
  readonly rangeMm: number;
  private readonly random: () => number;
  /** Decimals shown: as many as the resolution has (0.001 mm → 3). */
  private readonly decimals: number;

  constructor(private readonly plant: Pick<PenPlant, 'trueDepthMm'>, options: VirtualGaugeOptions = {}) {
    const nominal = pen.calibration.virtualGauge;
    this.resolutionMm = options.resolutionMm ?? nominal.resolutionMm;
    this.noiseMm = options.noiseMm ?? nominal.noiseMm;
    this.rangeMm = options.rangeMm ?? nominal.rangeMm;
    this.random = seededRandom(options.seed ?? 1);
    this.decimals = Math.max(0, Math.ceil(-Math.log10(this.resolutionMm) - 1e-9));
  }

  get description(): string {
    return `virtual gauge (resolution ${this.resolutionMm} mm, noise ${this.noiseMm} mm, range ±${this.rangeMm} mm)`;
  }

  /** One reading of the needle now: noisy, rounded to the resolution; out of range throws GaugeOutOfRangeError. */
  readMm(): number {
    const measuredMm = this.plant.trueDepthMm + this.noiseMm * gaussian(this.random);
    if (Math.abs(measuredMm) > this.rangeMm) {
      throw new GaugeOutOfRangeError(`the virtual gauge reads ${measuredMm.toFixed(3)} mm, outside its range ±${this.rangeMm} mm (ERR3)`);
    }
    const shownMm = Math.round(measuredMm / this.resolutionMm) * this.resolutionMm;
    return Number(shownMm.toFixed(this.decimals));
  }

  /** The answer line to one request line ('?' or 'PRI', its CR or LF optional), CR-terminated. */
  reply(requestLine: string): string {
    const request = requestLine.trim().toUpperCase();
    if (request !== '?' && request !== 'PRI') return 'ERR1\r';
    let reading: number;
    try {
      reading = this.readMm();
    } catch (error) {
      if (error instanceof GaugeOutOfRangeError) return 'ERR3\r';
      throw error;
    }
    const [whole = '0', fraction] = Math.abs(reading).toFixed(this.decimals).split('.');
    const sign = reading < 0 ? '-' : '+';
    return `${sign}${whole.padStart(4, '0')}${fraction === undefined ? '' : `.${fraction}`}\r`;
  }

  /** Reads at the current simulated instant, without a line in between: for tests in virtual time. */
  asGauge(): InProcessGauge {
    return {
      description: this.description,
      read: () => Promise.resolve().then(() => this.readMm()),
      close: () => Promise.resolve(),
    };
  }
}

/** Serves the gauge on TCP: every client may ask; each request line gets its answer line. */
export function serveGauge(gauge: VirtualGauge, address: ListenAddress): Promise<Server> {
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const lines = received.split(/\r\n?|\n/);
      received = lines.pop() ?? '';
      for (const line of lines) if (line.trim() !== '') socket.write(gauge.reply(line));
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => resolve(server));
  });
}
