// Serves a simulated board's UART (the virtual pen's, the virtual rig's) on a TCP port, one client at a time, for
// tools in other processes.
import { createServer, type Server, type Socket } from 'node:net';
import type { McuUart } from './mcu-uart.ts';
import type { VirtualPen } from './virtual-pen.ts';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export function parseListenAddress(address: string): ListenAddress {
  const match = /^tcp:\/\/([^:/]+):(\d+)\/?$/.exec(address);
  const port = Number(match?.[2]);
  if (match === null || !(port >= 0 && port <= 65535)) {
    throw new Error(`"${address}" is not a listen address: use tcp://HOST:PORT, e.g. tcp://127.0.0.1:7777 (port 0–65535)`);
  }
  return { host: match[1] ?? '127.0.0.1', port };
}

export interface ServeOptions {
  /**
   * Pulse the MCU's reset when a client connects, as an Uno's DTR does when a serial port opens: the bootloader then
   * listens for a programmer (avrdude -P net:HOST:PORT) for about a second before the application starts.
   */
  readonly autoReset?: boolean;
}

/** How long a refused client may keep its socket open after the busy line before it is cut off. */
const REFUSED_LINGER_MS = 1000;

/** A simulated board to serve: its name for the busy line, a fresh port on its UART, and its reset pin. */
export interface ServedBoard {
  readonly name: string;
  openPort(): McuUart;
  resetMcu(): void;
}

/** The virtual pen's UART on TCP (servePort). */
export function servePen(
  pen: VirtualPen, address: ListenAddress, log: (line: string) => void = () => {}, options: ServeOptions = {},
): Promise<Server> {
  return servePort({ name: 'pen', openPort: () => pen.openPort(), resetMcu: () => pen.resetMcu('external') }, address, log, options);
}

/**
 * Bridges an accepted socket to a fresh UART port of the board. One host owns it at a time (DESIGN, "The link"):
 * while a client holds it, another is sent one `busy: …` line saying who holds it and is closed, so it can neither
 * inherit a running needle nor slip frames into the holder's stream.
 */
export function servePort(
  board: ServedBoard, address: ListenAddress, log: (line: string) => void = () => {}, options: ServeOptions = {},
): Promise<Server> {
  let holder: { readonly peer: string; readonly since: number } | null = null;
  const server = createServer((socket) => {
    const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.on('error', () => socket.destroy());
    if (holder !== null) {
      const line = `busy: another host holds this ${board.name} (${holder.peer}, connected ${Math.round((Date.now() - holder.since) / 1000)} s ago)`;
      log(`refused ${peer}: ${line}`);
      refuse(socket, line);
      return;
    }
    holder = { peer, since: Date.now() };
    socket.setNoDelay(true);
    if (options.autoReset === true) board.resetMcu();
    const uart = board.openPort();
    log(`client connected from ${peer}${options.autoReset === true ? ' (reset pulsed, as DTR would)' : ''}`);
    uart.onData((bytes) => socket.write(bytes));
    socket.on('data', (chunk: Buffer) => uart.write(new Uint8Array(chunk)));
    socket.on('close', () => {
      holder = null;
      void uart.close();
      log(`client ${peer} disconnected`);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => resolve(server));
  });
}

/** Sends the line and half-closes; reading on lets the close be a FIN, as unread bytes would turn it into a reset. */
function refuse(socket: Socket, line: string): void {
  socket.resume();
  socket.end(`${line}\n`);
  const linger = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS);
  linger.unref();
  socket.once('close', () => clearTimeout(linger));
}
