// The `pen` command as a user runs it, for tests: spawn `pen sim --listen` on a free port, run `pen …` to its end with a
// time bound, and kill whatever is left at the end of each test.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
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

/** Tracks the processes a test starts, so that afterEach can kill them all. */
export class PenProcesses {
  private readonly children: ChildProcess[] = [];

  /** Starts `pen sim` on an OS-chosen port (plus any extra arguments) and resolves once it listens. */
  startSim(extraArgs: readonly string[] = []): Promise<SimServer> {
    const child = spawn('node', ['bin/pen.js', 'sim', '--listen', 'tcp://127.0.0.1:0', ...extraArgs], { cwd: projectRoot });
    this.children.push(child);
    return new Promise((resolve, reject) => {
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const port = /listening on tcp:\/\/127\.0\.0\.1:(\d+)/.exec(output)?.[1];
        if (port !== undefined) resolve({ child, port: Number(port), address: `tcp://127.0.0.1:${port}` });
      });
      child.on('exit', (code) => reject(new Error(`pen sim exited with ${String(code)}: ${output}`)));
    });
  }

  /** Runs `pen ARGS` to its end, killed after timeoutMs (then code is null). */
  run(args: readonly string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<PenResult> {
    const started = performance.now();
    return new Promise((resolve) => {
      const child = execFile(
        'node', ['bin/pen.js', ...args],
        { cwd: projectRoot, timeout: options.timeoutMs ?? 20_000, killSignal: 'SIGKILL', env: options.env ?? process.env },
        (_error, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr, ms: performance.now() - started }),
      );
      this.children.push(child);
    });
  }

  /** Starts `pen ARGS` and returns the running process (for signals and pipes). */
  spawn(args: readonly string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
    const child = spawn('node', ['bin/pen.js', ...args], { cwd: projectRoot, env });
    this.children.push(child);
    return child;
  }

  killAll(): void {
    for (const child of this.children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}
