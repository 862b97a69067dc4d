// The virtual pen: the real firmware image running in avr8js, its UART served as a transport, its pins and ADC open to plant models.
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AVRADC, AVRClock, AVREEPROM, AVRIOPort, EEPROMMemoryBackend, AVRTimer, AVRUSART, AVRWatchdog, CPU, PinState, adcConfig, avrInstruction,
  clockConfig, portBConfig, portCConfig, portDConfig, timer0Config, timer1Config, timer2Config, usart0Config,
  watchdogConfig,
} from 'avr8js';
import { pen, pins, type PinName } from '../description.ts';
import { RealClock, VirtualClock, type Clock } from '../clock.ts';
import { parseIntelHex } from './intel-hex.ts';
import { McuUart } from './mcu-uart.ts';
import { PenPlant, seededRandom } from './plant.ts';
import { SelfProgramming, bootSectionStartWord, type BootSectionBytes } from './self-programming.ts';
import { FRAME_SYNC } from '../generated/protocol.ts';
import { elfPathFor, ramSymbol, watchdogKicksReachedFrom } from './elf-symbols.ts';
import { IdChip, OneWireBus } from './id-chip.ts';

export const defaultFirmwarePath = join(dirname(fileURLToPath(import.meta.url)), '../../firmware/build/pen.hex');
/** Optiboot as firmware/Makefile builds it, with the reset-cause handoff (firmware/bootloader/reset-handoff.h). */
export const defaultBootloaderPath = join(dirname(fileURLToPath(import.meta.url)), '../../firmware/build/optiboot.hex');

const cpuHz = pen.board.cpuHz;
const cyclesPerMs = cpuHz / 1000;
const MCUSR = 0x54;
const resetFlags = { powerOn: 0x01, external: 0x02, watchdog: 0x08 } as const;
const WDTCSR_WDCE = 0x10;
const WDTCSR_WDE = 0x08;
/** RJMP .-2: a jump to itself. */
const RJMP_TO_SELF = 0xcfff;
/** SRAM's first address in the data space, after the registers and I/O. */
const sramStart = 0x100;
/** The default cartridge's expiry: 2030-01-01, in days since 2000-01-01 (pen.json idChips.layout). */
const defaultCartridgeExpiryDay = 10958;

function readImage(path: string, what: string): Uint8Array {
  if (!existsSync(path)) throw new Error(`${what} not found at ${path}: build it with \`npm run firmware\``);
  return parseIntelHex(readFileSync(path, 'utf8'), pen.board.flashBytes);
}

/** Copies the bootloader's boot section into the image; either one straying into the other's part is refused. */
function loadBootloader(image: Uint8Array, bootloader: Uint8Array, bootSectionBytes: BootSectionBytes, bootloaderPath: string): void {
  const bootStart = bootSectionStartWord(bootSectionBytes) * 2;
  const erased = (bytes: Uint8Array): boolean => bytes.every((byte) => byte === 0xff);
  if (!erased(bootloader.subarray(0, bootStart))) throw new Error(`${bootloaderPath} writes below the boot section (0x${bootStart.toString(16)}): not a bootloader for it`);
  if (!erased(image.subarray(bootStart))) throw new Error(`the firmware image writes into the boot section (0x${bootStart.toString(16)} and up), where the bootloader goes`);
  image.set(bootloader.subarray(bootStart), bootStart);
}

export type TimeMode = 'virtual' | 'real';

export interface VirtualPenOptions {
  /** The firmware (application) image; defaults to firmware/build/pen.hex. null: none, an erased application section. */
  readonly firmwarePath?: string | null;
  /**
   * A bootloader image (Intel HEX, e.g. defaultBootloaderPath) for the boot section, loaded with the application, and
   * BOOTRST programmed unless bootReset says otherwise: every reset starts in the bootloader, as on an Uno.
   */
  readonly bootloaderPath?: string;
  /** Its ELF, for symbols (RAM access, hangFirmware); defaults to the .elf next to the image. */
  readonly elfPath?: string;
  /** 'virtual': runs as fast as it can, with its own clock for the host; 'real': paced to the wall clock. */
  readonly timeMode?: TimeMode;
  /** Seeds the link fault injection, so that the same seed corrupts the same bytes. */
  readonly seed?: number;
  /** The boot section's size (BOOTSZ fuses), where SPM runs; 512 bytes (0x7E00-0x7FFF) by default. */
  readonly bootSectionBytes?: BootSectionBytes;
  /** The BOOTRST fuse: programmed (true), the MCU starts (and restarts) at the boot section; false by default. */
  readonly bootReset?: boolean;
}

export interface LinkFaults {
  /** Probability that a byte is flipped, per byte, per direction. */
  readonly corruptProbability?: number;
  /** Probability that a byte is lost, per byte, per direction. */
  readonly dropProbability?: number;
}

interface Machine {
  readonly cpu: CPU;
  readonly usart: AVRUSART;
  readonly adc: AVRADC;
  readonly ports: Readonly<Record<'B' | 'C' | 'D', AVRIOPort>>;
  readonly selfProgramming: SelfProgramming;
  resetRequested: boolean;
}

type UsartInterrupt = Parameters<CPU['setInterruptFlag']>[0];

/**
 * Two places where avr8js's USART differs from the ATmega328P datasheet, corrected so the firmware meets the chip:
 * entering the UDRE vector does not clear UDRE (only writing UDR does), and writing UCSR0B does not clear a
 * received byte's RXC flag (only reading UDR does). Without these, toggling UDRIE loses bytes and stalls transmit.
 */
export function matchChipUsart(cpu: CPU, usart: AVRUSART): void {
  const interrupts = usart as unknown as { UDRE: UsartInterrupt; RXC: UsartInterrupt };
  interrupts.UDRE.constant = true;
  const writeControlB = cpu.writeHooks[usart0Config.UCSRB];
  if (writeControlB === undefined) throw new Error('avr8js no longer hooks UCSR0B: review matchChipUsart');
  cpu.writeHooks[usart0Config.UCSRB] = (value, oldValue, address, mask) => {
    const received = (cpu.data[usart0Config.UCSRA] ?? 0) & interrupts.RXC.flagMask;
    const handled = writeControlB(value, oldValue, address, mask);
    if (received !== 0) cpu.setInterruptFlag(interrupts.RXC);
    return handled;
  };
}

/**
 * The ATmega328P's watchdog where avr8js's AVRWatchdog (128 kHz clock, WDP periods, the WDE/WDIE modes, the timed
 * change sequence) stops short of it. WDTON is taken as unprogrammed (the factory fuse; programmed, it would also
 * forbid the firmware's wdt_disable): WDRF in MCUSR overrides WDE, so WDE stays set until WDRF is cleared; and a
 * watchdog reset leaves the watchdog running in system-reset mode at its shortest period (WDP = 0: 2K cycles, 16 ms),
 * which the firmware must turn off early (.init3).
 */
function matchChipWatchdog(cpu: CPU): void {
  const { WDTCSR, MCUSR: mcusr } = watchdogConfig;
  const write = cpu.writeHooks[WDTCSR];
  if (write === undefined) throw new Error('avr8js no longer hooks WDTCSR: review matchChipWatchdog');
  const watchdogFlag = (): boolean => ((cpu.data[mcusr] ?? 0) & resetFlags.watchdog) !== 0;
  cpu.writeHooks[WDTCSR] = (value, oldValue, address, mask) => write(watchdogFlag() ? value | WDTCSR_WDE : value, oldValue, address, mask);
  if (watchdogFlag()) {
    cpu.writeData(WDTCSR, WDTCSR_WDCE | WDTCSR_WDE);
    cpu.writeData(WDTCSR, WDTCSR_WDE);
  }
}

/** The EEPROM's cells, with a hook called after every byte the MCU erases or writes. */
export class ObservedEeprom extends EEPROMMemoryBackend {
  onChange: ((address: number) => void) | null = null;

  override writeMemory(address: number, value: number): void {
    super.writeMemory(address, value);
    this.onChange?.(address);
  }

  override eraseMemory(address: number): void {
    super.eraseMemory(address);
    this.onChange?.(address);
  }
}

/** avr8js's export is a getter on its CommonJS module: read once here, not on every instruction (a sixth of the time). */
const executeInstruction = avrInstruction;

/**
 * One instruction, then the clock events and interrupts due. A third place where avr8js differs from the datasheet:
 * after an instruction that sets the I flag (SEI, or OUT SREG as in avr-gcc's stack-frame prologue: out SPH; out SREG;
 * out SPL), the chip executes one more instruction before any pending interrupt. avr8js dispatches at once, so an
 * interrupt could land between the SPH and SPL writes and push onto a half-updated stack pointer, corrupting memory.
 */
const interruptsOn = (cpu: CPU): boolean => ((cpu.data[0x5f] ?? 0) & 0x80) !== 0;  // SREG's I flag
/** With selfProgramming, SPM (a no-op in avr8js) and the LPMs it redirects run as on the chip (self-programming.ts). */
export function stepLikeTheChip(cpu: CPU, selfProgramming?: SelfProgramming): void {
  const wasOn = interruptsOn(cpu);
  if (selfProgramming?.execute() !== true) executeInstruction(cpu);
  if (!wasOn && interruptsOn(cpu) && selfProgramming?.execute() !== true) executeInstruction(cpu);
  cpu.tick();
}

/**
 * A second MCU that lives in the pen's simulated time (the HIL rig, virtual-rig.ts). The pen runs in slices of at most
 * sliceCycles and, after each, runs the companion up to its own cycle count: the two never drift more than a slice apart.
 */
export interface CompanionMcu {
  readonly sliceCycles: number;
  /** Runs until the companion's cycle count (since the pen's power-on) reaches penCycle. */
  runToCycle(penCycle: number): void;
  /** Hands what its UART sent to its host; called wherever the pen hands over its own. */
  deliverToHost(): void;
}

export class VirtualPen {
  /** The clock hosts should use with this pen: virtual time in 'virtual' mode, the wall clock in 'real'. */
  readonly clock: Clock;
  readonly timeMode: TimeMode;

  /** The flash; SPM from the boot section rewrites it, and it survives resets (hangFirmware's patches do not). */
  private readonly flash: Uint16Array;
  private readonly selfProgrammingOptions: { readonly bootSectionBytes: BootSectionBytes; readonly bootReset: boolean };
  /** The firmware ELF the image was built from (null: no application was loaded). */
  private readonly builtElfPath: string | null;
  /** Simulated time (ms) when SPM first rewrote the application section: its ELF no longer describes the flash. */
  private applicationRewrittenAtMs: number | null = null;
  /** SRAM noise at power-on (as on the chip, SRAM starts undefined), from its own sequence so link faults replay. */
  private readonly powerOnNoise: () => number;
  /** Flash words patched by hangFirmware, with their original contents: restored at the next reset. */
  private readonly flashPatches = new Map<number, number>();
  private lastKickCycle: number | null = null;
  private bites = 0;
  private readonly random: () => number;
  private readonly virtualClock = new VirtualClock();
  private readonly realClock = new RealClock();
  private machine: Machine;
  private port: PenUart | null = null;
  private cyclesBeforeLastReset = 0;
  private readonly hostToPen: number[] = [];
  private penToHost: number[] = [];
  private linkFaults: Required<LinkFaults> = { corruptProbability: 0, dropProbability: 0 };
  private readonly inputLevels = new Map<PinName, boolean>();
  /** Levels another board drives onto input pins (the rig's outputs): they win over inputLevels while set. */
  private readonly outsideLevels = new Map<PinName, boolean>();
  private companion: CompanionMcu | null = null;
  /**
   * Called whenever a pin's level may have changed as another board wired to the pen would see it: the firmware wrote a
   * port (PORTx, DDRx, a timer's compare output) or an input was driven. For the HIL rig; cheap, as it runs often.
   */
  onPinsChanged: (() => void) | null = null;
  private running = false;
  private framesTransmitted = 0;
  private stopped: Promise<void> = Promise.resolve();
  private wallStartMs = 0;
  private simStartMs = 0;
  readonly linkStats = { bytesCorrupted: 0, bytesDropped: 0 };
  /** The plant models (stepper, motor, sensors) and their fault-injection hooks. */
  readonly plant: PenPlant;
  /**
   * The parts' ID chip buses (pins.cartridgeChip, pins.noseconeChip), each with a DS2431-class chip fitted: a fresh
   * cartridge and a nosecone sterilized once and unused since. Swap or remove a chip with fit(), open its contact
   * (chip.disconnected, chip.loseContactAfterReadBits), short the bus (shorted), edit its rom or memory; the bus keeps
   * every breach of the datasheet's timing by the firmware in violations.
   */
  readonly idChips: { readonly cartridge: OneWireBus; readonly nosecone: OneWireBus };
  /** Where fitNewCartridge takes each new cartridge's serial (by default this pen's own count; a parts file keeps one). */
  newCartridgeSerial: () => bigint;
  /**
   * The MCU's 1 KB EEPROM; it keeps its contents across resets, as the chip's does. Tests may corrupt it. Load an image
   * into eeprom.memory before start(), and set eeprom.onChange to keep it somewhere (the pen command keeps it in a file).
   */
  readonly eeprom = new ObservedEeprom(1024);

  constructor(options: VirtualPenOptions = {}) {
    const firmwarePath = options.firmwarePath === undefined ? defaultFirmwarePath : options.firmwarePath;
    const bootSectionBytes = options.bootSectionBytes ?? 512;
    const image = firmwarePath === null ? new Uint8Array(pen.board.flashBytes).fill(0xff) : readImage(firmwarePath, 'firmware image');
    if (options.bootloaderPath !== undefined) loadBootloader(image, readImage(options.bootloaderPath, 'bootloader image'), bootSectionBytes, options.bootloaderPath);
    this.flash = new Uint16Array(image.buffer);
    this.builtElfPath = firmwarePath === null ? null : options.elfPath ?? elfPathFor(firmwarePath);
    this.timeMode = options.timeMode ?? 'virtual';
    this.clock = this.timeMode === 'virtual' ? this.virtualClock : this.realClock;
    this.random = seededRandom(options.seed ?? 1);
    this.powerOnNoise = seededRandom(((options.seed ?? 1) ^ 0x5a5a5a5a) >>> 0);
    this.selfProgrammingOptions = { bootSectionBytes, bootReset: options.bootReset ?? options.bootloaderPath !== undefined };
    // Inputs at rest: e-stop loop closed, cartridge in, footswitch up; the plant drives the home switch and tach.
    const atRest = { estop: false, cartridgePresent: true, footswitch: false, tach: false, homeSwitch: true } as const;
    for (const [name, active] of Object.entries(atRest)) this.inputLevels.set(name as PinName, active !== pins[name as PinName].activeLow);
    this.plant = new PenPlant(this.random, (name, active) => this.setInput(name, active));
    const serial = (part: number): bigint => BigInt(((options.seed ?? 1) * 0x9e37 + part * 0x10001) >>> 0) + (0x5eedn << 32n);
    let nextCartridge = serial(3);
    this.newCartridgeSerial = () => nextCartridge++;
    this.idChips = {
      cartridge: new OneWireBus('cartridge', pins.cartridgeChip.bit, () => this.totalCycles,
        IdChip.part({ kind: 'cartridge', lot: 0x00c0ffee, date: defaultCartridgeExpiryDay }, serial(1))),
      nosecone: new OneWireBus('nosecone', pins.noseconeChip.bit, () => this.totalCycles,
        IdChip.part({ kind: 'nosecone', lot: 0x000a1b2c, date: 8766, sterilizations: 1, uses: 0 }, serial(2))),
    };
    const noise = Uint8Array.from({ length: pen.board.ramBytes }, () => Math.floor(this.powerOnNoise() * 256));
    this.machine = this.boot(resetFlags.powerOn, noise);
  }

  /**
   * The firmware ELF the image was built from: its symbols locate functions and variables. Throws when there is none
   * to trust: no application was loaded, or the bootloader has since written another one into the flash.
   */
  get elfPath(): string {
    if (this.builtElfPath === null) throw new Error('this virtual pen started without an application, so it has no firmware symbols');
    if (this.applicationRewrittenAtMs !== null) {
      throw new Error(`the application in the virtual pen's flash was rewritten through its bootloader at ${this.applicationRewrittenAtMs.toFixed(0)} ms ` +
        `(a flash), so the symbols of ${this.builtElfPath} no longer describe it`);
    }
    return this.builtElfPath;
  }

  /** Opens the pen's UART as a transport (same contract as a serial port or TCP socket); closes any earlier one. */
  openPort(): PenUart {
    void this.port?.close();
    this.port = new PenUart(this);
    return this.port;
  }

  /** Simulated time since power-on, in ms (exact: simulated cycles / 16 MHz). */
  get simTimeMs(): number {
    return this.totalCycles / cyclesPerMs;
  }

  /** Simulated CPU cycles since power-on. */
  get totalCycles(): number {
    return this.cyclesBeforeLastReset + this.machine.cpu.cycles;
  }

  /** Starts running the MCU in the background (until stop()). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.wallStartMs = this.realClock.nowMs();
    this.simStartMs = this.simTimeMs;
    this.stopped = this.runLoop();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.stopped;
  }

  /** Runs the MCU for exactly ms of simulated time, synchronously (for benchmarks and step-by-step tests). */
  runFor(ms: number): void {
    this.runUntilCycle(this.totalCycles + Math.round(ms * cyclesPerMs));
    this.deliverToHost();
  }

  /**
   * Runs instruction by instruction until condition() holds (checked after each one) or limitMs of simulated
   * time pass; returns the cycles it took, or null. Exact to the instruction: for timing measurements.
   */
  runUntil(condition: () => boolean, limitMs: number): number | null {
    const start = this.totalCycles;
    const limit = start + Math.round(limitMs * cyclesPerMs);
    while (this.totalCycles < limit) {
      const { cpu } = this.machine;
      const framesBefore = this.framesTransmitted;
      stepLikeTheChip(cpu, this.machine.selfProgramming);
      if (this.machine.resetRequested) this.restart(resetFlags.watchdog);
      this.companion?.runToCycle(this.totalCycles);
      if (this.framesTransmitted !== framesBefore) this.deliverToHost();
      if (condition()) {
        this.deliverToHost();
        return this.totalCycles - start;
      }
    }
    this.deliverToHost();
    return null;
  }

  /** The simulated MCU (avr8js CPU) now running: registers, SRAM and program counter, for measurement tools. */
  get mcu(): CPU {
    return this.machine.cpu;
  }

  /**
   * Restarts the MCU as the reset pin ('external': the reset button, or an Uno's DTR pulse when a serial port opens) or a
   * watchdog bite ('watchdog') would: the firmware (or the bootloader, with BOOTRST) starts over with that reset flag;
   * the plant (needle position, inputs) stays as it is.
   */
  resetMcu(cause: 'external' | 'watchdog' = 'external'): void {
    this.restart(resetFlags[cause]);
  }

  /** Watchdog timeouts in system-reset mode that restarted the MCU since power-on. */
  get watchdogBites(): number {
    return this.bites;
  }

  /** Simulated time of the last WDR (watchdog reset) instruction executed, in ms since power-on; null before any. */
  get lastWatchdogKickMs(): number | null {
    return this.lastKickCycle === null ? null : this.lastKickCycle / cyclesPerMs;
  }

  /**
   * Hangs the firmware the way a bug would (a loop that never ends): each WDR that main reaches, in its own code or
   * through the functions it calls (found from the ELF's symbols and the program memory, never fixed addresses),
   * becomes RJMP .-2. The main loop then spins at its next watchdog kick, interrupts still enabled and the ISRs
   * running, until the watchdog bites. Call it while the firmware runs its main loop. The patch is transient: the
   * next MCU reset (the bite, or resetMcu) restores the flash, as after a glitch that a reboot clears (a corrupted
   * return address, a stuck flag in RAM); a hang written into the firmware would recur, and the pen would reboot every
   * watchdog period, never reaching its loop. Returns the patched word addresses (where cpu.pc spins).
   */
  hangFirmware(): number[] {
    const kicks = watchdogKicksReachedFrom(this.flash, this.elfPath);
    if (kicks.length === 0) throw new Error(`no WDR reached from main in ${this.elfPath}: nothing kicks the watchdog`);
    for (const pc of kicks) {
      if (!this.flashPatches.has(pc)) this.flashPatches.set(pc, this.flash[pc] ?? 0);
      this.flash[pc] = RJMP_TO_SELF;
    }
    return kicks;
  }

  /** A static variable's address in the MCU's data space (cpu.data), from the ELF's symbol table. */
  ramAddress(symbol: string): number {
    return ramSymbol(this.elfPath, symbol).address;
  }

  /** A static variable's bytes as the MCU holds them now (little-endian for multi-byte values); all of it by default. */
  readRam(symbol: string, bytes?: number): Uint8Array {
    const { address, size } = ramSymbol(this.elfPath, symbol);
    return this.machine.cpu.data.slice(address, address + (bytes ?? size));
  }

  /** Overwrites a static variable's bytes between two instructions (fault injection); at most its size. */
  writeRam(symbol: string, bytes: ArrayLike<number>): void {
    const { address, size } = ramSymbol(this.elfPath, symbol);
    if (bytes.length > size) throw new Error(`${symbol} holds ${size} bytes; refusing to write ${bytes.length}`);
    this.machine.cpu.data.set(bytes, address);
  }

  /**
   * A fresh MCU with resetFlag added to MCUSR; simulated time carries on. boot() builds a new CPU (registers, SRAM,
   * I/O space, pending interrupts, clock events) and new peripherals (timers, watchdog, USART, ADC, EEPROM controller,
   * ports, SPMCSR and the SPM page buffer): only the flash, the EEPROM's cells, the SRAM's contents and MCUSR's reset
   * flags survive, as on the chip (avr8js's own cpu.reset() would keep the peripherals' state, so it is never used for a
   * reset). The bootloader's reset-cause handoff relies on the SRAM surviving.
   */
  private restart(resetFlag: number): void {
    const { cpu } = this.machine;
    this.cyclesBeforeLastReset += cpu.cycles;
    for (const [pc, word] of this.flashPatches) this.flash[pc] = word;
    this.flashPatches.clear();
    this.hostToPen.length = 0;  // bytes on their way in are lost: the reset turns the receiver off
    this.machine = this.boot((cpu.data[MCUSR] ?? 0) | resetFlag, cpu.data.slice(sramStart, sramStart + pen.board.ramBytes));
  }

  /** Byte corruption and loss on the serial line, both directions. */
  setLinkFaults(faults: LinkFaults): void {
    this.linkFaults = { corruptProbability: faults.corruptProbability ?? 0, dropProbability: faults.dropProbability ?? 0 };
  }

  /**
   * A cartridge swap: the fitted one out (switch open, chip gone) for outMs, then a new one in, fresh from its maker:
   * its own serial (the next of this pen's), unless given, and the default lot and expiry unless given. The firmware
   * reads it once its contacts settle. Returns the chip fitted.
   */
  async fitNewCartridge(options: { readonly serial?: bigint; readonly expiryDay?: number; readonly outMs?: number } = {}): Promise<IdChip> {
    this.setInput('cartridgePresent', false);
    this.idChips.cartridge.fit(null);
    await this.clock.sleep(options.outMs ?? 50);
    const chip = this.fitNewCartridgeChip(options);
    this.setInput('cartridgePresent', true);
    return chip;
  }

  /**
   * A new cartridge's chip in the holder, the cartridge-detect switch untouched: for a bench whose rig drives that line
   * (`pen sim --control`: the rig pulls the line, the chip is swapped, the rig fits it again).
   */
  fitNewCartridgeChip(options: { readonly serial?: bigint; readonly expiryDay?: number } = {}): IdChip {
    const serial = options.serial ?? this.newCartridgeSerial();
    const chip = IdChip.part({ kind: 'cartridge', lot: 0x00c0ffee, date: options.expiryDay ?? defaultCartridgeExpiryDay }, serial);
    this.idChips.cartridge.fit(chip);
    return chip;
  }

  /** Steps a second MCU in this pen's time (see CompanionMcu); null detaches it. */
  attachCompanion(companion: CompanionMcu | null): void {
    this.companion = companion;
  }

  /**
   * Another board drives an input pin's electrical level (high: true), winning over the pen's own switch and plant while
   * it does; null lets go (the other board's pin is an input again), and the pen's own level is back.
   */
  driveFromOutside(name: PinName, high: boolean | null): void {
    if (pins[name].direction !== 'input') throw new Error(`${name} is an output pin; only inputs can be driven`);
    if (high === null) this.outsideLevels.delete(name);
    else this.outsideLevels.set(name, high);
    this.applyInputs();
  }

  /** Drives an input pin: active = the named condition is true (switch pressed, e-stop tripped, ...). */
  setInput(name: PinName, active: boolean): void {
    const pin = pins[name];
    if (pin.direction !== 'input') throw new Error(`${name} is an output pin; only inputs can be driven`);
    this.inputLevels.set(name, active !== pin.activeLow);
    this.applyInputs();
  }

  /** The firmware's output on a pin: true when it drives the named function active. */
  isActive(name: PinName): boolean {
    return this.pinIsHigh(name) !== pins[name].activeLow;
  }

  /** The electrical level of a pin as the firmware drives it (inputs read as their driven level). */
  pinIsHigh(name: PinName): boolean {
    const pin = pins[name];
    const state = this.machine.ports[pin.port].pinState(pin.bit);
    if (state === PinState.High) return true;
    if (state === PinState.Low) return false;
    return this.outsideLevels.get(name) ?? this.inputLevels.get(name) ?? state === PinState.InputPullUp;
  }

  /** Receives bytes from the host side of the UART; they arrive at the MCU at the line's byte rate. */
  receiveFromHost(bytes: Uint8Array): void {
    for (const byte of bytes) {
      if (this.random() < this.linkFaults.dropProbability) {
        this.linkStats.bytesDropped++;
        continue;
      }
      this.hostToPen.push(this.maybeCorrupt(byte));
    }
    if (!this.machine.usart.rxBusy) this.feedNextByte();
  }

  private maybeCorrupt(byte: number): number {
    if (this.random() >= this.linkFaults.corruptProbability) return byte;
    this.linkStats.bytesCorrupted++;
    return byte ^ (1 << Math.floor(this.random() * 8));
  }

  private feedNextByte(): void {
    const usart = this.machine.usart;
    const byte = this.hostToPen[0];
    if (byte === undefined || usart.rxBusy) return;
    // A receiver that is not enabled yet loses the byte, as a real UART does.
    this.hostToPen.shift();
    usart.writeByte(byte);
  }

  /** sram: what the SRAM holds as the MCU starts (kept through a reset; undefined, here noise, at power-on). */
  private boot(resetFlag: number, sram: Uint8Array): Machine {
    // The chip's 2 KB of SRAM, so that SP starts at RAMEND (0x8FF) as the reset sets it: a bootloader relies on that.
    const cpu = new CPU(this.flash, pen.board.ramBytes);
    cpu.data.set(sram, sramStart);
    const { bootSectionBytes, bootReset } = this.selfProgrammingOptions;
    const bootStart = bootSectionStartWord(bootSectionBytes);
    const onProgram = (pageWord: number): void => {
      if (pageWord < bootStart && this.applicationRewrittenAtMs === null) this.applicationRewrittenAtMs = this.simTimeMs;
    };
    const selfProgramming = new SelfProgramming(cpu, { bootSectionBytes, bootReset, onProgram });
    if (bootReset) cpu.pc = bootSectionStartWord(bootSectionBytes);
    const clock = new AVRClock(cpu, cpuHz, clockConfig);
    new AVRTimer(cpu, timer0Config);
    new AVRTimer(cpu, timer1Config);
    new AVRTimer(cpu, timer2Config);
    new AVRWatchdog(cpu, watchdogConfig, clock);
    const kick = cpu.onWatchdogReset;
    cpu.onWatchdogReset = () => {
      this.lastKickCycle = this.cyclesBeforeLastReset + cpu.cycles;
      kick();
    };
    const usart = new AVRUSART(cpu, usart0Config, cpuHz);
    matchChipUsart(cpu, usart);
    const adc = new AVRADC(cpu, adcConfig);
    new AVREEPROM(cpu, this.eeprom);
    const ports = { B: new AVRIOPort(cpu, portBConfig), C: new AVRIOPort(cpu, portCConfig), D: new AVRIOPort(cpu, portDConfig) };
    for (const port of Object.values(ports)) port.addListener(() => this.onPinsChanged?.());
    const machine: Machine = { cpu, usart, adc, ports, selfProgramming, resetRequested: false };
    cpu.data[MCUSR] = resetFlag;
    matchChipWatchdog(cpu);
    // avr8js's watchdog resets only the core; we restart the whole MCU, as the chip does. Nothing else calls reset.
    cpu.reset = () => {
      machine.resetRequested = true;
      this.bites++;
    };
    usart.onByteTransmit = (byte) => {
      if (this.random() < this.linkFaults.dropProbability) {
        this.linkStats.bytesDropped++;
        return;
      }
      this.penToHost.push(this.maybeCorrupt(byte));
      // End the run slice at a frame's sync byte, so the host sees each frame when its last byte leaves.
      if (byte === FRAME_SYNC) this.framesTransmitted++;
    };
    usart.onRxComplete = () => this.feedNextByte();
    this.machine = machine;
    this.plant.attach(machine);
    this.idChips.cartridge.attach({ cpu, port: ports[pins.cartridgeChip.port] });
    this.idChips.nosecone.attach({ cpu, port: ports[pins.noseconeChip.port] });
    this.applyInputs();
    return machine;
  }

  private applyInputs(): void {
    const { ports } = this.machine;
    for (const [name, high] of this.inputLevels) {
      if (!this.outsideLevels.has(name)) ports[pins[name].port].setPin(pins[name].bit, high);
    }
    for (const [name, high] of this.outsideLevels) ports[pins[name].port].setPin(pins[name].bit, high);
    this.onPinsChanged?.();
  }

  /** Runs to targetCycle; with stopAtFrameEnd, returns early once a frame's last byte has left the UART. */
  private runUntilCycle(targetCycle: number, stopAtFrameEnd = false): void {
    while (this.totalCycles < targetCycle) {
      const machine = this.machine;
      const { cpu, selfProgramming } = machine;
      // With a companion, in slices, each followed by the companion's run up to the same cycle.
      const stopAt = Math.min(targetCycle - this.cyclesBeforeLastReset, cpu.cycles + (this.companion?.sliceCycles ?? Infinity));
      const framesBefore = this.framesTransmitted;
      while (cpu.cycles < stopAt && !machine.resetRequested && this.framesTransmitted === framesBefore) stepLikeTheChip(cpu, selfProgramming);
      this.companion?.runToCycle(this.totalCycles);
      if (this.framesTransmitted !== framesBefore && stopAtFrameEnd) break;
      if (machine.resetRequested) this.restart(resetFlags.watchdog);
    }
  }

  /** Brings the host's virtual clock up to the MCU (firing its due timers), then hands over what the UART sent. */
  private deliverToHost(): void {
    if (this.timeMode === 'virtual') this.virtualClock.advanceTo(this.simTimeMs);
    this.companion?.deliverToHost();
    if (this.penToHost.length === 0) return;
    const bytes = Uint8Array.from(this.penToHost);
    this.penToHost = [];
    this.port?.deliver(bytes);
  }

  private async runLoop(): Promise<void> {
    const sliceMs = 1;
    while (this.running) {
      if (this.timeMode === 'virtual') {
        const nextTimer = this.virtualClock.nextDueMs();
        const until = Math.min(this.simTimeMs + sliceMs, Math.max(nextTimer, this.simTimeMs));
        // At least one cycle each pass: a timer due a rounding error after now must still come due.
        this.runUntilCycle(Math.max(Math.ceil(until * cyclesPerMs), this.totalCycles + 1), true);
        this.deliverToHost();
        await new Promise<void>((resolve) => setImmediate(resolve));
      } else {
        this.runUntilCycle(Math.ceil((this.simTimeMs + sliceMs) * cyclesPerMs), true);
        this.deliverToHost();
        const aheadMs = this.simTimeMs - this.simStartMs - (this.realClock.nowMs() - this.wallStartMs);
        if (aheadMs > 2) await this.realClock.sleep(aheadMs);
        else await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  }
}

/** The pen's UART seen from the host: the Transport contract of hal/link/transport.ts. */
export class PenUart extends McuUart {
  constructor(pen: VirtualPen) {
    super('virtual pen (in-process)', (bytes) => pen.receiveFromHost(bytes));
  }
}
