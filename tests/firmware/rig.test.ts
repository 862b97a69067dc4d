// The rig's Firmata firmware (firmware/rig/): its parser and board logic built for this machine with ASan and UBSan
// (tests/firmware/rig_tests.c), and the real image (build/rig.hex) on a plain avr8js ATmega328P at 16 MHz: the
// announcement, a capability query, a digital report on change, analog reports at the sampling interval, an output
// and a PWM duty, over USART0 at 57600 baud.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  AVRADC, AVRIOPort, AVRTimer, AVRUSART, CPU, PinState, adcConfig, avrInstruction, portBConfig, portCConfig, portDConfig,
  timer0Config, timer1Config, timer2Config, usart0Config,
} from 'avr8js';
import { beforeAll, expect, it } from 'vitest';
import { parseIntelHex } from '../../hardware/sim/intel-hex.ts';
import { expectCTestsPass } from './c-tests.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cpuHz = 16_000_000;
const cyclesPerMs = cpuHz / 1000;
const firmware = [0xf0, 0x79, 0x01, 0x00, ...Array.from(Buffer.from('pen-rig', 'ascii')).flatMap((c) => [c, 0]), 0xf7];

/** The rig image on a bare avr8js MCU: bytes to it through USART0 at the line's rate, bytes from it collected. */
class Rig {
  readonly cpu: CPU;
  readonly portB: AVRIOPort;
  readonly portD: AVRIOPort;
  readonly adc: AVRADC;
  readonly received: number[] = [];
  private readonly usart: AVRUSART;
  private readonly toRig: number[] = [];

  constructor(image: Uint8Array) {
    this.cpu = new CPU(new Uint16Array(image.buffer), 0x800);
    for (const config of [timer0Config, timer1Config, timer2Config]) new AVRTimer(this.cpu, config);
    this.portB = new AVRIOPort(this.cpu, portBConfig);
    new AVRIOPort(this.cpu, portCConfig);
    this.portD = new AVRIOPort(this.cpu, portDConfig);
    this.adc = new AVRADC(this.cpu, adcConfig);
    this.usart = new AVRUSART(this.cpu, usart0Config, cpuHz);
    this.usart.onByteTransmit = (byte) => this.received.push(byte);
  }

  send(bytes: readonly number[]): void {
    this.toRig.push(...bytes);
  }

  /** Runs ms of simulated time; watch (if given) sees every instruction's cycle count. */
  run(ms: number, watch?: (cycles: number) => void): void {
    const end = this.cpu.cycles + ms * cyclesPerMs;
    while (this.cpu.cycles < end) {
      const next = this.toRig[0];
      if (next !== undefined && !this.usart.rxBusy && this.usart.writeByte(next) === true) this.toRig.shift();
      avrInstruction(this.cpu);
      this.cpu.tick();
      watch?.(this.cpu.cycles);
    }
  }

  /** The bytes received since the last take. */
  take(): number[] {
    return this.received.splice(0);
  }
}

let image: Uint8Array;

beforeAll(() => {
  execFileSync('make', ['-s', '-C', 'firmware', 'rig'], { cwd: root, stdio: 'pipe' });
  image = parseIntelHex(readFileSync(`${root}/firmware/build/rig.hex`, 'utf8'), 32 * 1024);
}, 60_000);

it('the rig firmware passes its unit tests (parser, answers, reports) on the host', () => {
  expectCTestsPass('build/host/rig_tests', 'rig_tests', 46);
}, 60_000);

it('the rig image speaks Firmata on a plain avr8js ATmega328P', () => {
  const rig = new Rig(image);
  rig.run(20);
  expect(rig.take()).toEqual([0xf9, 0x02, 0x08, ...firmware]);

  rig.send([0xf9, 0xf0, 0x79, 0xf7]);
  rig.run(20);
  expect(rig.take()).toEqual([0xf9, 0x02, 0x08, ...firmware]);

  rig.send([0xf0, 0x6b, 0xf7]);
  rig.run(40);
  const capabilities = rig.take();
  // D0 D1 no modes; D2-D13 three digital modes (6 bytes) and PWM on six of them; A0-A5 also ANALOG.
  expect(capabilities).toHaveLength(2 + 2 + 12 * 7 + 6 * 2 + 6 * 9 + 1);
  expect(capabilities.slice(0, 11)).toEqual([0xf0, 0x6c, 0x7f, 0x7f, 0x00, 0x01, 0x0b, 0x01, 0x01, 0x01, 0x7f]);
  expect(capabilities.at(-1)).toBe(0xf7);

  // D8 (port B bit 0) reported on change.
  rig.portB.setPin(0, true);
  rig.send([0xd1, 0x01]);
  rig.run(5);
  expect(rig.take()).toEqual([0x91, 0x01, 0x00]);
  rig.run(5);
  expect(rig.take()).toEqual([]);
  rig.portB.setPin(0, false);
  rig.run(2);
  expect(rig.take()).toEqual([0x91, 0x00, 0x00]);

  // A0 at 2.5 V of 5 V: 512, at once and then every 10 ms.
  rig.adc.channelValues[0] = 2.5;
  rig.send([0xf0, 0x7a, 0x0a, 0x00, 0xf7, 0xc0, 0x01]);
  rig.run(100);
  rig.send([0xc0, 0x00]);
  rig.run(5);
  const reports = rig.take();
  // One at once on enabling, one for the interval already past since reset, then one every 10 ms.
  expect(reports.length % 3).toBe(0);
  expect(reports.length / 3).toBeGreaterThanOrEqual(10);
  expect(reports.length / 3).toBeLessThanOrEqual(12);
  expect(new Set(reports)).toEqual(new Set([0xe0, 0x00, 0x04]));

  // D2 an output driven high; D3 PWM at 128/256 (Timer2).
  rig.send([0xf4, 0x02, 0x01, 0xf5, 0x02, 0x01, 0xf4, 0x03, 0x03, 0xe3, 0x00, 0x01]);
  rig.run(5);
  expect(rig.portD.pinState(2)).toBe(PinState.High);
  let highCycles = 0;
  let last = rig.cpu.cycles;
  rig.run(20, (cycles) => {
    if (rig.portD.pinState(3) === PinState.High) highCycles += cycles - last;
    last = cycles;
  });
  expect(highCycles / (20 * cyclesPerMs)).toBeCloseTo(0.5, 1);
  rig.send([0xf0, 0x6d, 0x03, 0xf7]);
  rig.run(5);
  expect(rig.take()).toEqual([0xf0, 0x6e, 0x03, 0x03, 0x00, 0x01, 0xf7]);
}, 60_000);
