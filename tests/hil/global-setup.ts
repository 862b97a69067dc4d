// The HIL suite's bench, set up once for the whole run: a real one when PEN_PORT and RIG_PORT name its ports (GAUGE_PORT
// optional), else the virtual bench, a `pen sim` process serving the pen, its rig, its dial gauge and its control channel
// on TCP, found through its --json lines. The suite then connects to either exactly the same way (tests/hil/bench.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { rigFirmwareHexPath, standardFirmataHexPath } from '../../hardware/sim/virtual-rig.ts';
import { resultsPath } from '../../src/qa/results.ts';
import { writeProvisionedEepromFile } from '../sim/provisioned.ts';

/** Where the bench's parts are; the tests reach it through inject('hilBench'). */
export interface BenchAddresses {
  readonly kind: 'virtual' | 'real';
  readonly description: string;
  readonly pen: string;
  readonly rig: string;
  readonly gauge: string | null;
  /** `pen sim --control`: the plant faults only a virtual bench can cause; null on a real bench. */
  readonly control: string | null;
  /** The rig's firmware on the virtual bench (a HEX path), null on a real one (the rig reports its own name). */
  readonly rigFirmware: string | null;
}

declare module 'vitest' {
  export interface ProvidedContext {
    hilBench: BenchAddresses;
  }
}

/** HIL_RIG_FIRMWARE: `ours` (default: firmware/build/rig.hex), `standard` (stock StandardFirmata) or a HEX path. */
function rigFirmwarePath(): string {
  const choice = process.env['HIL_RIG_FIRMWARE'] ?? 'ours';
  if (choice === 'ours') return rigFirmwareHexPath;
  if (choice === 'standard') return standardFirmataHexPath;
  return choice;
}

const endpoints = ['pen', 'rig', 'gauge', 'control'] as const;
type Endpoint = (typeof endpoints)[number];

/** Starts `pen sim` with every endpoint on a free port; resolves with the addresses once it has said them all. */
async function startVirtualBench(): Promise<{ addresses: BenchAddresses; stop: () => Promise<void> }> {
  // pen sim writes its EEPROM and parts files durably (fsync) on every change, on its own loop; on a slow disk that
  // could hold the pen's frames past the host's 250 ms link timeout. The bench needs no durability: memory will do.
  const folder = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'pen-hil-'));
  const eeprom = writeProvisionedEepromFile(join(folder, 'pen.eeprom'));
  const rigFirmware = rigFirmwarePath();
  const any = 'tcp://127.0.0.1:0';
  const child: ChildProcess = spawn(process.execPath, ['bin/pen.js', 'sim', '--json', '--listen', any, '--rig', any, '--rig-firmware', rigFirmware,
    '--gauge', any, '--control', any, '--eeprom', eeprom], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  // Everything pen sim says (its endpoints, control changes, resets), beside the run's results, for when a test fails.
  const logPath = join(dirname(resultsPath()), 'pen-sim.log');
  mkdirSync(dirname(logPath), { recursive: true });
  const log = createWriteStream(logPath);
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGINT');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    }
    log.end();
    rmSync(folder, { recursive: true, force: true });
  };
  const found = new Map<Endpoint, string>();
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`pen sim did not serve ${endpoints.filter((e) => !found.has(e)).join(', ')} within 30 s: ${stderr.trim()}`)), 30_000);
      let buffer = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        const lines = buffer.split('\n');
        buffer = lines.pop() ?? '';
        for (const line of lines) {
          const event = JSON.parse(line) as { endpoint?: Endpoint; address?: string };
          if (event.endpoint !== undefined && event.address !== undefined) found.set(event.endpoint, event.address);
        }
        if (endpoints.every((e) => found.has(e))) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`pen sim exited (${code ?? 'signal'}) before serving the bench: ${stderr.trim()}`));
      });
    });
  } catch (error) {
    await stop();
    throw error;
  }
  const address = (endpoint: Endpoint): string => found.get(endpoint) ?? '';
  return {
    addresses: {
      kind: 'virtual',
      description: `the virtual bench: pen sim (pid ${child.pid ?? '?'}, log ${logPath}) serving the pen on ${address('pen')} and its rig on ${address('rig')}, running ${rigFirmware}`,
      pen: address('pen'), rig: address('rig'), gauge: address('gauge'), control: address('control'), rigFirmware,
    },
    stop,
  };
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const penPort = process.env['PEN_PORT'];
  const rigPort = process.env['RIG_PORT'];
  if (penPort !== undefined && rigPort !== undefined) {
    const gauge = process.env['GAUGE_PORT'] ?? null;
    project.provide('hilBench', {
      kind: 'real', description: `the bench with the pen on ${penPort} and the rig on ${rigPort}${gauge === null ? '' : `, gauge on ${gauge}`}`,
      pen: penPort, rig: rigPort, gauge, control: null, rigFirmware: null,
    });
    return () => Promise.resolve();
  }
  if ((penPort === undefined) !== (rigPort === undefined)) {
    throw new Error(`a real bench needs both PEN_PORT and RIG_PORT (got only ${penPort === undefined ? 'RIG_PORT' : 'PEN_PORT'}); set neither for the virtual bench`);
  }
  const bench = await startVirtualBench();
  project.provide('hilBench', bench.addresses);
  return bench.stop;
}
