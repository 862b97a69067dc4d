// The virtual rig: a second ATmega328P (an Uno) in avr8js running Firmata, wired to the virtual pen's pins as
// hardware/rig.json says and stepped in the pen's simulated time; its UART served as a serial port for firmata-io.
import { existsSync, readFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AVRADC, AVRClock, AVRIOPort, AVRTimer, AVRUSART, CPU, adcConfig, clockConfig, portBConfig, portCConfig, portDConfig,
  timer0Config, timer1Config, timer2Config, usart0Config,
} from 'avr8js';
import rigJson from '../rig.json' with { type: 'json' };
import { pen as penDescription, pins, type PinName } from '../description.ts';
import { parseIntelHex } from './intel-hex.ts';
import { McuUart } from './mcu-uart.ts';
import { servePort, type ListenAddress } from './tcp-server.ts';
import { matchChipUsart, stepLikeTheChip, type CompanionMcu, type VirtualPen } from './virtual-pen.ts';

const buildDir = join(dirname(fileURLToPath(import.meta.url)), '../../firmware/build');
/** The project's own rig firmware (firmware/rig/), when built. */
export const rigFirmwareHexPath = join(buildDir, 'rig.hex');
/** Stock StandardFirmata for the Uno, fetched by scripts/fetch-standard-firmata.sh. */
export const standardFirmataHexPath = join(buildDir, 'standard-firmata.hex');

/** The rig firmware to run when none is named: our own if built, else StandardFirmata; an error says how to get either. */
export function defaultRigFirmwarePath(): string {
  if (existsSync(rigFirmwareHexPath)) return rigFirmwareHexPath;
  if (existsSync(standardFirmataHexPath)) return standardFirmataHexPath;
  throw new Error(`no rig firmware: neither ${rigFirmwareHexPath} (build it with \`npm run firmware\`) nor ${standardFirmataHexPath} ` +
    '(fetch it with `bash scripts/fetch-standard-firmata.sh`) exists');
}

/** The rig is an Uno: the same chip and crystal as the pen's reference board. */
const cpuHz = penDescription.board.cpuHz;
const cyclesPerMs = cpuHz / 1000;
/** The Uno's ADC reference (AVcc, which Firmata's analogRead uses) and the rig's logic level. */
const rigVolts = 5;
/** Registers of the pen's Timer0, whose OC0A is the motorPwm pin (ATmega328P datasheet, register summary). */
const TCCR0A = 0x44;
const TCCR0B = 0x45;
const OCR0A = 0x47;
/** SRAM's first address in the data space, after the registers and I/O. */
const sramStart = 0x100;

type RigPort = 'B' | 'C' | 'D';

export interface RigWire {
  /** Arduino numbering, as in rig.json: D0–D13, A0–A5. */
  readonly rigPin: string;
  readonly direction: 'input' | 'output';
  readonly penSignal: PinName;
  readonly level: string;
  /** An input through the rig board's pulse stretcher: the shortest high the rig sees, in rig cycles (0: none). */
  readonly stretchCycles: number;
  /** The rig's AVR port and bit for rigPin. */
  readonly port: RigPort;
  readonly bit: number;
}

/** The Uno's pin numbering on the ATmega328P: D0–D7 are PD0–7, D8–D13 PB0–5, A0–A5 PC0–5 (ADC0–5). */
function unoPin(name: string): { readonly port: RigPort; readonly bit: number } {
  const match = /^([DA])(\d+)$/.exec(name);
  const number = Number(match?.[2]);
  if (match?.[1] === 'A' && number <= 5) return { port: 'C', bit: number };
  if (match?.[1] === 'D' && number <= 7) return { port: 'D', bit: number };
  if (match?.[1] === 'D' && number <= 13) return { port: 'B', bit: number - 8 };
  throw new Error(`hardware/rig.json names rig pin ${name}: an Uno has D0–D13 and A0–A5`);
}

/** rig.json's wiring, checked against pen.json's pins. */
export const rigWiring: readonly RigWire[] = rigJson.wiring.map((wire) => {
  if (!Object.hasOwn(pins, wire.penSignal)) throw new Error(`hardware/rig.json wires ${wire.rigPin} to ${wire.penSignal}, which pen.json does not name`);
  if (wire.direction !== 'input' && wire.direction !== 'output') throw new Error(`hardware/rig.json: ${wire.rigPin}'s direction must be input or output`);
  const stretchMs = 'stretchMs' in wire ? wire.stretchMs : 0;
  return { ...wire, direction: wire.direction, penSignal: wire.penSignal as PinName, stretchCycles: Math.round(stretchMs * cyclesPerMs), ...unoPin(wire.rigPin) };
});

const analogWires = rigWiring.filter((wire) => wire.rigPin.startsWith('A'));
const digitalWires = rigWiring.filter((wire) => wire.rigPin.startsWith('D'));
const outputWires = digitalWires.filter((wire) => wire.direction === 'output');
const motorPwmWire = analogWires.find((wire) => wire.penSignal === 'motorPwm');
if (motorPwmWire === undefined) throw new Error('hardware/rig.json wires no analog input to motorPwm');
const motorPwmChannel = motorPwmWire.bit;
const rcTauMs = rigJson.rcFilter.ohms * rigJson.rcFilter.microfarads * 1e-6 * 1000;

/**
 * The duty the pen's firmware puts on its motorPwm pin (0–1), from Timer0's registers as the chip generates OC0A: the
 * pin's own level when the compare output is disconnected or the pin is an input (the board's pull-down: 0).
 */
export function motorPwmPinDuty(pen: VirtualPen): number {
  const data = pen.mcu.data;
  const pin = pins.motorPwm;
  const port = pin.port === 'D' ? portDConfig : pin.port === 'B' ? portBConfig : portCConfig;
  if ((((data[port.DDR] ?? 0) >> pin.bit) & 1) === 0) return 0;
  const tccr0a = data[TCCR0A] ?? 0;
  const compareOutput = tccr0a >> 6;
  if (compareOutput < 2) return (((data[port.PORT] ?? 0) >> pin.bit) & 1);
  const mode = (tccr0a & 0x03) | (((data[TCCR0B] ?? 0) >> 1) & 0x04);
  const ocr = data[OCR0A] ?? 0;
  // Fast PWM sets at BOTTOM and clears one count after the match (a 1/256 spike at 0); phase correct is OCR/255.
  const high = mode === 3 || mode === 7 ? (ocr + 1) / 256 : mode === 1 || mode === 5 ? ocr / 255 : 0;
  return compareOutput === 3 ? 1 - high : high;
}

export interface VirtualRigOptions {
  /** Intel HEX of the rig firmware; defaults to defaultRigFirmwarePath(). */
  readonly firmwarePath?: string;
  /** The lock-step slice: the pen and the rig never drift further apart in simulated time. 10 µs by default. */
  readonly sliceUs?: number;
}

interface RigMachine {
  readonly cpu: CPU;
  readonly usart: AVRUSART;
  readonly adc: AVRADC;
  readonly ports: Readonly<Record<RigPort, AVRIOPort>>;
}

/**
 * A second ATmega328P at 16 MHz running Firmata, attached to a virtual pen: the pen steps it in lock-step slices
 * (CompanionMcu), so rig timings are the pen's simulated time. Rig outputs (e-stop, cartridge, footswitch) drive the
 * pen's inputs while they are outputs; rig inputs read the pen's lines; A0 reads motorPwm through the RC low-pass.
 */
export class VirtualRig implements CompanionMcu {
  readonly sliceCycles: number;
  readonly firmwarePath: string;
  private readonly flash: Uint16Array;
  private machine: RigMachine;
  /** The pen's cycle count when this rig powered on: the rig counts its time from the pen's power-on too. */
  private readonly startCycle: number;
  private cyclesBeforeLastReset = 0;
  private port: RigUart | null = null;
  private readonly hostToRig: number[] = [];
  private rigToHost: number[] = [];
  /** The pen-side levels last passed to the rig's pins, one per digital wire, and what the rig drives on the pen. */
  private readonly penLevels = new Map<PinName, boolean>();
  /** Per pen line: how many times it changed (a stretched fall applies only if none came after it), and a stretched line's earliest fall. */
  private readonly lineChanges = new Map<PinName, number>();
  private readonly stretchEnds = new Map<PinName, number>();
  private readonly driving = new Map<PinName, boolean | null>();
  /** The RC low-pass on motorPwm: its capacitor voltage at filterCycle (pen cycles), charging toward duty × 5 V. */
  private filterVolts = 0;
  private filterCycle: number;
  private filterDuty = 0;
  private attached = true;

  constructor(private readonly pen: VirtualPen, options: VirtualRigOptions = {}) {
    this.firmwarePath = options.firmwarePath ?? defaultRigFirmwarePath();
    if (!existsSync(this.firmwarePath)) throw new Error(`rig firmware not found at ${this.firmwarePath}`);
    this.flash = new Uint16Array(parseIntelHex(readFileSync(this.firmwarePath, 'utf8'), penDescription.board.flashBytes).buffer);
    this.sliceCycles = Math.max(1, Math.round((options.sliceUs ?? 10) * cyclesPerMs / 1000));
    this.startCycle = pen.totalCycles;
    this.filterCycle = pen.totalCycles;
    this.machine = this.boot(new Uint8Array(penDescription.board.ramBytes));
    pen.onPinsChanged = () => this.penPinsChanged();
    pen.attachCompanion(this);
  }

  /** Simulated CPU cycles since the pen's power-on, counted on the rig's own clock. */
  get totalCycles(): number {
    return this.startCycle + this.cyclesBeforeLastReset + this.machine.cpu.cycles;
  }

  /** Simulated time since the pen's power-on, in ms, on the rig's clock. */
  get simTimeMs(): number {
    return this.totalCycles / cyclesPerMs;
  }

  /** The rig's simulated MCU, for measurement tools. */
  get mcu(): CPU {
    return this.machine.cpu;
  }

  /** The voltage on the RC filter's capacitor (A0) now: motorPwm's duty × 5 V, lagging by the filter's 100 ms. */
  get motorPwmVolts(): number {
    this.trackMotorDuty();
    return this.filterVoltsAt(this.pen.totalCycles);
  }

  /** A rig pin's level as the rig drives it (an output) or reads it (an input), by Arduino name (D2, A0, ...). */
  pinIsHigh(rigPin: string): boolean {
    const { port, bit } = unoPin(rigPin);
    return (((this.machine.cpu.data[this.machine.ports[port].portConfig.PIN] ?? 0) >> bit) & 1) === 1;
  }

  /** Opens the rig's USB serial port; as an Uno's DTR does, opening it resets the MCU unless reset is false. */
  openPort(options: { readonly reset?: boolean } = {}): RigUart {
    void this.port?.close();
    if (options.reset !== false) this.resetMcu();
    this.port = new RigUart(this);
    return this.port;
  }

  /** Restarts the rig's MCU as its reset pin would (DTR, the reset button): the firmware starts over, its outputs let go. */
  resetMcu(): void {
    const { cpu } = this.machine;
    this.cyclesBeforeLastReset += cpu.cycles;
    this.hostToRig.length = 0;  // bytes on their way in are lost: the reset turns the receiver off
    this.machine = this.boot(cpu.data.slice(sramStart, sramStart + penDescription.board.ramBytes));
  }

  /** Receives bytes from the host side of the rig's UART; they reach the MCU at the line's byte rate. */
  receiveFromHost(bytes: Uint8Array): void {
    for (const byte of bytes) this.hostToRig.push(byte);  // not push(...bytes): a socket's chunk can exceed the argument limit
    this.feedNextByte();
  }

  /** Unwires the rig: the pen's own inputs are back and the pen runs alone. */
  detach(): void {
    if (!this.attached) return;
    this.attached = false;
    for (const wire of outputWires) this.pen.driveFromOutside(wire.penSignal, null);
    this.pen.onPinsChanged = null;
    this.pen.attachCompanion(null);
    void this.port?.close();
  }

  /** CompanionMcu: runs the rig until its clock reaches the pen's cycle count. */
  runToCycle(penCycle: number): void {
    while (this.totalCycles < penCycle) {
      const { cpu } = this.machine;
      const stopAt = penCycle - this.startCycle - this.cyclesBeforeLastReset;
      while (cpu.cycles < stopAt) stepLikeTheChip(cpu);
    }
  }

  /** CompanionMcu: hands what the rig's UART sent to the open port. */
  deliverToHost(): void {
    if (this.rigToHost.length === 0) return;
    const bytes = Uint8Array.from(this.rigToHost);
    this.rigToHost = [];
    this.port?.deliver(bytes);
  }

  /**
   * Samples the pen's PWM duty when its pins change (every duty change shows there: OC0A's next edge, a DDR or PORT
   * write, the compare output let go); a change starts a new exponential segment of the filter.
   */
  private trackMotorDuty(): void {
    const duty = motorPwmPinDuty(this.pen);
    if (duty === this.filterDuty) return;
    const now = this.pen.totalCycles;
    this.filterVolts = this.filterVoltsAt(now);
    this.filterCycle = now;
    this.filterDuty = duty;
  }

  private filterVoltsAt(cycle: number): number {
    const target = this.filterDuty * rigVolts;
    const elapsedMs = Math.max(0, cycle - this.filterCycle) / cyclesPerMs;
    return target + (this.filterVolts - target) * Math.exp(-elapsedMs / rcTauMs);
  }

  /**
   * The pen's lines changed (a port write, a driven input): each digital wire's pen-side level reaches the rig's pin
   * at the pen's cycle, which is at or ahead of the rig's, as a clock event on the rig (exact to the cycle).
   */
  private penPinsChanged(): void {
    this.trackMotorDuty();
    const now = this.pen.totalCycles;
    const delay = now - this.totalCycles;
    for (const wire of digitalWires) {
      const high = this.pen.pinIsHigh(wire.penSignal);
      if (this.penLevels.get(wire.penSignal) === high) continue;
      this.penLevels.set(wire.penSignal, high);
      // A stretched line (rig.json stretchMs) falls no sooner than stretchCycles after its last rise; a rise meanwhile
      // cancels the pending fall (the monostable retriggers).
      const change = (this.lineChanges.get(wire.penSignal) ?? 0) + 1;
      this.lineChanges.set(wire.penSignal, change);
      if (high) this.stretchEnds.set(wire.penSignal, now + wire.stretchCycles);
      const machine = this.machine;
      const apply = (): void => {
        if (this.machine === machine && this.lineChanges.get(wire.penSignal) === change) machine.ports[wire.port].setPin(wire.bit, high);
      };
      const at = high ? delay : Math.max(delay, (this.stretchEnds.get(wire.penSignal) ?? 0) - this.totalCycles);
      if (at <= 0) apply();
      else machine.cpu.addClockEvent(apply, at);
    }
  }

  /**
   * The rig wrote a port: each output wire whose pin is an output drives the pen's line (through its 1 kΩ, it wins
   * over the pen's switch); one back to input lets go. The pen sees it at its own cycle, at most a slice later.
   */
  private rigPortWritten(port: RigPort): void {
    const { cpu } = this.machine;
    const portConfig = this.machine.ports[port].portConfig;
    for (const wire of outputWires) {
      if (wire.port !== port) continue;
      const output = (((cpu.data[portConfig.DDR] ?? 0) >> wire.bit) & 1) === 1;
      const level = output ? (((cpu.data[portConfig.PORT] ?? 0) >> wire.bit) & 1) === 1 : null;
      if (this.driving.get(wire.penSignal) === level) continue;
      this.driving.set(wire.penSignal, level);
      this.pen.driveFromOutside(wire.penSignal, level);
    }
  }

  private feedNextByte(): void {
    const { usart } = this.machine;
    const byte = this.hostToRig[0];
    if (byte === undefined || usart.rxBusy) return;
    this.hostToRig.shift();
    usart.writeByte(byte);  // a receiver not enabled yet loses it, as a real UART does
  }

  /** A fresh MCU (registers, peripherals, pending events), keeping only the flash and SRAM's contents, as a reset does. */
  private boot(sram: Uint8Array): RigMachine {
    const cpu = new CPU(this.flash, penDescription.board.ramBytes);
    cpu.data.set(sram, sramStart);
    new AVRClock(cpu, cpuHz, clockConfig);
    new AVRTimer(cpu, timer0Config);
    new AVRTimer(cpu, timer1Config);
    new AVRTimer(cpu, timer2Config);
    const usart = new AVRUSART(cpu, usart0Config, cpuHz);
    matchChipUsart(cpu, usart);
    usart.onByteTransmit = (byte) => this.rigToHost.push(byte);
    usart.onRxComplete = () => this.feedNextByte();
    const adc = new AVRADC(cpu, adcConfig);
    adc.onADCRead = (input) => {
      const volts = 'channel' in input && input.channel === motorPwmChannel ? this.motorPwmVolts : 0;
      const counts = Math.min(1023, Math.max(0, Math.floor((volts / rigVolts) * 1024)));
      cpu.addClockEvent(() => adc.completeADCRead(counts), adc.sampleCycles);
    };
    const ports = { B: new AVRIOPort(cpu, portBConfig), C: new AVRIOPort(cpu, portCConfig), D: new AVRIOPort(cpu, portDConfig) };
    for (const name of ['B', 'C', 'D'] as const) ports[name].addListener(() => this.rigPortWritten(name));
    const machine: RigMachine = { cpu, usart, adc, ports };
    this.machine = machine;
    // After a reset every pin is an input: the rig lets go of the pen's lines and reads them as they are.
    for (const wire of outputWires) {
      this.driving.set(wire.penSignal, null);
      if (this.attached) this.pen.driveFromOutside(wire.penSignal, null);
    }
    this.penLevels.clear();
    this.penPinsChanged();
    return machine;
  }
}

/**
 * The rig's USB serial port seen from the host: the Transport contract of hal/link/transport.ts, and also the
 * serialport-style events firmata-io listens to ('open' once, soon after opening; 'data'; 'close'), so that
 * `new Firmata(rig.openPort())` works as on a real port.
 */
export class RigUart extends McuUart {
  constructor(rig: VirtualRig) {
    super('virtual rig (in-process)', (bytes) => rig.receiveFromHost(bytes));
    // firmata-io turns 'open' into 'connect', without which johnny-five never becomes ready; listeners attach first.
    setImmediate(() => {
      if (this.isOpen) this.emit('open');
    });
  }
}

/**
 * Serves the rig's UART on TCP, one client at a time, as the pen's is (hardware/sim/tcp-server.ts): each connect resets
 * the rig, as opening a real Uno's port pulses DTR, so Firmata announces itself to the new client.
 */
export function serveRig(rig: VirtualRig, address: ListenAddress, log: (line: string) => void = () => {}): Promise<Server> {
  const board = { name: 'rig', openPort: () => rig.openPort({ reset: false }), resetMcu: () => rig.resetMcu() };
  return servePort(board, address, (line) => log(`rig: ${line}`), { autoReset: true });
}
