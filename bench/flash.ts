// Flashing: the pen firmware written into a virtual pen that has only its bootloader (Optiboot, booted as on an Uno),
// through the real avrdude over TCP, as `pen flash` does; in simulated and wall time. And the bootloader's size.
import { execFileSync } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { RealClock } from '../hardware/clock.ts';
import { elfPathFor } from '../hardware/sim/elf-symbols.ts';
import { servePen } from '../hardware/sim/tcp-server.ts';
import { defaultBootloaderPath, defaultFirmwarePath, VirtualPen } from '../hardware/sim/virtual-pen.ts';
import { avrdudeArguments, runAvrdude } from '../src/cli/avrdude.ts';
import { checkFirmwareImage } from '../src/cli/flash.ts';
import { progress, round, type Figure } from './figure.ts';

function bootloaderTextBytes(): number {
  const output = execFileSync('avr-size', ['-A', elfPathFor(defaultBootloaderPath)], { encoding: 'utf8' });
  const text = /^\.text\s+(\d+)/m.exec(output)?.[1];
  if (text === undefined) throw new Error(`avr-size found no .text in ${elfPathFor(defaultBootloaderPath)}: rebuild with \`npm run firmware\``);
  return Number(text);
}

export async function measure(): Promise<Figure[]> {
  const image = checkFirmwareImage(defaultFirmwarePath);
  // Real time: avrdude and Optiboot both count their timeouts on their own clocks, as with a board on a cable.
  const pen = new VirtualPen({ timeMode: 'real', bootloaderPath: defaultBootloaderPath, firmwarePath: null });
  pen.start();
  const server = await servePen(pen, { host: '127.0.0.1', port: 0 }, () => {}, { autoReset: true });
  const port = `tcp://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const simStartMs = pen.simTimeMs;
  const wallStartMs = performance.now();
  const run = await runAvrdude(avrdudeArguments(port, defaultFirmwarePath), {
    clock: new RealClock(), port, syncWithinMs: 3000, timeoutMs: 120_000,
    onProgress: ({ phase, percent }) => { if (percent % 50 === 0) progress(`${phase} ${percent}%`); },
  });
  const wallMs = performance.now() - wallStartMs;
  const simMs = pen.simTimeMs - simStartMs;
  await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
  await pen.stop();
  const note = `firmware/build/pen.hex into a virtual pen with Optiboot only, avrdude -c arduino -b 115200 over TCP (net:), write + verify`;
  return [
    { name: 'flash_image_bytes', value: image.bytes, unit: 'B', note: 'pen firmware image (firmware/build/pen.hex)' },
    { name: 'flash_image_pages', value: image.pages, unit: 'pages', note: '128-byte flash pages it touches' },
    { name: 'flash_sim_ms', value: round(simMs, 0), unit: 'ms', note: `simulated time, avrdude start to end: ${note}` },
    { name: 'flash_wall_ms', value: round(wallMs, 0), unit: 'ms', note: `wall time of the same run: ${note}` },
    { name: 'flash_write_s', value: run.writeSeconds ?? Number.NaN, unit: 's', note: "avrdude's writing phase" },
    { name: 'flash_verify_s', value: run.verifySeconds ?? Number.NaN, unit: 's', note: "avrdude's verifying (read-back) phase" },
    { name: 'flash_bytes_per_s', value: round(image.bytes / (wallMs / 1000), 0), unit: 'B/s', note: 'image bytes over the wall time, write and verify included' },
    { name: 'bootloader_bytes', value: bootloaderTextBytes(), unit: 'B', note: 'Optiboot 4.4 + reset-cause handoff, .text, of 510 before its version word' },
  ];
}
