// Connecting to a pen on a port (serial path or tcp://HOST:PORT): the address checked first, and the transport closed
// whenever connecting fails, so that a peer that never answers as a pen cannot keep the process alive.
import { RealClock } from '../../hardware/clock.ts';
import { PenDevice } from '../../hal/device.ts';
import { LinkLostError } from '../../hal/link/reliable-link.ts';
import { openTransport } from '../../hal/link/transport.ts';
import { UsageError } from './format.ts';

const tcpAddress = /^tcp:\/\/([^:/\s]+):(\d{1,5})\/?$/;
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

/** When what answered spoke text (a web server, a shell), the link error says what it sent: likely the wrong port. */
function withWhatItSent(error: unknown, head: string): unknown {
  if (!(error instanceof LinkLostError) || error.message.includes('busy:')) return error;
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
  try {
    return await PenDevice.connect(transport, { clock: new RealClock(), heartbeat });
  } catch (error) {
    // Left open, a silent peer (a TCP server that never answers, a pty) would keep the process alive for ever.
    await transport.close().catch(() => {});
    throw withWhatItSent(error, head);
  }
}
