// Every `pen` command behaves as a user expects (issue 8), each checked on the real process (node bin/pen.js …):
// no command hangs on a port that never answers as a pen, `pen sim` says when its port is in use, a closed stdout
// ends a command cleanly (a running pen stopped first), a refused command leaves the pen as it found it, SIGTERM and
// SIGHUP end `pen run` as Ctrl-C does, values are checked before connecting, and `pen --version` names what it carries.
import { spawn, spawnSync } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import packageJson from '../../package.json' with { type: 'json' };
import { PROTOCOL_VERSION } from '../../hardware/generated/protocol.ts';
import type { Telemetry } from '../../hal/device.ts';
import { buildProgram } from '../../src/cli/pen.ts';
import { PenProcesses, type PenResult, type RunningPen, type StartOptions } from '../pen-process.ts';
import { sterileNoseconeStore } from './registered-parts.ts';

/** Every process here gets a fresh data directory of its own (records, EEPROM file), so nothing touches the user's. */
const pens = new PenProcesses();
const closers: (() => void)[] = [];
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** How long a command may take to give up on a port that never answers: node's start-up plus the link's retries. */
const giveUpWithinMs = 5000;
/** A stack trace line, or bin/pen.js's note that something was left open after the command finished. */
const untidy = /^\s+at |EPIPE|still busy/m;

afterEach(() => {
  pens.killAll();
  for (const close of closers.splice(0)) close();
});

/** Spawns `pen ARGS` in a fresh data directory, killed (SIGKILL) after timeoutMs, and after the test unless kept. */
const spawnPen = (args: readonly string[], options: StartOptions = {}): RunningPen =>
  pens.start(args, {}, { timeoutMs: 15_000, ...options, dataDir: options.dataDir ?? pens.freshDataDir() });

/** Runs `pen ARGS` to its end in a fresh data directory, killed after timeoutMs (then code is null). */
const penCli = (args: readonly string[], timeoutMs = 15_000): Promise<PenResult> =>
  pens.run(args, { timeoutMs, dataDir: pens.freshDataDir() });

/** A TCP server on an OS-chosen port that treats each connection with onConnection; closed after the test. */
async function tcpServer(onConnection: (socket: Socket) => void): Promise<{ server: Server; address: string; port: number }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  const bound = server.address();
  const port = typeof bound === 'object' && bound !== null ? bound.port : 0;
  return { server, address: `tcp://127.0.0.1:${port}`, port };
}

/** Accepts and says nothing, ever (reading what comes, so nothing backs up). */
const silentServer = (): Promise<{ address: string }> => tcpServer((socket) => socket.resume());

function expectGaveUp(result: PenResult, what: string): void {
  expect(result.code, `${what}: exit code (stderr: ${result.stderr})`).toBe(3);
  expect(result.ms, `${what}: took ${Math.round(result.ms)} ms`).toBeLessThan(giveUpWithinMs);
  expect(result.stderr, what).not.toMatch(untidy);
}

describe('a port that never answers as a pen: every command gives up and exits 3', () => {
  /** Values for options a command cannot run without; a new command's new mandatory option must be added here. */
  const sampleValues: Record<string, string> = {
    '--depth': '1.0', '--speed': '100', '--serial': 'PN-0001', '--technician': 'Ann', '--gauge-id': 'G-1', '--gauge-due': '2099-01-01',
  };
  /** Arguments for commands whose options are needed together but not each mandatory (the forms they take differ). */
  const sampleArguments: Record<string, string[]> = {
    sterilize: ['--part', '2d00000000000001', '--cycle', '134C-3min-prevac', '--sterilizer', 'ST-1', '--load', '1', '--indicator', 'pass', '--operator', 'ann'],
  };

  /** Every subcommand that takes --port, from the commander program itself, so that a command added later is covered. */
  function portInvocations(): string[][] {
    const invocations: string[][] = [];
    for (const command of buildProgram().commands) {
      if (!command.options.some((option) => option.long === '--port')) continue;
      const args = [command.name(), ...(sampleArguments[command.name()] ?? [])];
      for (const option of command.options.filter((o) => o.mandatory)) {
        const value = option.long === undefined ? undefined : sampleValues[option.long];
        if (value === undefined) throw new Error(`pen ${command.name()}: add a valid sample value for mandatory ${option.flags} to sampleValues`);
        args.push(option.long ?? '', value);
      }
      invocations.push(args);
      if (command.options.some((option) => option.long === '--watch')) invocations.push([...args, '--watch']);
    }
    return invocations;
  }

  it('every subcommand that takes --port, against a TCP server that accepts and says nothing', async () => {
    const invocations = portInvocations();
    expect(invocations.map((args) => args[0])).toEqual(expect.arrayContaining(['run', 'status', 'home', 'stop', 'calibration', 'info']));
    // Three at a time, each on its own server (one process holds a port at a time).
    for (let i = 0; i < invocations.length; i += 3) {
      await Promise.all(invocations.slice(i, i + 3).map(async (args) => {
        const { address } = await silentServer();
        const result = await penCli([...args, '--port', address], 10_000);
        expectGaveUp(result, `pen ${args.join(' ')}`);
        // pen flash talks to the bootloader (avrdude) first, the others to the pen firmware.
        expect(result.stderr).toMatch(args[0] === 'flash'
          ? /no answer from a bootloader on tcp:\/\/127\.0\.0\.1:\d+ after \d+ s: nothing answered/
          : /no answer from the pen on tcp:\/\/127\.0\.0\.1:\d+ after \d+ tries/);
      }));
    }
  });

  it('pen info against a TCP server that answers in HTTP (keeping the connection open, and an HTTP server that closes it)', async () => {
    const { address: keepsOpen } = await tcpServer((socket) => {
      socket.on('data', () => socket.write('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nBad Request'));
    });
    const web = createHttpServer((_request, response) => response.end('hello'));
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    closers.push(() => { web.closeAllConnections(); web.close(); });
    const webPort = (web.address() as AddressInfo).port;
    const [open, closes] = await Promise.all([
      penCli(['info', '--port', keepsOpen], 10_000), penCli(['info', '--port', `tcp://127.0.0.1:${webPort}`], 10_000),
    ]);
    expectGaveUp(open, 'pen info (keeps open)');
    expect(open.stderr).toMatch(/no answer from the pen on tcp:\/\/127\.0\.0\.1:\d+ after \d+ tries.*it sent "HTTP\/1\.1 400 Bad Request", which is not the pen's protocol: is this the pen's port\?/);
    expectGaveUp(closes, 'pen info (HTTP server)');
    expect(closes.stderr).toMatch(/closed; it sent "HTTP\/1\.1 400 Bad Request", which is not the pen's protocol/);
  });

  const socat = spawnSync('socat', ['-V']).status === 0;
  it.skipIf(!socat)(`pen info and pen run against a silent pty (socat pty,raw,echo=0 pair)${socat ? '' : ' — skipped: socat is not installed'}`, async () => {
    const dir = pens.freshDataDir();
    const pair = spawn('socat', [`pty,raw,echo=0,link=${dir}/pen`, `pty,raw,echo=0,link=${dir}/other`]);
    closers.push(() => pair.kill('SIGKILL'));
    for (let waited = 0; spawnSync('test', ['-e', `${dir}/other`]).status !== 0; waited += 50) {
      if (waited > 3000) throw new Error('socat made no pty pair within 3 s');
      await sleep(50);
    }
    const [info, run] = await Promise.all([
      penCli(['info', '--port', `${dir}/pen`], 10_000),
      penCli(['run', '--port', `${dir}/other`, '--depth', '1.0', '--speed', '100'], 10_000),
    ]);
    for (const [result, what] of [[info, 'pen info'], [run, 'pen run']] as const) {
      expectGaveUp(result, what);
      expect(result.stderr).toMatch(/no answer from the pen on serial .* after \d+ tries/);
    }
  });

  it('a malformed --port is a usage error (exit 2) saying what is allowed, not a link failure', async () => {
    const results = await Promise.all(['tcp://127.0.0.1', 'tcp://127.0.0.1:0', 'tcp://127.0.0.1:70000', 'tcp://:7777'].map((port) =>
      penCli(['info', '--port', port])));
    for (const result of results) {
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(/use a serial device path \(e\.g\. \/dev\/ttyUSB0\) or tcp:\/\/HOST:PORT/);
    }
  });

  it('pen sim --listen on a port already in use says so and exits 1', async () => {
    const { port } = await tcpServer(() => {});
    const result = await penCli(['sim', '--listen', `tcp://127.0.0.1:${port}`], 10_000);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`port ${port} is in use: .*tcp://127\\.0\\.0\\.1:0 for any free one`));
    expect(result.ms).toBeLessThan(giveUpWithinMs);
    expect(result.stderr).not.toMatch(untidy);
  });
});

describe('against `pen sim` in its own process', () => {
  let sim: RunningPen;
  let address = '';
  /** How many hosts have connected to the sim so far (it logs each). */
  let simConnections = 0;
  const connections = async (): Promise<number> => {
    await sleep(50);  // the sim's log line may still be on its way
    return simConnections;
  };

  beforeAll(async () => {
    sim = spawnPen(['sim', '--listen', 'tcp://127.0.0.1:0'], { timeoutMs: 120_000, keep: true });
    sim.child.stdout?.on('data', (chunk: Buffer) => { simConnections += chunk.toString().split('client connected').length - 1; });
    address = await sim.waitFor(/listening on (tcp:\/\/\S+)/, 120_000);
  });

  afterAll(async () => {
    sim.child.kill('SIGINT');
    await sim.finished;
  });

  async function status(at = address): Promise<Telemetry> {
    const result = await penCli(['status', '--port', at, '--json']);
    expect(result.code, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as Telemetry;
  }

  function sessions(db: string): { ended_at: string | null; outcome: string | null; summary: string | null }[] {
    const store = new Database(db, { readonly: true });
    try {
      return store.prepare('SELECT ended_at, outcome, summary FROM sessions ORDER BY id').all() as { ended_at: string | null; outcome: string | null; summary: string | null }[];
    } finally {
      store.close();
    }
  }

  it('pen --version names the host, the protocol and the firmware build the pen it runs reports', { tags: ['REQ-IDENTITY'] }, async () => {
    const [text, json, info] = await Promise.all([penCli(['--version']), penCli(['--version', '--json']), penCli(['info', '--port', address, '--json'])]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`^pen ${packageJson.version}\\nprotocol version ${PROTOCOL_VERSION}\\nfirmware \\d+\\.\\d+\\.\\d+, build [0-9a-f]{8} in firmware/build/pen.hex`));
    const version = JSON.parse(json.stdout) as { host: string; protocolVersion: number; firmware: { version: string; buildId: string; sourcesBuildId: string } };
    const identity = (JSON.parse(info.stdout) as { identity: { firmwareVersion: string; buildId: string; protocolVersion: number } }).identity;
    expect(version).toMatchObject({ host: packageJson.version, protocolVersion: identity.protocolVersion });
    expect(version.firmware).toMatchObject({ version: identity.firmwareVersion, buildId: identity.buildId, sourcesBuildId: identity.buildId });
  });

  it('a refused `pen run` never connects, and leaves a homed, idle pen exactly as it found it', { tags: ['REQ-HOST-REFUSAL'] }, async () => {
    const home = await penCli(['home', '--port', address]);
    expect(home.code, home.stderr).toBe(0);
    const before = await status();
    expect(before).toMatchObject({ state: 'idle', homed: true, fault: 'none' });
    const connected = await connections();
    const cases: [string[], number, RegExp][] = [
      [['--depth', '1', '--speed', '999'], 5, /speed 999 strokes\/s is outside 50–150 strokes\/s/],
      [['--depth', '1', '--speed', '100.5'], 5, /speed 100\.5 strokes\/s is outside 50–150 strokes\/s \(whole numbers\)/],
      [['--depth', '2.001', '--speed', '100'], 5, /depth 2\.001 mm is outside 0\.50–2\.00 mm/],
      [['--depth', '0.4', '--speed', '100'], 5, /depth 0\.40 mm is outside 0\.50–2\.00 mm/],
      [['--depth', '0x1', '--speed', '100'], 2, /--depth must be a plain decimal number .* \(got "0x1"\)/],
      [['--depth', '1e0', '--speed', '100'], 2, /--depth must be a plain decimal number/],
      [['--depth', '1', '--speed', 'Infinity'], 2, /--speed must be a plain decimal number/],
      [['--depth', '1', '--speed', '100', '--duration', '0'], 5, /duration 0 s is outside 1–3600 s/],
      [['--depth', '1', '--speed', '100', '--duration', '3601'], 5, /duration 3601 s is outside 1–3600 s/],
      [['--depth', '1', '--speed', '100', '--cartridge', '1.5'], 2, /--cartridge: part id "1\.5" is not 16 hex digits, the chip's ROM id/],
      [['--depth', '1', '--speed', '100', '--rate', '0'], 2, /--rate 0 Hz is outside 1–\d+ Hz/],
    ];
    // Four at a time: none of them may connect (if one did, the others would find the pen busy, and fail too).
    for (let i = 0; i < cases.length; i += 4) {
      await Promise.all(cases.slice(i, i + 4).map(async ([args, code, message]) => {
        const result = await penCli(['run', '--port', address, ...args]);
        expect(result.code, `pen run ${args.join(' ')}: ${result.stderr}`).toBe(code);
        expect(result.stderr).toMatch(message);
      }));
    }
    expect(await connections()).toBe(connected);
    await sleep(300);  // longer than the pen's heartbeat timeout
    const after = await status();
    expect(after).toMatchObject({ state: before.state, fault: 'none', homed: true, needleOn: false, moving: false });
    expect(after.depthMm).toBeCloseTo(before.depthMm, 3);
  });

  /**
   * A `pen sim` of its own for a `pen run`, which uses up the sim's cartridge (a sim fits a new one as it starts), in a
   * data directory whose store has the sim's nosecone sterilized.
   */
  async function simForRun(): Promise<{ readonly dataDir: string; readonly at: string }> {
    const dataDir = pens.freshDataDir();
    await sterileNoseconeStore(join(dataDir, 'pen.db'));
    const own = spawnPen(['sim', '--listen', 'tcp://127.0.0.1:0'], { dataDir, timeoutMs: 60_000 });
    return { dataDir, at: await own.waitFor(/listening on (tcp:\/\/\S+)/, 60_000) };
  }

  it.each(['SIGTERM', 'SIGHUP'] as const)('%s ends pen run as Ctrl-C does: the pen stopped, the session closed as stopped, exit 130', { tags: ['REQ-STOP'] }, async (signal) => {
    const { dataDir, at } = await simForRun();
    const run = spawnPen(['run', '--port', at, '--depth', '1.5', '--speed', '100'], { dataDir, timeoutMs: 20_000 });
    await run.waitFor(/session: treating/, 20_000);
    await sleep(400);
    run.child.kill(signal);
    const result = await run.finished;
    expect(result.code, result.stderr).toBe(130);
    expect(result.stdout).toContain(`${signal}: stopping the pen (motor off, needle home)`);
    expect(result.stdout).toMatch(new RegExp(`ended: stopped \\(interrupted: ${signal}\\)`));
    expect(result.stderr).not.toMatch(untidy);
    const t = await status(at);
    expect(t).toMatchObject({ state: 'idle', fault: 'none', needleOn: false, moving: false, motorDuty: 0 });
    expect(Math.abs(t.depthMm)).toBeLessThanOrEqual(0.002);
    const [session, ...others] = sessions(join(dataDir, 'pen.db'));
    expect(others).toEqual([]);
    expect(session?.ended_at).toEqual(expect.any(String));
    expect(session?.outcome).toBe('stopped');
    expect((JSON.parse(session?.summary ?? '{}') as { strokes?: number }).strokes).toBeGreaterThan(0);
  });

  /** Spawns the command and closes the reading end of its stdout after `lines` lines, as `| head -n lines` does. */
  function headOf(args: readonly string[], lines: number | RegExp, dataDir?: string): RunningPen {
    const running = spawnPen(args, { timeoutMs: 20_000, ...(dataDir === undefined ? {} : { dataDir }) });
    let seen = '';
    const stdout = running.child.stdout;
    stdout?.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      const enough = typeof lines === 'number' ? seen.split('\n').length > lines : lines.test(seen);
      if (enough) stdout.destroy();
    });
    return running;
  }

  it('pen status --watch --json | head -n 2 and pen info | head -n 1 end cleanly (exit 0, no trace), the pen as found', async () => {
    const before = await status();
    const watch = await headOf(['status', '--port', address, '--watch', '--json'], 2).finished;
    expect(watch.code, watch.stderr).toBe(0);
    expect(watch.stderr).not.toMatch(untidy);
    expect(watch.stderr).toBe('');
    const info = await headOf(['info', '--port', address], 1).finished;
    expect(info.code, info.stderr).toBe(0);
    expect(info.stderr).toBe('');
    const after = await status();
    expect(after).toMatchObject({ state: before.state, fault: before.fault, homed: before.homed, needleOn: false });
  });

  it('pen run | head: when stdout closes mid-treatment the pen is stopped, as on Ctrl-C, before exit 130', { tags: ['REQ-STOP'] }, async () => {
    const { dataDir, at } = await simForRun();
    const result = await headOf(['run', '--port', at, '--depth', '1.2', '--speed', '100'], /session: treating\n/, dataDir).finished;
    expect(result.code, result.stderr).toBe(130);
    expect(result.stderr).not.toMatch(untidy);
    const t = await status(at);
    expect(t).toMatchObject({ state: 'idle', fault: 'none', needleOn: false, moving: false });
    const [session] = sessions(join(dataDir, 'pen.db'));
    expect(session).toMatchObject({ outcome: 'stopped', ended_at: expect.any(String) as unknown });
  });
});
