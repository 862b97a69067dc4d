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
  readonly pid: number;
  /**
   * Resolves with the first capture group (or the whole match) once stdout matches. With timeoutMs it rejects,
   * showing the output, if the process ends first or nothing matches within timeoutMs.
   */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  readonly exited: Promise<number | null>;
  /** Resolves once the process has ended and its output is all in (code null when killed). */
  readonly finished: Promise<PenResult>;
  /** Resolves with the exit code; kills the process and rejects, showing its output, if it has not ended within timeoutMs. */
  exitedWithin(timeoutMs?: number): Promise<number | null>;
  /** Stdout and stderr so far, as they came. */
  output(): string;
}

export interface StartOptions {
  /** Not killed by killAll: the caller ends it (a process shared by several tests). */
  readonly keep?: boolean;
  /** Killed (SIGKILL) this long after it starts, so that nothing outlives a hung test. */
  readonly timeoutMs?: number;
  /** A data directory of its own instead of the current test's (see freshDataDir). */
  readonly dataDir?: string;
}

/** Tracks the processes a test starts, so that afterEach can kill them all. */
export class PenProcesses {
  private readonly children: ChildProcess[] = [];
  private dataHome = PenProcesses.freshDataHome();

  private static freshDataHome(): string {
    return mkdtempSync(join(tmpdir(), 'pen-test-'));
  }

  /** The current test's data directory (XDG_DATA_HOME; the store is pen.db in it). */
  get dataDir(): string {
    return this.dataHome;
  }

  /** A new, empty data directory, for a process that must not share the test's (options.dataDir). */
  freshDataDir(): string {
    return PenProcesses.freshDataHome();
  }

  /** The environment every process of the current test (or of dataDir) gets (extra wins). */
  env(extra: NodeJS.ProcessEnv = {}, dataDir = this.dataHome): NodeJS.ProcessEnv {
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PEN_')));
    return { ...inherited, XDG_DATA_HOME: dataDir, PEN_DB: join(dataDir, 'pen.db'), ...extra };
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
  run(args: readonly string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; dataDir?: string } = {}): Promise<PenResult> {
    const started = performance.now();
    return new Promise((resolve) => {
      const child = execFile(
        'node', ['bin/pen.js', ...args],
        { cwd: projectRoot, timeout: options.timeoutMs ?? 20_000, killSignal: 'SIGKILL', env: this.env(options.env, options.dataDir) },
        (_error, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr, ms: performance.now() - started }),
      );
      this.children.push(child);
    });
  }

  /** Starts `pen ARGS` and follows it (for signals, pipes and output it prints as it goes). */
  start(args: readonly string[], env: NodeJS.ProcessEnv = {}, options: StartOptions = {}): RunningPen {
    const started = performance.now();
    const child = spawn('node', ['bin/pen.js', ...args], { cwd: projectRoot, env: this.env(env, options.dataDir) });
    if (options.keep !== true) this.children.push(child);
    const command = `pen ${args.join(' ')}`;
    let stdout = '';
    let stderr = '';
    let output = '';
    const waiters: { pattern: RegExp; resolve: (match: string) => void }[] = [];
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      output += chunk.toString();
      for (const waiter of [...waiters]) {
        const match = waiter.pattern.exec(stdout);
        if (match === null) continue;
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(match[1] ?? match[0]);
      }
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      output += chunk.toString();
    });
    if (options.timeoutMs !== undefined) {
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
      child.once('exit', () => clearTimeout(timer));
    }
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const finished = new Promise<PenResult>((resolve) => child.once('close', (code: number | null) =>
      resolve({ code, stdout, stderr, ms: performance.now() - started })));
    /** Settles as settled, or rejects with `failure` after timeoutMs (after calling onTimeout). */
    const within = <T>(settled: Promise<T>, timeoutMs: number, failure: string, onTimeout = (): void => {}): Promise<T> => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => {
          onTimeout();
          reject(new Error(`${command} ${failure} within ${timeoutMs} ms:\n${output}`));
        }, timeoutMs);
      });
      return Promise.race([settled, late]).finally(() => clearTimeout(timer));
    };
    const waitFor = (pattern: RegExp, timeoutMs?: number): Promise<string> => {
      // What was printed already counts: two lines may come in one chunk, before the second one is waited for.
      const already = pattern.exec(stdout);
      const matched = already !== null
        ? Promise.resolve(already[1] ?? already[0])
        : new Promise<string>((resolve) => waiters.push({ pattern, resolve }));
      if (timeoutMs === undefined) return matched;
      const endedFirst = finished.then((result): never => {
        throw new Error(`${command} ended (${String(result.code)}) before printing ${String(pattern)}:\n${output}`);
      });
      return within(Promise.race([matched, endedFirst]), timeoutMs, `did not print ${String(pattern)}`);
    };
    return {
      child, pid: child.pid ?? -1, exited, finished, waitFor, output: () => output,
      exitedWithin: (timeoutMs = 20_000) =>
        within(finished.then((result) => result.code), timeoutMs, 'did not end', () => child.kill('SIGKILL')),
    };
  }

  /** Kills what the test left running; the next test gets a fresh data directory. */
  killAll(): void {
    for (const child of this.children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    this.dataHome = PenProcesses.freshDataHome();
  }
}
