// Plant models of the virtual pen, driven by the firmware's real pins: depth stepper and lead screw, home switch,
// depth sensor, needle motor with cam and tach, current shunt, NTC, supply. Each has fault-injection hooks.
import type { AVRADC, AVRIOPort, CPU } from 'avr8js';
import { pen, pins, stepsPerMm, type PinName } from '../description.ts';

const cyclesPerSecond = pen.board.cpuHz;
const tickCycles = 800;  // 50 us: the motor and thermal models integrate at 20 kHz
const tickSeconds = tickCycles / cyclesPerSecond;
const tachPulseCycles = Math.round(cyclesPerSecond * 100e-6);
const adcReferenceVolts = pen.sensors.adcReferenceMv / 1000;
const mechanicalStopMm = -0.05;  // the carriage cannot retract further than this past the switch
const screwErrorPeriodMm = pen.mechanics.leadScrewPitchMm;  // a screw's periodic lead error repeats once a turn

// Needle motor: a brushed DC motor on a cam, one stroke per revolution (units: V, A, ohm, rev/s).
const motorModel = {
  supplyVolts: 12,
  windingOhms: 3,
  backEmfVoltsPerRevPerSecond: 0.06,
  torquePerAmp: 0.06,
  friction: 0.0001,
  inertia: 5.2e-5,  // about 40 ms mechanical time constant
} as const;

export const motorLoads = { none: 0, nominal: 0.015, heavy: 0.04, jam: 0.5 } as const;
export type MotorLoad = keyof typeof motorLoads;
export type SensorFault = 'open' | 'short' | null;

export interface PlantMachine {
  readonly cpu: CPU;
  readonly adc: AVRADC;
  readonly ports: Readonly<Record<'B' | 'C' | 'D', AVRIOPort>>;
}

/** Small deterministic PRNG (mulberry32), so fault injection and noise replay exactly for a seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Seeded normal noise (Box–Muller over the pen's PRNG), so sensor noise replays for a seed. */
export function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

export class PenPlant {
  // Depth stage.
  /** Carriage position in whole microsteps, plus any slip: 0 mm is where the home switch opens. */
  carriageSteps = 0;
  slippedMm = 0;
  /**
   * Mechanical errors the calibration must find or reject. The home switch and the depth sensor see the carriage (the
   * lead screw's nut, where the steps put it), so these errors are invisible to them: only a gauge on the needle sees
   * them, and the sensor's own calibration stays independent of the step calibration. Between the nut and the needle:
   *   needle (carriage mm) = carriage + screwNonlinearityMm · cos(2π · carriage / pitch) + slack
   *   true depth           = needle × (1 + scaleError) + offsetMm
   * The lead error repeats once a screw turn (pen.json mechanics.leadScrewPitchMm) and peaks at home, so that the fit
   * points 0.5 mm apart see it (a sine would hide in its zeros there). The slack is the backlash: moving deeper, the
   * carriage pushes the needle directly (slack 0, so a plant approached from below reads as one without backlash);
   * moving back, the needle stays put until the carriage has taken up backlashMm, then trails it that far deeper.
   */
  offsetMm = 0;
  scaleError = 0;
  backlashMm = 0;
  screwNonlinearityMm = 0;
  /** How far the needle is deeper than the carriage puts it: 0 after a move deeper, up to backlashMm after one back. */
  private slackMm = 0;
  /** The deepest the carriage has been since the last resetDeepest(): the window check for tests. */
  deepestCarriageMm = 0;
  stepsReceived = 0;
  stepsLost = 0;
  homeSwitchStuck = false;
  /** A broken home switch (cut wire, dead contact): it never reads pressed, wherever the carriage is. */
  homeSwitchBroken = false;
  depthSensorFault: SensorFault = null;

  // Needle drive.
  load: number = motorLoads.nominal;
  tachBroken = false;
  speedRevPerSecond = 0;
  revolutions = 0;
  motorCurrentAmps = 0;

  // Temperature and supply.
  ambientC = 25;
  handpieceC = 25;
  forcedTemperatureC: number | null = null;
  ntcFault: SensorFault = null;
  supplyVolts = 12;

  private machine: PlantMachine | null = null;
  private lastStepLevel = false;

  constructor(
    private readonly random: () => number,
    private readonly drivePin: (name: PinName, active: boolean) => void,
  ) {}

  /** Carriage position: positive toward the skin; the home switch is pressed below 0. */
  get carriageMm(): number {
    return this.carriageSteps / stepsPerMm + this.slippedMm;
  }

  /** True needle depth past the cartridge tip, in mm. */
  get trueDepthMm(): number {
    const carriageMm = this.carriageMm;
    const leadErrorMm = this.screwNonlinearityMm * Math.cos((2 * Math.PI * carriageMm) / screwErrorPeriodMm);
    const needleMm = carriageMm + leadErrorMm + Math.min(this.slackMm, this.backlashMm);
    return needleMm * (1 + this.scaleError) + this.offsetMm;
  }

  get strokesPerSecond(): number {
    return this.speedRevPerSecond;
  }

  get temperatureC(): number {
    return this.forcedTemperatureC ?? this.handpieceC;
  }

  setLoad(load: MotorLoad | number): void {
    this.load = typeof load === 'number' ? load : motorLoads[load];
  }

  /** The carriage moves without steps (slipping coupling, a knock): the step count is now wrong. */
  slip(mm: number): void {
    const slipped = Math.min(pen.mechanics.travelMm, Math.max(mechanicalStopMm, this.carriageMm + mm)) - this.carriageMm;
    this.slippedMm += slipped;
    this.takeUpSlack(slipped);
    this.updateHomeSwitch();
  }

  setHomeSwitchStuck(stuck: boolean): void {
    this.homeSwitchStuck = stuck;
    this.updateHomeSwitch();
  }

  setHomeSwitchBroken(broken: boolean): void {
    this.homeSwitchBroken = broken;
    this.updateHomeSwitch();
  }

  /** The PWM duty the firmware applies to the motor (0–1), read from Timer0 and the driver enable pin. */
  motorDrive(): number {
    const machine = this.machine;
    if (machine === null || !this.outputActive('motorEnable')) return 0;
    const tccr0a = machine.cpu.data[0x44] ?? 0;
    const pwmConnected = (tccr0a & 0x80) !== 0;
    if (pwmConnected) return ((machine.cpu.data[0x47] ?? 0) + 1) / 256;
    return this.outputActive('motorPwm') ? 1 : 0;
  }

  /** Wires the models to a (new) MCU: pin listeners, the ADC and the integration tick. */
  attach(machine: PlantMachine): void {
    this.machine = machine;
    const step = pins.stepperStep;
    this.lastStepLevel = false;
    machine.ports[step.port].addListener(() => this.onStepPort());
    const { adc, cpu } = machine;
    adc.onADCRead = (input) => {
      const volts = 'channel' in input ? this.channelVolts(input.channel) : 0;
      const counts = Math.min(1023, Math.max(0, Math.floor((volts / adcReferenceVolts) * 1024)));
      cpu.addClockEvent(() => adc.completeADCRead(counts), adc.sampleCycles);
    };
    const tick = (): void => {
      if (this.machine !== machine) return;  // the MCU was reset: the new one has its own tick
      this.integrate(machine);
      cpu.addClockEvent(tick, tickCycles);
    };
    cpu.addClockEvent(tick, tickCycles);
    this.updateHomeSwitch();
  }

  private outputActive(name: PinName): boolean {
    const machine = this.machine;
    if (machine === null) return false;
    const pin = pins[name];
    const port = machine.ports[pin.port];
    const high = ((machine.cpu.data[port.portConfig.PORT] ?? 0) >> pin.bit) & 1;
    const output = ((machine.cpu.data[port.portConfig.DDR] ?? 0) >> pin.bit) & 1;
    return output === 1 && (high === 1) !== pin.activeLow;
  }

  private onStepPort(): void {
    const level = this.outputActive('stepperStep');
    const rising = level && !this.lastStepLevel;
    this.lastStepLevel = level;
    if (!rising || !this.outputActive('stepperEnable')) return;
    this.stepsReceived++;
    const deeper = this.outputActive('stepperDir');
    const direction = deeper ? 1 : -1;
    const next = this.carriageMm + direction / stepsPerMm;
    if (next < mechanicalStopMm || next > pen.mechanics.travelMm) {
      this.stepsLost++;  // against a mechanical stop the motor skips
      return;
    }
    this.carriageSteps += direction;
    this.takeUpSlack(direction / stepsPerMm);
    this.deepestCarriageMm = Math.max(this.deepestCarriageMm, this.carriageMm);
    this.updateHomeSwitch();
  }

  /** The carriage moved by movedMm: the needle keeps its place inside the dead band and is dragged along at its edges. */
  private takeUpSlack(movedMm: number): void {
    this.slackMm = Math.min(this.backlashMm, Math.max(0, this.slackMm - movedMm));
  }

  resetDeepest(): void {
    this.deepestCarriageMm = this.carriageMm;
  }

  private updateHomeSwitch(): void {
    this.drivePin('homeSwitch', !this.homeSwitchBroken && (this.homeSwitchStuck || this.carriageMm < -1e-9));
  }

  private channelVolts(channel: number): number {
    const channels = pen.adcChannels;
    if (channel === channels.motorCurrent) {
      return Math.max(0, (this.motorCurrentAmps * pen.sensors.currentShuntMvPerA) / 1000 + 0.003 * gaussian(this.random));
    }
    if (channel === channels.temperature) {
      if (this.ntcFault !== null) return this.ntcFault === 'open' ? adcReferenceVolts : 0;
      const { ntcR25Ohms, ntcBeta, ntcPullupOhms } = pen.sensors;
      const kelvin = this.temperatureC + 273.15;
      const ohms = ntcR25Ohms * Math.exp(ntcBeta * (1 / kelvin - 1 / 298.15));
      return (adcReferenceVolts * ohms) / (ohms + ntcPullupOhms);
    }
    if (channel === channels.supply) return this.supplyVolts / pen.sensors.supplyDividerRatio;
    if (channel === channels.depthSensor) {
      if (this.depthSensorFault !== null) return this.depthSensorFault === 'open' ? adcReferenceVolts : 0;
      const { depthSensorZeroMv, depthSensorMvPerMm } = pen.sensors;
      return (depthSensorZeroMv + depthSensorMvPerMm * this.carriageMm) / 1000 + 0.001 * gaussian(this.random);
    }
    return 0;
  }

  private integrate(machine: PlantMachine): void {
    const m = motorModel;
    const appliedVolts = this.motorDrive() * m.supplyVolts * (this.supplyVolts / 12);
    const backEmf = m.backEmfVoltsPerRevPerSecond * this.speedRevPerSecond;
    // A driver that is off lets the motor coast; a driven winding never pushes current backwards through it.
    this.motorCurrentAmps = appliedVolts > 0 ? Math.max(0, (appliedVolts - backEmf) / m.windingOhms) : 0;
    const torque = m.torquePerAmp * this.motorCurrentAmps - m.friction * this.speedRevPerSecond;
    const loadTorque = this.speedRevPerSecond > 0 ? this.load : Math.min(this.load, Math.max(0, torque));
    this.speedRevPerSecond = Math.max(0, this.speedRevPerSecond + ((torque - loadTorque) / m.inertia) * tickSeconds);

    const before = this.revolutions;
    this.revolutions += this.speedRevPerSecond * tickSeconds;
    if (Math.floor(this.revolutions) > Math.floor(before) && !this.tachBroken) {
      // The cam passes the hall sensor inside this tick: place the edge at its exact cycle.
      const fraction = (Math.floor(this.revolutions) - before) / (this.revolutions - before);
      const edgeIn = Math.max(1, Math.round(fraction * tickCycles));
      machine.cpu.addClockEvent(() => {
        this.drivePin('tach', true);
        machine.cpu.addClockEvent(() => this.drivePin('tach', false), tachPulseCycles);
      }, edgeIn);
    }

    // Handpiece temperature: 5 K/W to ambient with a 60 s time constant, heated by the winding.
    const watts = this.motorCurrentAmps ** 2 * m.windingOhms;
    this.handpieceC += ((this.ambientC + 5 * watts - this.handpieceC) / 60) * tickSeconds;
  }
}
