// avrdude, the programmer `pen flash` drives: its command line for the board's bootloader (Optiboot speaks STK500 v1 at
// 115200 baud: avrdude's `arduino` programmer), its progress read from stderr, its failures turned into errors a person
// can act on, and its run bounded in time and ended on Ctrl-C.
import { spawn } from 'node:child_process';
import type { Clock, Timer } from '../../hardware/clock.ts';
import { onInterrupt, describeCause } from './interrupt.ts';

export type FlashPhase = 'writing' | 'verifying';

export interface FlashProgress {
  readonly phase: FlashPhase;
  /** 0–100, in steps of 10. */
  readonly percent: number;
}

export type AvrdudeFailureKind =
  'missing' | 'cannot-open' | 'no-bootloader' | 'wrong-signature' | 'verify-failed' | 'timeout' | 'interrupted' | 'failed';

export class AvrdudeError extends Error {
  constructor(readonly kind: AvrdudeFailureKind, message: string, readonly avrdudeLines: readonly string[] = []) {
    super(message);
  }
}

/** avrdude's -P for a pen port: a serial path as it is, tcp://HOST:PORT as net:HOST:PORT. */
export function avrdudePort(port: string): string {
  const tcp = /^tcp:\/\/([^/]+?)\/?$/i.exec(port);
  return tcp?.[1] === undefined ? port : `net:${tcp[1]}`;
}

/**
 * Writes hexPath into the flash through the bootloader, then reads it back to verify (avrdude's default). -D: no chip
 * erase, which Optiboot does not do; it erases each page before writing it, as the Arduino IDE relies on.
 */
export function avrdudeArguments(port: string, hexPath: string): string[] {
  return ['-c', 'arduino', '-p', 'm328p', '-b', '115200', '-P', avrdudePort(port), '-D', '-U', `flash:w:${hexPath}:i`];
}

/** Noise avrdude prints on a network port (it asks for the modem lines, which a socket has not got). */
const socketNoise = /ioctl\("TIOCM[GS]ET"\)/;

/**
 * Reads avrdude's stderr as it comes: complete lines, whether the bootloader answered (device initialized), and the
 * progress bars ("Writing | ####… | 100% 1.63s", 50 marks for the whole) as percentages.
 */
export class AvrdudeOutput {
  readonly lines: string[] = [];
  readonly seconds: Partial<Record<FlashPhase, number>> = {};
  private line = '';
  private bar: { phase: FlashPhase; marks: number; tail: string } | null = null;

  constructor(private readonly onProgress: (progress: FlashProgress) => void = () => {}) {}

  /** The bootloader answered and the chip's signature was read. */
  get synced(): boolean {
    return this.lines.some((line) => /AVR device initialized|device signature = 0x/i.test(line));
  }

  push(text: string): void {
    for (const char of text) {
      if (this.bar !== null) this.barChar(this.bar, char);
      else this.lineChar(char);
    }
  }

  private lineChar(char: string): void {
    if (char === '\n' || char === '\r') {
      const line = this.line.trimEnd();
      if (line !== '' && !socketNoise.test(line)) this.lines.push(line);
      this.line = '';
      return;
    }
    this.line += char;
    const start = /^(Writing|Reading) \| $/.exec(this.line);
    if (start === null) return;
    this.bar = { phase: start[1] === 'Writing' ? 'writing' : 'verifying', marks: 0, tail: '' };
    this.line = '';
    this.onProgress({ phase: this.bar.phase, percent: 0 });
  }

  private barChar(bar: { phase: FlashPhase; marks: number; tail: string }, char: string): void {
    if (char === '#' && bar.tail === '') {
      bar.marks++;
      if (bar.marks % 5 === 0) this.onProgress({ phase: bar.phase, percent: bar.marks * 2 });
      return;
    }
    if (char !== '\n') {
      bar.tail += char;
      return;
    }
    const done = /(\d+)% (\d+(?:\.\d+)?)s/.exec(bar.tail);
    if (done?.[2] !== undefined) this.seconds[bar.phase] = Number(done[2]);
    this.lines.push(`${bar.phase === 'writing' ? 'Writing' : 'Reading'} | ${'#'.repeat(bar.marks)}${bar.tail}`);
    this.bar = null;
  }

  /** The lines avrdude marked as errors, or its last lines when it marked none. */
  private errorLines(): string[] {
    const errors = this.lines.filter((line) => /error|mismatch|not in sync|not responding/i.test(line));
    return (errors.length > 0 ? errors : this.lines).slice(-3);
  }

  /** What went wrong, as an error that says what to do; null when avrdude succeeded. gaveUpAfterMs: it was stopped then. */
  failure(exitCode: number | null, port: string, gaveUpAfterMs?: number): AvrdudeError | null {
    if (exitCode === 0) return null;
    const all = this.lines.join('\n');
    const said = this.errorLines().map((line) => line.replace(/^avrdude( OS)? (error|warning): /, '')).join('; ');
    const lines = [...this.lines];
    if (!this.synced) {
      if (/cannot connect|can't open|cannot open|no such file|permission denied|connection refused|not found/i.test(all)) {
        const tcp = /^tcp:/i.test(port);
        return new AvrdudeError('cannot-open', `avrdude could not open ${port} (${said}): ` +
          (tcp ? 'is `pen sim --auto-reset` running there?' : 'is the board plugged in, and is this its port (`pen ports`)? Is another program using it?'), lines);
      }
      const attempts = this.lines.filter((line) => /not in sync|not responding/.test(line)).length;
      const heard = /resp=0x7e/i.test(all)
        ? 'the pen firmware answered instead (resp=0x7e is its frame end): it is running, not waiting in its bootloader'
        : /resp=0x[1-9a-f]/i.test(all) ? `something answered, but not in STK500 (${said})`
        : /^tcp:/i.test(port) ? `nothing answered (a virtual pen that another host holds refuses the connection: \`pen info --port ${port}\` then says busy)`
        : 'nothing answered';
      const after = attempts > 0 ? `avrdude's ${attempts} tries` : gaveUpAfterMs === undefined ? 'avrdude gave up' : `${(gaveUpAfterMs / 1000).toFixed(0)} s`;
      return new AvrdudeError('no-bootloader', `no answer from a bootloader on ${port} after ${after}: ${heard}. ` +
        (/^tcp:/i.test(port)
          ? 'A virtual pen only listens for a programmer just after a reset: start it with `pen sim --auto-reset`, which pulses the reset on each connect as an Uno\'s DTR does.'
          : 'Reset the board: its DTR auto-reset should do it as avrdude opens the port; if it has none, press its reset button as avrdude starts. ' +
            'A board with no Optiboot needs it burnt first with an ISP programmer.'), lines);
    }
    const expected = /expected signature for (\S+) is ([0-9A-F]{2} [0-9A-F]{2} [0-9A-F]{2})/i.exec(all);
    if (expected !== null || /invalid device signature/i.test(all)) {
      const found = /device signature = 0x([0-9a-f]+)/i.exec(all)?.[1] ?? 'unreadable';
      return new AvrdudeError('wrong-signature', `the chip on ${port} answered with signature 0x${found}, not the ATmega328P's 0x1e950f: ` +
        'this is not a pen board (or its MCU is another part); nothing was written', lines);
    }
    if (/verification (mismatch|error)/i.test(all)) {
      const first = /device 0x([0-9a-f]+) != input 0x([0-9a-f]+) at addr 0x([0-9a-f]+)/i.exec(all);
      const where = first === null ? said : `first at 0x${first[3] ?? '?'}: the board holds 0x${first[1] ?? '?'}, the image 0x${first[2] ?? '?'}`;
      return new AvrdudeError('verify-failed', `the flash read back from ${port} differs from the image (${where}): the board may hold a damaged ` +
        'application. Flash it again; if it fails again, the flash or the bootloader may be damaged', lines);
    }
    return new AvrdudeError('failed', `avrdude failed (exit ${String(exitCode)}): ${said}`, lines);
  }
}

export interface AvrdudeRunOptions {
  readonly clock: Clock;
  /** The pen's port as the user gave it, for messages. */
  readonly port: string;
  /** Given up (no bootloader) when the bootloader has not answered by then. */
  readonly syncWithinMs: number;
  /** The whole run, writing and verifying, is ended after this long. */
  readonly timeoutMs: number;
  readonly onProgress?: (progress: FlashProgress) => void;
  /** The executable; `avrdude` on the PATH by default. */
  readonly command?: string;
}

export interface AvrdudeRun {
  readonly writeSeconds: number | null;
  readonly verifySeconds: number | null;
  readonly ms: number;
  readonly lines: readonly string[];
}

/** Runs avrdude with args; rejects with an AvrdudeError. Never outlives its bounds, and Ctrl-C (SIGTERM, SIGHUP) ends it. */
export function runAvrdude(args: readonly string[], options: AvrdudeRunOptions): Promise<AvrdudeRun> {
  const { clock, port } = options;
  const started = clock.nowMs();
  const output = new AvrdudeOutput(options.onProgress);
  return new Promise((resolve, reject) => {
    const child = spawn(options.command ?? 'avrdude', [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let ended: AvrdudeError | null = null;
    const timers: Timer[] = [];
    let unsubscribe = (): void => {};
    const stop = (reason: AvrdudeError): void => {
      if (ended !== null || child.exitCode !== null) return;
      ended = reason;
      child.kill('SIGTERM');
      timers.push(clock.after(1000, () => child.kill('SIGKILL')));
    };
    const finish = (): void => {
      for (const timer of timers) timer.cancel();
      unsubscribe();
    };
    child.stdout.setEncoding('utf8').on('data', (text: string) => output.push(text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => output.push(text));
    timers.push(clock.after(options.syncWithinMs, () => {
      if (output.synced) return;
      stop(output.failure(1, port, options.syncWithinMs) ?? new AvrdudeError('no-bootloader', `no answer from a bootloader on ${port}`));
    }));
    timers.push(clock.after(options.timeoutMs, () => stop(new AvrdudeError('timeout',
      `avrdude did not finish within ${(options.timeoutMs / 1000).toFixed(0)} s and was stopped: the board may hold a partial application; ` +
      'flash it again (a longer --timeout for a slow link)', output.lines))));
    // A reader of stdout that went away (`pen flash | head -n 1`) does not cut a flash short; a signal does.
    unsubscribe = onInterrupt((cause) => {
      if (cause === 'stdout closed') return;
      stop(new AvrdudeError('interrupted', `${describeCause(cause)}: avrdude stopped; the board may hold a partial application: flash it again before using it`,
        output.lines));
    });
    child.once('error', (error: NodeJS.ErrnoException) => {
      finish();
      reject(error.code === 'ENOENT'
        ? new AvrdudeError('missing', 'avrdude is not installed (it writes the firmware through the bootloader): run scripts/setup.sh, ' +
          'or on Debian: sudo apt-get install avrdude')
        : new AvrdudeError('failed', `cannot run avrdude: ${error.message}`));
    });
    child.once('close', (code) => {
      finish();
      output.push('\n');
      const failure = ended ?? output.failure(code, port);
      if (failure !== null) return reject(failure);
      resolve({ writeSeconds: output.seconds.writing ?? null, verifySeconds: output.seconds.verifying ?? null, ms: Math.round(clock.nowMs() - started), lines: output.lines });
    });
  });
}
