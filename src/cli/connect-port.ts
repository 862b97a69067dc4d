// Connecting to a pen on a port (serial path or tcp://HOST:PORT): the address checked first, and the transport closed
// whenever connecting fails, so that a peer that never answers as a pen cannot keep the process alive.
import { RealClock } from '../../hardware/clock.ts';
import { PenDevice } from '../../hal/device.ts';
import { LinkLostError } from '../../hal/link/reliable-link.ts';
import { openTransport } from '../../hal/link/transport.ts';
import { UsageError } from './format.ts';

const tcpAddress = /^tcp:\/\/([^:/\s]+):(\d{1,5})\/?$/;
/**
 * How long connecting keeps calling a pen that does not answer. A board just reset (the first open of its serial port
 * raises DTR; `pen sim --auto-reset` on every connect) sits in Optiboot for up to a second, and leaves it sooner when
 * it hears bytes that are not for it (its 16 ms watchdog), as the host's calls are.
 */
export const connectWithinMs = 2000;
const allowed = 'use a serial device path (e.g. /dev/ttyUSB0) or tcp://HOST:PORT (e.g. tcp://127.0.0.1:7777, port 1–65535)';

/**
 * Throws a usage error (exit 2) saying what is allowed when port cannot name a pen: checked before anything is
 * opened, so a mistyped address never reads as a link failure (exit 3).
 */
export function checkPortSyntax(port: string): void {
  if (port.trim() === '') throw new UsageError(`the port is empty: ${allowed}`);
  if (!/^tcp:/i.test(port)) return;
  const match = tcpAddress.exec(port);
  const number = Number(match?.[2]);
  if (match === null || !(number >= 1 && number <= 65535)) throw new UsageError(`"${port}" is not a pen address: ${allowed}`);
}

/**
 * When what answered spoke text (a web server, a shell), the link error says what it sent: likely the wrong port. When
 * nothing at all came back, it names the likely cause on a board that is there: a bootloader and no pen firmware.
 */
function withWhatItSent(error: unknown, head: string, port: string): unknown {
  if (!(error instanceof LinkLostError) || error.message.includes('busy:')) return error;
  // Optiboot answers a stray byte 0x20 (its end-of-command) with STK500's INSYNC/OK, or goes quiet: either way a bootloader.
  const stk500Replies = new Set([0x10, 0x14, 0x15]);  // STK_OK, STK_INSYNC, STK_NOSYNC
  const bootloaderBytesOnly = Buffer.from(head, 'latin1').every((byte) => stk500Replies.has(byte));
  if (bootloaderBytesOnly && /no answer from the pen/.test(error.message)) {
    const heard = head.length === 0 ? 'Nothing came back at all.' : 'Only STK500 replies came back (a bootloader\'s).';
    return new LinkLostError(`${error.message} ${heard} A board with no application (only its bootloader, as a new ` +
      `board comes) is silent like this: flash the pen firmware with \`pen flash --port ${port}\`. Otherwise check that the board is ` +
      'powered and that this is its port.');
  }
  const text = /^[\x20-\x7e]{4,}/.exec(head)?.[0];
  if (text === undefined) return error;
  return new LinkLostError(`${error.message}; it sent "${text.slice(0, 60)}", which is not the pen's protocol: is this the pen's port?`);
}

/** Opens the transport and the device on it; if connecting fails, the transport is closed before the error is thrown. */
export async function connectPort(port: string, heartbeat: boolean): Promise<PenDevice> {
  checkPortSyntax(port);
  const transport = await openTransport(port);
  let head = '';  // the first bytes that came back, to say what answered if it was not a pen
  transport.onData((bytes) => { if (head.length < 80) head += Buffer.from(bytes).toString('latin1'); });
  const onConnectWait = (waitedMs: number, withinMs: number): void => {
    process.stderr.write(`no answer from ${port} after ${Math.round(waitedMs)} ms: waiting up to ${(withinMs / 1000).toFixed(0)} s for the pen firmware ` +
      '(a board just reset is in its bootloader for about a second) ...\n');
  };
  try {
    return await PenDevice.connect(transport, { clock: new RealClock(), heartbeat, connectWithinMs, onConnectWait });
  } catch (error) {
    // Left open, a silent peer (a TCP server that never answers, a pty) would keep the process alive for ever.
    await transport.close().catch(() => {});
    throw withWhatItSent(error, head, port);
  }
}
