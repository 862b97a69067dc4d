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
    stream.on('error', (error: Error) => this.emitClose(this.closeReason() ?? error));
    stream.on('close', () => this.emitClose(this.closeReason()));
  }

  /** Why the far end closed, when it said so before closing: that beats a bare close or reset. */
  protected closeReason(): Error | undefined {
    return undefined;
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

/** A server that refuses us sends this as a line of text, its first bytes, then closes (hardware/sim/tcp-server.ts). */
const BUSY_LINE = /^(busy:[^\r\n]*)/;
const BUSY_HEAD_BYTES = 256;

export class TcpTransport extends StreamTransport {
  /** The first bytes received, kept only to tell a refusal from a lost connection. */
  private head = Buffer.alloc(0);

  private constructor(private readonly socket: Socket, description: string) {
    super(socket, description);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      if (this.head.length < BUSY_HEAD_BYTES) this.head = Buffer.concat([this.head, chunk]);
    });
  }

  protected override closeReason(): Error | undefined {
    const line = BUSY_LINE.exec(this.head.toString('utf8'))?.[1];
    return line === undefined ? undefined : new TransportError(line);
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
      // lock: one host at a time. On Linux it is an exclusive flock(), which holds against other programs that lock
      // the port too (serialport, pyserial with exclusive=True), not against those that open it without locking.
      // hupcl: false leaves DTR raised when the port closes. An Uno-class board resets on DTR's rising edge (through a
      // capacitor to RESET): the first open after plugging in raises DTR and resets it once, and every later open finds
      // DTR already raised, so opening a running pen does not reset it. (avrdude pulses DTR itself to reach the
      // bootloader, and drops it when it is done: the next open then resets the board once more.)
      const port = new SerialPort({ path, baudRate, autoOpen: false, lock: true, hupcl: false });
      port.open((error) => {
        if (!error) return resolve(new SerialTransport(port, `serial ${path} @ ${baudRate} baud`));
        const busy = /Cannot lock port/.test(error.message) ? `busy: another program holds ${path}: ` : '';
        reject(new TransportError(`${busy}cannot open serial port ${path}: ${error.message}`));
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
