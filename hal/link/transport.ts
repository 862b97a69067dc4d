// Transports: one contract for a serial port, a TCP socket and the in-process virtual pen.
import type { EventEmitter } from 'node:events';
import { Socket } from 'node:net';
import { SerialPort } from 'serialport';
import { pen } from '../../hardware/description.ts';

export interface Transport {
  readonly description: string;
  write(bytes: Uint8Array): void;
  onData(listener: (bytes: Uint8Array) => void): void;
  /** Called once when the transport closes, with the error that closed it if any. */
  onClose(listener: (error?: Error) => void): void;
  close(): Promise<void>;
}

export class TransportError extends Error {}

/** The listener fan-out of a transport backed by a Node stream that emits 'data', 'error' and 'close'. */
abstract class StreamTransport implements Transport {
  private readonly dataListeners: ((bytes: Uint8Array) => void)[] = [];
  private readonly closeListeners: ((error?: Error) => void)[] = [];
  private closed = false;

  protected constructor(stream: EventEmitter, readonly description: string) {
    stream.on('data', (chunk: Buffer) => {
      for (const listener of this.dataListeners) listener(new Uint8Array(chunk));
    });
    stream.on('error', (error: Error) => this.emitClose(error));
    stream.on('close', () => this.emitClose());
  }

  abstract write(bytes: Uint8Array): void;
  abstract close(): Promise<void>;

  onData(listener: (bytes: Uint8Array) => void): void {
    this.dataListeners.push(listener);
  }

  onClose(listener: (error?: Error) => void): void {
    this.closeListeners.push(listener);
  }

  private emitClose(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const listener of this.closeListeners) listener(error);
  }
}

export class TcpTransport extends StreamTransport {
  private constructor(private readonly socket: Socket, description: string) {
    super(socket, description);
    socket.setNoDelay(true);
  }

  static open(host: string, port: number): Promise<TcpTransport> {
    return new Promise((resolve, reject) => {
      const socket = new Socket();
      socket.once('error', (error) => reject(new TransportError(`cannot connect to tcp://${host}:${port}: ${error.message}`)));
      socket.connect(port, host, () => {
        socket.removeAllListeners('error');
        resolve(new TcpTransport(socket, `tcp://${host}:${port}`));
      });
    });
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.once('close', () => resolve());
      this.socket.end();
      this.socket.destroySoon();
    });
  }
}

export class SerialTransport extends StreamTransport {
  private constructor(private readonly port: SerialPort, description: string) {
    super(port, description);
  }

  static open(path: string, baudRate: number = pen.board.uartBaud): Promise<SerialTransport> {
    return new Promise((resolve, reject) => {
      const port = new SerialPort({ path, baudRate, autoOpen: false });
      port.open((error) => {
        if (error) reject(new TransportError(`cannot open serial port ${path}: ${error.message}`));
        else resolve(new SerialTransport(port, `serial ${path} @ ${baudRate} baud`));
      });
    });
  }

  write(bytes: Uint8Array): void {
    this.port.write(Buffer.from(bytes));
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.port.isOpen) return resolve();
      this.port.close(() => resolve());
    });
  }
}

/** Opens `tcp://host:port` or a serial device path. */
export async function openTransport(port: string): Promise<Transport> {
  const tcp = /^tcp:\/\/([^:/]+):(\d+)\/?$/.exec(port);
  if (tcp !== null) {
    const portNumber = Number(tcp[2]);
    if (portNumber < 1 || portNumber > 65535) throw new TransportError(`TCP port ${portNumber} is outside 1–65535`);
    return TcpTransport.open(tcp[1] ?? '127.0.0.1', portNumber);
  }
  if (port.startsWith('tcp:')) throw new TransportError(`"${port}" is not of the form tcp://HOST:PORT`);
  return SerialTransport.open(port);
}
