// `pen ports`: the serial ports on this machine (path, its /dev/serial/by-id name, VID:PID, manufacturer, serial
// number), each probed for a pen: connect, identify, close, within a time bound, never left open. `--probe PATH…` probes
// paths the list cannot show (a pty, a tcp:// address) too; `--no-probe` only lists.
import { readdirSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Command, Option } from 'commander';
import { SerialPort } from 'serialport';
import { RealClock } from '../../hardware/clock.ts';
import { PROTOCOL_VERSION } from '../../hardware/generated/protocol.ts';
import { PenLink } from '../../hal/link/reliable-link.ts';
import { openTransport, type Transport } from '../../hal/link/transport.ts';
import { checkPortSyntax } from './connect-port.ts';
import { ExitCode, UsageError } from './format.ts';

/** How long one probe may take, opening included; probes run side by side. */
export const probeTimeoutMs = 1500;
/** How long listing may take (udevadm on Linux). */
const listTimeoutMs = 3000;
const byIdDirectory = '/dev/serial/by-id';

export interface PenAnswer {
  readonly boardName: string;
  readonly firmwareVersion: string;
  readonly buildId: string;
  readonly protocolVersion: number;
  /** Whether this host speaks its protocol version. */
  readonly compatible: boolean;
}

export type ProbeResult =
  | { readonly kind: 'pen'; readonly pen: PenAnswer; readonly ms: number }
  | { readonly kind: 'no answer' | 'busy' | 'cannot open'; readonly detail: string; readonly ms: number };

export interface PortEntry {
  readonly path: string;
  /** /dev/serial/by-id names that point to it. */
  readonly byId: readonly string[];
  /** "0403:6001", when the port is on USB. */
  readonly vidPid: string | null;
  readonly manufacturer: string | null;
  readonly serialNumber: string | null;
  /** False for a path given with --probe that the list does not show. */
  readonly listed: boolean;
  /** Null when not probed (--no-probe). */
  readonly probe: ProbeResult | null;
}

interface ListedPort {
  readonly path: string;
  readonly vendorId: string | null;
  readonly productId: string | null;
  readonly manufacturer: string | null;
  readonly serialNumber: string | null;
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function realPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/** /dev/serial/by-id names by the device each points to. */
export function byIdNames(directory: string = byIdDirectory): Map<string, string[]> {
  const names = new Map<string, string[]>();
  let entries: string[];
  try {
    entries = readdirSync(directory).sort();
  } catch {
    return names;  // no USB serial device plugged in (udev creates the directory with the first)
  }
  for (const entry of entries) {
    const link = join(directory, entry);
    const target = realPath(link);
    names.set(target, [...(names.get(target) ?? []), link]);
  }
  return names;
}

function readSysfs(directory: string, name: string): string | null {
  try {
    const value = readFileSync(join(directory, name), 'utf8').trim();
    return value === '' ? null : value;
  } catch {
    return null;
  }
}

/** USB metadata from sysfs, for a tty whose device is on USB: walks up to the USB device that has idVendor. */
function sysfsPort(path: string): ListedPort {
  const empty = { path, vendorId: null, productId: null, manufacturer: null, serialNumber: null };
  let directory: string;
  try {
    directory = realpathSync(join('/sys/class/tty', basename(path), 'device'));
  } catch {
    return empty;
  }
  for (let depth = 0; depth < 6 && directory !== '/'; depth++, directory = dirname(directory)) {
    const vendorId = readSysfs(directory, 'idVendor');
    if (vendorId === null) continue;
    return {
      path, vendorId, productId: readSysfs(directory, 'idProduct'),
      manufacturer: readSysfs(directory, 'manufacturer'), serialNumber: readSysfs(directory, 'serial'),
    };
  }
  return empty;
}

/** Where serialport cannot list (no udevadm, as in many containers): USB and ACM ttys in /dev, and by-id targets. */
function fallbackList(): ListedPort[] {
  let devices: string[] = [];
  try {
    devices = readdirSync('/dev').filter((name) => /^tty(USB|ACM)\d+$/.test(name)).map((name) => `/dev/${name}`);
  } catch {
    // no /dev: nothing to list
  }
  const paths = new Set([...devices, ...byIdNames().keys()]);
  return [...paths].sort().map(sysfsPort);
}

interface SystemPortInfo {
  readonly path: string;
  readonly vendorId?: string | undefined;
  readonly productId?: string | undefined;
  readonly manufacturer?: string | undefined;
  readonly serialNumber?: string | undefined;
}

/** The serial ports on this machine, and a note when the system's list could not be read. */
export async function listSerialPorts(): Promise<{ ports: ListedPort[]; note: string | null }> {
  try {
    // serialport's PortInfo: every field but path may be undefined (declared here: its package's types are not ours to import).
    const listed = await within(SerialPort.list() as Promise<unknown> as Promise<readonly SystemPortInfo[]>, listTimeoutMs, 'listing serial ports');
    return {
      ports: listed.map((port) => ({
        path: port.path, vendorId: port.vendorId ?? null, productId: port.productId ?? null,
        manufacturer: port.manufacturer ?? null, serialNumber: port.serialNumber ?? null,
      })),
      note: null,
    };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    const why = /udevadm/.test(reason) && /ENOENT/.test(reason) ? 'udevadm is not installed (serialport lists ports with it)' : reason;
    return { ports: fallbackList(), note: `the system's port list could not be read (${why}): listed ttyUSB*/ttyACM* in /dev instead` };
  }
}

/** Opens path, synchronises, identifies and closes, all within timeoutMs; never leaves the port open. */
export async function probePort(path: string, timeoutMs: number = probeTimeoutMs): Promise<ProbeResult> {
  const started = performance.now();
  const elapsed = (): number => Math.round(performance.now() - started);
  let transport: Transport | null = null;
  let link: PenLink | null = null;
  let abandoned = false;
  const attempt = async (): Promise<ProbeResult> => {
    try {
      transport = await openTransport(path);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return { kind: message.startsWith('busy:') ? 'busy' : 'cannot open', detail: message, ms: elapsed() };
    }
    if (abandoned) return { kind: 'no answer', detail: 'opened after the time bound', ms: elapsed() };
    link = await PenLink.open(transport, { clock: new RealClock() });
    const reply = await link.request('identify', { hostProtocolVersion: PROTOCOL_VERSION });
    if (reply.name !== 'identify_reply') return { kind: 'no answer', detail: `answered identify with ${reply.name}`, ms: elapsed() };
    const f = reply.fields;
    return {
      kind: 'pen', ms: elapsed(),
      pen: {
        boardName: f.boardName, firmwareVersion: `${f.firmwareMajor}.${f.firmwareMinor}.${f.firmwarePatch}`,
        buildId: f.buildId.toString(16).padStart(8, '0'), protocolVersion: f.protocolVersion, compatible: f.protocolVersion === PROTOCOL_VERSION,
      },
    };
  };
  const close = async (): Promise<void> => {
    if (link !== null) await link.close().catch(() => {});
    else if (transport !== null) await transport.close().catch(() => {});
  };
  const running = attempt();
  try {
    return await within(running, timeoutMs, 'the probe');
  } catch (error) {
    const message = (error instanceof Error ? error.message : String(error)).replace(/^link lost: /, '');
    return { kind: /busy:/.test(message) ? 'busy' : 'no answer', detail: message, ms: elapsed() };
  } finally {
    abandoned = true;
    await within(close(), 500, 'closing').catch(() => {});
    // Whatever the attempt opens after the bound is closed as soon as it is open.
    void running.catch(() => null).then(close);
  }
}

export function describeProbe(probe: ProbeResult | null): string {
  if (probe === null) return 'not probed';
  if (probe.kind !== 'pen') return `${probe.kind}: ${probe.detail}`;
  const { pen } = probe;
  return `PEN ${pen.boardName}, firmware ${pen.firmwareVersion} (build ${pen.buildId}), protocol version ${pen.protocolVersion}` +
    (pen.compatible ? '' : ` (this host speaks ${PROTOCOL_VERSION}: flash matching firmware or use a matching host)`);
}

function describePort(entry: PortEntry): string {
  const facts = [
    ...entry.byId,
    entry.vidPid === null ? null : `USB ${entry.vidPid}`,
    entry.manufacturer,
    entry.serialNumber === null ? null : `serial number ${entry.serialNumber}`,
    entry.listed ? null : 'given with --probe',
  ].filter((fact) => fact !== null);
  return `${entry.path}${facts.length > 0 ? `  (${facts.join(', ')})` : ''}\n  ${describeProbe(entry.probe)}`;
}

export interface PortsFlags {
  readonly json?: boolean;
  /** --probe PATH… gives paths; --no-probe gives false. */
  readonly probe?: readonly string[] | boolean;
}

export async function portsCommand(flags: PortsFlags): Promise<number> {
  const extra = Array.isArray(flags.probe) ? flags.probe as readonly string[] : [];
  for (const path of extra) checkPortSyntax(path);
  const probing = flags.probe !== false;
  const { ports, note } = await listSerialPorts();
  const links = byIdNames();
  const entries: Omit<PortEntry, 'probe'>[] = ports.map((port) => ({
    path: port.path,
    byId: links.get(realPath(port.path)) ?? [],
    vidPid: port.vendorId === null ? null : `${port.vendorId}:${port.productId ?? '????'}`,
    manufacturer: port.manufacturer,
    serialNumber: port.serialNumber,
    listed: true,
  }));
  // A --probe path already listed (under its own name or a by-id link) is probed once.
  const known = new Set(entries.map((entry) => realPath(entry.path)));
  for (const path of extra) {
    const key = /^tcp:/i.test(path) ? path.toLowerCase() : realPath(path);
    if (known.has(key)) continue;
    known.add(key);
    entries.push({ path, byId: links.get(key) ?? [], vidPid: null, manufacturer: null, serialNumber: null, listed: false });
  }
  const probes = await Promise.all(entries.map((entry) => (probing ? probePort(entry.path) : Promise.resolve(null))));
  const result: PortEntry[] = entries.map((entry, index) => ({ ...entry, probe: probes[index] ?? null }));
  if (flags.json === true) {
    console.log(JSON.stringify({ ports: result, note }, null, 2));
    return ExitCode.ok;
  }
  if (note !== null) console.log(`note: ${note}`);
  if (result.length === 0) {
    console.log('no serial ports found (is the pen plugged in and powered? `pen ports --probe PATH` probes a path the list cannot show, such as a pty or tcp://HOST:PORT)');
    return ExitCode.ok;
  }
  const pens = result.filter((entry) => entry.probe?.kind === 'pen').length;
  for (const entry of result) console.log(describePort(entry));
  if (probing) console.log(`${pens} of ${result.length} answered as a pen`);
  return ExitCode.ok;
}

/** Registers `pen ports`; setExitCode receives the command's exit code. */
export function addPortsCommand(program: Command, jsonOption: () => Option, setExitCode: (code: number) => void): void {
  const given = { probe: false, noProbe: false };
  const command = program
    .command('ports')
    .description('list the serial ports (path, /dev/serial/by-id name, USB VID:PID, manufacturer, serial number) and mark those that answer as a pen ' +
      `(each probed: connect, identify, close, within ${probeTimeoutMs} ms)`)
    .option('--probe <path...>', 'probe these paths too, e.g. a pty (/dev/pts/3) or tcp://HOST:PORT, which the list does not show')
    .option('--no-probe', 'only list the ports; open none')
    .addOption(jsonOption());
  // --probe PATH and --no-probe set one value, the last given winning: asked for both, say so instead.
  command.on('option:probe', () => { given.probe = true; });
  command.on('option:no-probe', () => { given.noProbe = true; });
  command.action(async (flags: PortsFlags) => {
    if (given.probe && given.noProbe) throw new UsageError('--no-probe and --probe PATH… contradict each other: give one');
    setExitCode(await portsCommand(flags));
  });
}
