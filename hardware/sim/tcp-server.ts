// Serves the virtual pen's UART on a TCP port, one client at a time, for tools in other processes.
import { createServer, type Server, type Socket } from 'node:net';
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

/** Bridges each accepted socket to a fresh UART port of the pen; a second client replaces the first. */
export function servePen(pen: VirtualPen, address: ListenAddress, log: (line: string) => void = () => {}): Promise<Server> {
  let current: Socket | null = null;
  const server = createServer((socket) => {
    current?.destroy();
    current = socket;
    socket.setNoDelay(true);
    const uart = pen.openPort();
    const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    log(`client connected from ${peer}`);
    uart.onData((bytes) => socket.write(bytes));
    socket.on('data', (chunk: Buffer) => {
      if (current === socket) uart.write(new Uint8Array(chunk));
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      void uart.close();
      log(`client ${peer} disconnected`);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => resolve(server));
  });
}
