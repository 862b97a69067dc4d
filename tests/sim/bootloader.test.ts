// The virtual pen boots through Optiboot (firmware/build/optiboot.hex) like an Uno: a power-on goes straight to the
// application, a reset on the reset pin waits in the bootloader and then reaches the application, which still tells an
// external reset from a watchdog bite (the reset-cause handoff); and Optiboot rewrites a page of the application over
// STK500 with its stack clear of the handoff byte. The reset cause is read through the wire (identify).
import { afterEach, describe, expect, it } from 'vitest';
import { defaultBootloaderPath, VirtualPen, type PenUart } from '../../hardware/sim/virtual-pen.ts';
import { bootSectionStartWord } from '../../hardware/sim/self-programming.ts';
import { PenDevice, type PenIdentity, type Telemetry } from '../../hal/device.ts';

/** firmware/Makefile RESET_HANDOFF: the RAM byte Optiboot leaves the reset flags in. */
const resetHandoffAddress = 0x8e0;
const bootStartWord = bootSectionStartWord(512);
const cyclesPerMs = 16_000;
const SP = 0x5d;

let pen: VirtualPen;
afterEach(async () => {
  await pen.stop();
});

const inApplication = (): boolean => pen.mcu.pc < bootStartWord;

/** Connects through the wire, reads identity and status, and lets go (the pen keeps running). */
async function identify(): Promise<{ identity: PenIdentity; status: Telemetry }> {
  pen.start();
  const device = await PenDevice.connect(pen.openPort(), { clock: pen.clock, heartbeat: false });
  try {
    return { identity: device.identity, status: await device.status() };
  } finally {
    await device.close();
    await pen.stop();
  }
}

describe('booting through Optiboot', () => {
  it('goes straight to the application at power-on, which reports a power-on reset and no fault', { tags: ['REQ-RESET-SAFE'] }, async () => {
    pen = new VirtualPen({ bootloaderPath: defaultBootloaderPath });
    expect(pen.mcu.pc).toBe(bootStartWord);  // BOOTRST: the reset vector is the bootloader's
    const cycles = pen.runUntil(inApplication, 1);
    expect(cycles ?? Infinity).toBeLessThan(100);
    const { identity, status } = await identify();
    expect(identity.resetCause).toBe('power_on');
    expect(status).toMatchObject({ state: 'homing_required', fault: 'none' });
  });

  it('waits about a second in the bootloader after a reset on the reset pin, then the application reports an external reset, not a watchdog bite', { tags: ['REQ-RESET-SAFE'] }, async () => {
    pen = new VirtualPen({ bootloaderPath: defaultBootloaderPath });
    pen.runFor(20);
    pen.resetMcu('external');
    const cycles = pen.runUntil(inApplication, 1500);
    // Optiboot's own 1 s watchdog ends its wait: the application starts after a watchdog reset, with EXTRF handed over.
    expect((cycles ?? Infinity) / cyclesPerMs).toBeGreaterThan(900);
    expect((cycles ?? Infinity) / cyclesPerMs).toBeLessThan(1100);
    expect(pen.watchdogBites).toBe(1);
    const { identity, status } = await identify();
    expect(identity.resetCause).toBe('external');
    expect(status).toMatchObject({ state: 'homing_required', fault: 'none' });
    expect(pen.mcu.data[resetHandoffAddress]).toBe(0);  // taken, and cleared for the next reset
  });

  it('reports an unknown cause when the flags are not handed over, as behind a stock Optiboot', { tags: ['REQ-RESET-SAFE'] }, async () => {
    pen = new VirtualPen({ bootloaderPath: defaultBootloaderPath });
    pen.runFor(20);
    pen.resetMcu('external');
    expect(pen.runUntil(inApplication, 1500)).not.toBeNull();
    expect(pen.mcu.data[resetHandoffAddress]).toBe(0x0a);  // EXTRF | WDRF: the reset pin, then the bootloader's timeout
    pen.mcu.data[resetHandoffAddress] = 0;  // what a bootloader without the handoff leaves: MCUSR cleared, nothing kept
    const { identity, status } = await identify();
    expect(identity.resetCause).toBe('unknown');
    expect(status.fault).toBe('none');
  });

  it('still reports a watchdog bite of the application as one, with the fault latched', { tags: ['REQ-WATCHDOG'] }, async () => {
    pen = new VirtualPen({ bootloaderPath: defaultBootloaderPath });
    pen.runFor(50);
    pen.hangFirmware();
    pen.runUntil(() => pen.watchdogBites > 0, 200);
    expect(pen.watchdogBites).toBe(1);
    expect(pen.runUntil(inApplication, 1) ?? Infinity).toBeLessThan(100);  // no EXTRF: no wait in the bootloader
    const { identity, status } = await identify();
    expect(identity.resetCause).toBe('watchdog');
    expect(status).toMatchObject({ state: 'fault', fault: 'watchdog_reset' });
  });
});

/** STK500 v1 as Optiboot speaks it: a command, its arguments, CRC_EOP; answered STK_INSYNC … STK_OK. */
const STK = { getSync: 0x30, loadAddress: 0x55, progPage: 0x64, readPage: 0x74, readSign: 0x75, leaveProgmode: 0x51, eop: 0x20, insync: 0x14, ok: 0x10 } as const;

describe('Optiboot rewriting the application in the virtual pen', () => {
  it('writes and reads back a page over STK500, its stack never reaching the handoff byte, and the old ELF is then refused', { tags: ['REQ-FIRMWARE-FLASH'] }, async () => {
    pen = new VirtualPen({ bootloaderPath: defaultBootloaderPath });
    pen.runFor(20);
    const port: PenUart = pen.openPort();
    const received: number[] = [];
    port.onData((bytes) => received.push(...bytes));
    let lowestBootStack = 0x8ff;
    const watchStack = (): boolean => {
      if (!inApplication()) lowestBootStack = Math.min(lowestBootStack, pen.mcu.dataView.getUint16(SP, true));
      return false;
    };
    /** Sends a command and runs the MCU until the answer (answerBytes long) is in, or 200 ms of simulated time pass. */
    const exchange = (command: readonly number[], answerBytes: number): number[] => {
      received.length = 0;
      port.write(Uint8Array.from([...command, STK.eop]));
      for (let ms = 0; ms < 200 && received.length < answerBytes; ms += 5) pen.runUntil(watchStack, 5);
      return [...received];
    };
    pen.resetMcu('external');
    pen.runFor(1);  // bytes that arrive before Optiboot enables the receiver are lost, as on the chip
    expect(exchange([STK.getSync], 2)).toEqual([STK.insync, STK.ok]);
    expect(exchange([STK.readSign], 5)).toEqual([STK.insync, 0x1e, 0x95, 0x0f, STK.ok]);
    const pageByte = 0x7c00;  // beyond the application's end, below the bootloader: the application still runs afterwards
    const page = Array.from({ length: 128 }, (_, i) => (i * 7 + 3) & 0xff);
    expect(exchange([STK.loadAddress, (pageByte / 2) & 0xff, pageByte / 2 >> 8], 2)).toEqual([STK.insync, STK.ok]);
    expect(exchange([STK.progPage, 0, page.length, 0x46, ...page], 2)).toEqual([STK.insync, STK.ok]);
    expect(exchange([STK.loadAddress, (pageByte / 2) & 0xff, pageByte / 2 >> 8], 2)).toEqual([STK.insync, STK.ok]);
    expect(exchange([STK.readPage, 0, page.length, 0x46], page.length + 2)).toEqual([STK.insync, ...page, STK.ok]);
    expect(exchange([STK.leaveProgmode], 2)).toEqual([STK.insync, STK.ok]);
    expect(pen.runUntil(inApplication, 100)).not.toBeNull();  // Optiboot leaves by a 16 ms watchdog reset
    expect(lowestBootStack).toBeGreaterThan(resetHandoffAddress);
    expect(() => pen.readRam('uptime_ms')).toThrow(/rewritten through its bootloader .* no longer describe it/);
    const { identity } = await identify();
    expect(identity.resetCause).toBe('external');
  });

  it('with no application, the bootloader answers and nothing else does', { tags: ['REQ-FIRMWARE-FLASH'] }, () => {
    pen = new VirtualPen({ bootloaderPath: defaultBootloaderPath, firmwarePath: null });
    expect(() => pen.elfPath).toThrow(/without an application/);
    pen.runFor(100);
    const port = pen.openPort();
    const received: number[] = [];
    port.onData((bytes) => received.push(...bytes));
    port.write(Uint8Array.of(0x00, 0x10, 0x00, 0x00, 0x7e));  // the start of a frame, as a host would send
    pen.runFor(300);
    expect(received).toEqual([]);
    pen.resetMcu('external');
    pen.runFor(1);
    port.write(Uint8Array.of(STK.getSync, STK.eop));
    pen.runFor(10);
    expect(received).toEqual([STK.insync, STK.ok]);
  });
});
