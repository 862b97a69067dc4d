// The plant's backlash and screw lead error, the virtual dial gauge (resolution, noise, range, line protocol), and the
// host's gauge client: reading lines parsed or refused, a gauge on TCP read, silent, or showing an error.
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../hardware/clock.ts';
import { pen as description, stepsPerMm } from '../../hardware/description.ts';
import { GaugeOutOfRangeError, serveGauge, VirtualGauge } from '../../hardware/sim/gauge.ts';
import { PenPlant } from '../../hardware/sim/plant.ts';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { PenDevice } from '../../hal/device.ts';
import { GaugeError, openGauge, parseGaugeLine, type Gauge } from '../../hal/gauge.ts';

/** A plant without an MCU: slip() moves its carriage as steps would, which is all the mechanics need. */
const bench = (): PenPlant => new PenPlant(() => 0.5, () => {});

/** Least-squares line through (x, y): the residuals it leaves. */
function lineResiduals(points: readonly (readonly [number, number])[]): number[] {
  const n = points.length;
  const meanX = points.reduce((sum, [x]) => sum + x, 0) / n;
  const meanY = points.reduce((sum, [, y]) => sum + y, 0) / n;
  const slope = points.reduce((sum, [x, y]) => sum + (x - meanX) * (y - meanY), 0) /
    points.reduce((sum, [x]) => sum + (x - meanX) ** 2, 0);
  return points.map(([x, y]) => y - (meanY + slope * (x - meanX)));
}

describe('the plant\'s mechanical errors', () => {
  it('without backlash or lead error, true depth is carriage × (1 + scale error) + offset, exactly as before', () => {
    const plant = bench();
    plant.offsetMm = 0.025;
    plant.scaleError = -0.006;
    for (const mm of [0.7, 0.4, -0.3, 1.9, -1.2, 0.001]) {
      plant.slip(mm);
      expect(plant.trueDepthMm).toBe(plant.carriageMm * (1 + plant.scaleError) + plant.offsetMm);
    }
  });

  it('backlash: approached from below the needle sits where the carriage puts it, from above that much deeper', () => {
    const plant = bench();
    plant.backlashMm = 0.03;
    plant.slip(1.0);
    const fromBelow = plant.trueDepthMm;
    expect(fromBelow).toBeCloseTo(1.0, 12);
    plant.slip(0.02);  // back by less than the slack: the needle stays where it was pushed
    plant.slip(-0.02);
    expect(plant.trueDepthMm).toBeCloseTo(1.02, 12);
    plant.slip(0.2);
    plant.slip(-0.2);
    expect(plant.trueDepthMm - fromBelow).toBeCloseTo(0.03, 12);
    plant.slip(0.01);  // forward again: the slack is taken up before the needle moves
    expect(plant.trueDepthMm - fromBelow).toBeCloseTo(0.03, 12);
    plant.slip(0.05);
    expect(plant.trueDepthMm).toBeCloseTo(1.06, 12);
  });

  it('backlash through the firmware\'s own steps: parked at 1.0 mm from below and from above differ by the backlash', async () => {
    const pen = new VirtualPen({ seed: 3 });
    pen.plant.backlashMm = 0.02;
    pen.start();
    const device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
    try {
      await device.depth.home();
      await device.depth.moveTo(1.0);
      const fromBelow = { carriage: pen.plant.carriageMm, trueMm: pen.plant.trueDepthMm };
      await device.depth.moveTo(1.2);
      await device.depth.moveTo(1.0);
      expect(pen.plant.carriageMm).toBe(fromBelow.carriage);
      expect(pen.plant.trueDepthMm - fromBelow.trueMm).toBeCloseTo(0.02, 9);
    } finally {
      await device.close();
      await pen.stop();
    }
  });

  it('lead error: periodic once a screw turn with the given peak, leaving residuals a straight line cannot remove', () => {
    const plant = bench();
    plant.screwNonlinearityMm = 0.01;
    const points: [number, number][] = [];
    let errorPeakMm = 0;
    for (let carriageMm = 0; carriageMm <= 2; carriageMm += 0.25) {
      plant.slip(carriageMm - plant.carriageMm);
      const errorMm = plant.trueDepthMm - plant.carriageMm;
      errorPeakMm = Math.max(errorPeakMm, Math.abs(errorMm));
      const turnMm = (carriageMm < 1 ? 1 : -1) * description.mechanics.leadScrewPitchMm;
      plant.slip(turnMm);  // a screw turn away: the same error
      expect(plant.trueDepthMm - plant.carriageMm).toBeCloseTo(errorMm, 12);
      plant.slip(-turnMm);
      if (carriageMm >= 0.5) points.push([carriageMm, plant.trueDepthMm]);
    }
    expect(errorPeakMm).toBeCloseTo(0.01, 12);
    // The calibration's fit points, 0.5 mm apart, see it: residuals beyond the 8 µm acceptance.
    const fitResiduals = lineResiduals(points.filter(([x]) => Number.isInteger(x * 2)));
    expect(Math.max(...fitResiduals.map(Math.abs))).toBeGreaterThan(0.01);
  });
});

describe('the virtual gauge', () => {
  /** A plant parked at trueMm (carriage only, no errors). */
  const parkedAt = (trueMm: number): PenPlant => {
    const plant = bench();
    plant.carriageSteps = Math.round(trueMm * stepsPerMm);
    plant.offsetMm = trueMm - plant.carriageMm;
    return plant;
  };

  it('reads the true depth to its resolution, with its noise: statistics over many readings', () => {
    const plant = parkedAt(1.2345);
    const gauge = new VirtualGauge(plant, { seed: 11, resolutionMm: 0.001, noiseMm: 0.002 });
    const readings = Array.from({ length: 4000 }, () => gauge.readMm());
    for (const reading of readings) expect(Math.abs(reading * 1000 - Math.round(reading * 1000))).toBeLessThan(1e-6);
    const mean = readings.reduce((sum, r) => sum + r, 0) / readings.length;
    const sd = Math.sqrt(readings.reduce((sum, r) => sum + (r - mean) ** 2, 0) / (readings.length - 1));
    expect(Math.abs(mean - 1.2345)).toBeLessThan((4 * 0.002) / Math.sqrt(readings.length));
    // Rounding adds resolution²/12 of variance to the noise's.
    expect(sd).toBeGreaterThan(0.9 * Math.sqrt(0.002 ** 2 + 0.001 ** 2 / 12));
    expect(sd).toBeLessThan(1.1 * Math.sqrt(0.002 ** 2 + 0.001 ** 2 / 12));
    // The same seed, the same readings; another seed, others.
    const again = new VirtualGauge(plant, { seed: 11, resolutionMm: 0.001, noiseMm: 0.002 });
    expect(Array.from({ length: 10 }, () => again.readMm())).toEqual(readings.slice(0, 10));
    const other = new VirtualGauge(plant, { seed: 12, resolutionMm: 0.001, noiseMm: 0.002 });
    expect(Array.from({ length: 10 }, () => other.readMm())).not.toEqual(readings.slice(0, 10));
  });

  it('defaults to pen.json calibration.virtualGauge', () => {
    const gauge = new VirtualGauge(bench());
    const nominal = description.calibration.virtualGauge;
    expect({ resolutionMm: gauge.resolutionMm, noiseMm: gauge.noiseMm, rangeMm: gauge.rangeMm })
      .toEqual({ resolutionMm: nominal.resolutionMm, noiseMm: nominal.noiseMm, rangeMm: nominal.rangeMm });
  });

  it('answers "?" and "PRI" with sign, digits and as many decimals as its resolution; ERR3 out of range, ERR1 otherwise', () => {
    const quiet = (plant: PenPlant, resolutionMm = 0.001): VirtualGauge => new VirtualGauge(plant, { noiseMm: 0, resolutionMm, rangeMm: 1.5 });
    expect(quiet(parkedAt(1.234)).reply('?\r')).toBe('+0001.234\r');
    expect(quiet(parkedAt(1.234)).reply('PRI\n')).toBe('+0001.234\r');
    expect(quiet(parkedAt(-0.03)).reply('?')).toBe('-0000.030\r');
    expect(quiet(parkedAt(1.234), 0.01).reply('?')).toBe('+0001.23\r');
    expect(quiet(parkedAt(1.234), 0.0001).reply('?')).toBe('+0001.2340\r');
    expect(quiet(parkedAt(1.6)).reply('?')).toBe('ERR3\r');
    expect(() => quiet(parkedAt(1.6)).readMm()).toThrow(GaugeOutOfRangeError);
    expect(quiet(parkedAt(1.0)).reply('MM')).toBe('ERR1\r');
  });

  it('reads in process at the current instant', async () => {
    const plant = parkedAt(0.75);
    const gauge = new VirtualGauge(plant, { noiseMm: 0 }).asGauge();
    expect(await gauge.read()).toBe(0.75);
    plant.slip(0.25);
    expect(await gauge.read()).toBe(1.0);
    await gauge.close();
  });
});

describe('parseGaugeLine', () => {
  it('accepts the reading lines common indicators print', () => {
    expect(parseGaugeLine('+0001.234\r')).toBe(1.234);
    expect(parseGaugeLine('-0000.030\r\n')).toBe(-0.03);
    expect(parseGaugeLine(' 0001.234')).toBe(1.234);
    expect(parseGaugeLine('+0001.234, MM\r')).toBe(1.234);
    expect(parseGaugeLine('1.234 mm\n')).toBe(1.234);
    expect(parseGaugeLine('+12.5')).toBe(12.5);
    expect(parseGaugeLine('-.5')).toBe(-0.5);
  });

  it('refuses anything else, saying what came and what is expected; an ERR line is the gauge\'s error', () => {
    for (const line of ['', 'abc\r', '+0001.234 in', '1.2.3', '++1.0', '0.0625"']) {
      expect(() => parseGaugeLine(line)).toThrow(GaugeError);
      expect(() => parseGaugeLine(line)).toThrow(new RegExp(`the gauge sent ${JSON.stringify(line.replace(/\r$/, '')).replace(/[.+"]/g, '\\$&')}, expected a reading in mm such as "\\+0001\\.234"`));
    }
    expect(() => parseGaugeLine('ERR3\r')).toThrow(/the gauge reports ERR3: the reading is outside its measuring range/);
    expect(() => parseGaugeLine('ERR1')).toThrow(/the gauge reports ERR1: it did not understand the request/);
    expect(() => parseGaugeLine('Err 7')).toThrow(/the gauge reports ERR7: see its manual/);
  });
});

describe('openGauge over TCP', () => {
  const servers: Server[] = [];
  const gauges: Gauge[] = [];
  afterEach(async () => {
    await Promise.all(gauges.splice(0).map((gauge) => gauge.close()));
    await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  });

  const addressOf = (server: Server): string => {
    const bound = server.address();
    if (bound === null || typeof bound === 'string') throw new Error('not a TCP server');
    return `tcp://127.0.0.1:${bound.port}`;
  };

  async function served(gauge: VirtualGauge, clock?: VirtualClock): Promise<Gauge> {
    const server = await serveGauge(gauge, { host: '127.0.0.1', port: 0 });
    servers.push(server);
    const client = await openGauge(addressOf(server), clock === undefined ? {} : { clock });
    gauges.push(client);
    return client;
  }

  it('reads the virtual gauge, one reading per request', async () => {
    const plant = bench();
    plant.slip(1.25);
    const gauge = await served(new VirtualGauge(plant, { noiseMm: 0 }));
    expect(gauge.description).toMatch(/^gauge on tcp:\/\/127\.0\.0\.1:\d+$/);
    expect(await Promise.all([gauge.read(), gauge.read()])).toEqual([1.25, 1.25]);
    plant.slip(-0.5);
    expect(await gauge.read()).toBe(0.75);
  });

  it('says the gauge shows an error when it answers ERR3', async () => {
    const plant = bench();
    plant.slip(2);
    const gauge = await served(new VirtualGauge(plant, { noiseMm: 0, rangeMm: 1 }));
    await expect(gauge.read()).rejects.toThrow(GaugeError);
    await expect(gauge.read()).rejects.toThrow(/the gauge reports ERR3/);
  });

  it('times out on a silent gauge, naming where it asked, and takes no late answer for the next reading', async () => {
    let requested: () => void = () => {};
    const sockets: Socket[] = [];
    const silent = createServer((socket) => {
      sockets.push(socket);
      socket.on('data', () => requested());
    });
    servers.push(silent);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const clock = new VirtualClock();
    const gauge = await openGauge(addressOf(silent), { timeoutMs: 500, clock });
    gauges.push(gauge);
    const asked = new Promise<void>((resolve) => { requested = resolve; });
    const reading = gauge.read();
    await asked;
    clock.advanceTo(499);
    clock.advanceTo(500);
    await expect(reading).rejects.toThrow(new RegExp(`no answer from the gauge on ${addressOf(silent)} within 500 ms`));
    // The answer comes late, then the next request's: only the second counts.
    const askedAgain = new Promise<void>((resolve) => { requested = resolve; });
    sockets[0]?.write('+0001.000\r');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const next = gauge.read();
    await askedAgain;
    sockets[0]?.write('+0002.000\r');
    expect(await next).toBe(2);
    for (const socket of sockets) socket.destroy();
  });

  it('says when the gauge closes the connection', async () => {
    const closing = createServer((socket) => socket.on('data', () => socket.destroy()));
    servers.push(closing);
    await new Promise<void>((resolve) => closing.listen(0, '127.0.0.1', resolve));
    const gauge = await openGauge(addressOf(closing), { clock: new VirtualClock() });
    gauges.push(gauge);
    await expect(gauge.read()).rejects.toThrow(/the gauge on tcp:\/\/127\.0\.0\.1:\d+ closed the connection/);
  });
});
