// The `pen` command as a user runs it, for tests: spawn `pen sim --listen` on a free port, run `pen …` to its end with a
// time bound, follow a long-running `pen`, and kill whatever is left at the end of each test. Every process gets its
// own data directory (store, virtual pen EEPROM, owner sockets) and none of the caller's PEN_* settings, so tests
// never read or write the user's files or each other's.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = fileURLToPath(new URL('..', import.meta.url));

export interface PenResult {
  /** The exit code; null when it was killed at the time bound (a hang). */
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

export interface SimServer {
  readonly child: ChildProcess;
  readonly port: number;
  /** tcp://127.0.0.1:PORT, for --port. */
  readonly address: string;
}

export interface RunningPen {
  readonly child: ChildProcess;
  /** Resolves with the first capture group (or the whole match) once stdout matches. */
  waitFor(pattern: RegExp): Promise<string>;
  readonly exited: Promise<number | null>;
}

/** Tracks the processes a test starts, so that afterEach can kill them all. */
export class PenProcesses {
  private readonly children: ChildProcess[] = [];
  private dataHome = PenProcesses.freshDataHome();

  private static freshDataHome(): string {
    return mkdtempSync(join(tmpdir(), 'pen-test-'));
  }

  /** The environment every process of the current test gets (extra wins). */
  env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PEN_')));
    return { ...inherited, XDG_DATA_HOME: this.dataHome, PEN_DB: join(this.dataHome, 'pen.db'), ...extra };
  }

  /** Starts `pen sim` on an OS-chosen port (plus any extra arguments) and resolves once it listens. */
  startSim(extraArgs: readonly string[] = []): Promise<SimServer> {
    const sim = this.start(['sim', '--listen', 'tcp://127.0.0.1:0', ...extraArgs]);
    const { child, exited } = sim;
    return Promise.race([
      sim.waitFor(/listening on tcp:\/\/127\.0\.0\.1:(\d+)/).then((port) => ({ child, port: Number(port), address: `tcp://127.0.0.1:${port}` })),
      exited.then((code) => Promise.reject(new Error(`pen sim exited with ${String(code)} before listening`))),
    ]);
  }

  /** Runs `pen ARGS` to its end, killed after timeoutMs (then code is null). */
  run(args: readonly string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<PenResult> {
    const started = performance.now();
    return new Promise((resolve) => {
      const child = execFile(
        'node', ['bin/pen.js', ...args],
        { cwd: projectRoot, timeout: options.timeoutMs ?? 20_000, killSignal: 'SIGKILL', env: this.env(options.env) },
        (_error, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr, ms: performance.now() - started }),
      );
      this.children.push(child);
    });
  }

  /** Starts `pen ARGS` and follows it (for signals, pipes and output it prints as it goes). */
  start(args: readonly string[], env: NodeJS.ProcessEnv = {}): RunningPen {
    const child = spawn('node', ['bin/pen.js', ...args], { cwd: projectRoot, env: this.env(env) });
    this.children.push(child);
    let output = '';
    const waiters: { pattern: RegExp; resolve: (match: string) => void }[] = [];
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      for (const waiter of [...waiters]) {
        const match = waiter.pattern.exec(output);
        if (match === null) continue;
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(match[1] ?? match[0]);
      }
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    return { child, exited, waitFor: (pattern) => new Promise((resolve) => waiters.push({ pattern, resolve })) };
  }

  /** Kills what the test left running; the next test gets a fresh data directory. */
  killAll(): void {
    for (const child of this.children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    this.dataHome = PenProcesses.freshDataHome();
  }
}
