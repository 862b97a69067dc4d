// One owner of a pen: the process that holds a pen's link listens on a Unix socket named after the pen (in the data
// directory), so that others can see who holds it, watch its telemetry read-only, and relay STOP through it, instead
// of opening a second link. Binding the socket is the claim: a second process finds it in use and is told who holds
// the pen; a socket left by an owner that died (kill -9) refuses connections, and is removed by the next claimant.
//
// The protocol is JSON lines. The owner greets every client with {type: 'owner', pid, command, since, target};
// a client may then send {type: 'watch'} (telemetry lines follow: {type: 'telemetry', at, telemetry}) or
// {type: 'stop', from} (the owner sends STOP on its link and answers {type: 'stopped', telemetry} or {type: 'error', message}).
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Telemetry } from '../../hal/device.ts';
import { dataDirectory } from './eeprom-file.ts';
import { BusyError } from './format.ts';

export interface OwnerInfo {
  readonly pid: number;
  /** The command line of the owning process, e.g. `pen run --port tcp://127.0.0.1:7777 --duration 30`. */
  readonly command: string;
  /** When it took the pen (ISO 8601). */
  readonly since: string;
  /** The pen, as the owner names it. */
  readonly target: string;
}

export type OwnerMessage =
  | ({ readonly type: 'owner' } & OwnerInfo)
  | { readonly type: 'telemetry'; readonly at: string; readonly telemetry: Telemetry }
  | { readonly type: 'stopped'; readonly telemetry: Telemetry | null }
  | { readonly type: 'error'; readonly message: string };

export type ClientMessage = { readonly type: 'watch' } | { readonly type: 'stop'; readonly from: string };

/** Sends STOP on the owner's link; resolves with the telemetry after it. */
export type StopHandler = (from: string) => Promise<Telemetry | null>;

/** How long a client waits for the owner's greeting before calling it unresponsive. */
const greetingTimeoutMs = 2000;
/** A client that reads too slowly is skipped rather than buffered without bound. */
const maxBufferedBytes = 256 * 1024;
const maxLineBytes = 64 * 1024;
/** Unix socket paths are limited to 108 bytes on Linux, with the terminating NUL. */
const maxSocketPathBytes = 100;

/** This process's command line as others see it: `pen run --port …`. */
export function commandLine(): string {
  return ['pen', ...process.argv.slice(2)].join(' ');
}

/** The socket for a pen, from its key (a port, or the in-process pen's EEPROM file): a hash, so any key fits. */
export function ownerSocketPath(key: string): string {
  const name = `${createHash('sha256').update(key).digest('hex').slice(0, 24)}.sock`;
  const inData = join(dataDirectory(), 'owners', name);
  if (Buffer.byteLength(inData) <= maxSocketPathBytes) return inData;
  return join(tmpdir(), `pen-owners-${String(process.getuid?.() ?? 'user')}`, name);
}

export function busyMessage(owner: OwnerInfo): string {
  return `busy: ${owner.target} is held by pid ${owner.pid} (${owner.command}) since ${owner.since}; ` +
    '`pen status` watches it read-only, `pen stop` stops it through that process';
}

function send(socket: Socket, message: OwnerMessage | ClientMessage): void {
  if (socket.destroyed || socket.writableLength > maxBufferedBytes) return;
  socket.write(`${JSON.stringify(message)}\n`);
}

/** Calls onLine for each complete line; a line longer than maxLineBytes ends the connection. */
function readLines(socket: Socket, onLine: (line: string) => void): void {
  let buffered = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    let newline = buffered.indexOf('\n');
    while (newline >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (line.trim() !== '') onLine(line);
      newline = buffered.indexOf('\n');
    }
    if (buffered.length > maxLineBytes) socket.destroy();
  });
}

function parse(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return null;
  }
}

/** A client's request as the owner accepts it: anything else is answered with an error. */
function asClientMessage(value: unknown): ClientMessage | null {
  if (typeof value !== 'object' || value === null) return null;
  const { type, from } = value as Record<string, unknown>;
  if (type === 'watch') return { type };
  if (type === 'stop') return { type, from: typeof from === 'string' ? from.slice(0, 500) : 'an unnamed process' };
  return null;
}

/** The owner's side: holds the socket while this process holds the pen's link. */
export class PenOwnership {
  private readonly watchers = new Set<Socket>();
  private readonly clients = new Set<Socket>();
  private latest: Telemetry | null = null;
  private stopHandler: StopHandler | null = null;
  private readonly removeAtExit = (): void => this.removeSocketFile();
  private closed = false;

  private constructor(private readonly server: Server, readonly path: string, readonly info: OwnerInfo, private readonly inode: number) {
    server.on('connection', (socket) => this.accept(socket));
    server.unref();
    process.on('exit', this.removeAtExit);
  }

  /**
   * Claims the pen named key for this process, or throws a BusyError naming the process that holds it. A socket
   * whose owner died is removed and the claim made again.
   */
  static async claim(key: string, owner: { readonly command: string; readonly target: string }): Promise<PenOwnership> {
    const path = ownerSocketPath(key);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const info: OwnerInfo = { pid: process.pid, command: owner.command, since: new Date().toISOString(), target: owner.target };
    for (let attempt = 0; attempt < 5; attempt++) {
      const server = createServer();
      const error = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
        server.once('error', resolve);
        server.listen(path, () => resolve(null));
      });
      if (error === null) return new PenOwnership(server, path, info, lstatSync(path).ino);
      if (error.code !== 'EADDRINUSE') throw error;
      const found = await probe(path);
      if (found.kind === 'alive') {
        found.socket.destroy();
        throw new BusyError(busyMessage(found.owner));
      }
      if (found.kind === 'silent') {
        throw new BusyError(`busy: a process holds ${owner.target}: its status socket ${path} accepts connections but does not answer`);
      }
      if (found.kind === 'stale') removeStale(path, found.inode);
    }
    throw new Error(`could not claim ${owner.target}: its status socket ${path} kept changing hands`);
  }

  /** Follows a device: its telemetry goes to the watchers. */
  publish(telemetry: Telemetry): void {
    this.latest = telemetry;
    if (this.watchers.size === 0) return;
    const message: OwnerMessage = { type: 'telemetry', at: new Date().toISOString(), telemetry };
    for (const socket of this.watchers) send(socket, message);
  }

  /** What a relayed STOP does: the owner's own way of stopping (a running session ends with the reason). */
  onStop(handler: StopHandler): void {
    this.stopHandler = handler;
  }

  /**
   * Releases the pen: the socket file goes at once (closing the listening socket unlinks it) and every client sees
   * the end. Nothing here waits on the event loop: the server and its clients are unref'd, and must not hold a
   * command open, nor be waited for by a process about to end.
   */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    process.off('exit', this.removeAtExit);
    for (const socket of this.clients) socket.destroy();
    this.server.close();
    this.removeSocketFile();
    return Promise.resolve();
  }

  private accept(socket: Socket): void {
    socket.unref();
    socket.on('error', () => socket.destroy());
    this.clients.add(socket);
    socket.on('close', () => {
      this.watchers.delete(socket);
      this.clients.delete(socket);
    });
    send(socket, { type: 'owner', ...this.info });
    readLines(socket, (line) => this.onRequest(socket, asClientMessage(parse(line))));
  }

  private onRequest(socket: Socket, request: ClientMessage | null): void {
    if (request?.type === 'watch') {
      this.watchers.add(socket);
      if (this.latest !== null) send(socket, { type: 'telemetry', at: new Date().toISOString(), telemetry: this.latest });
    } else if (request?.type === 'stop') {
      const handler = this.stopHandler;
      if (handler === null) {
        send(socket, { type: 'error', message: `pid ${this.info.pid} cannot send STOP yet: its link is still opening` });
        return;
      }
      handler(request.from).then(
        (telemetry) => send(socket, { type: 'stopped', telemetry }),
        (error: unknown) => send(socket, { type: 'error', message: error instanceof Error ? error.message : String(error) }),
      );
    } else {
      send(socket, { type: 'error', message: 'unknown request: send {"type":"watch"} or {"type":"stop","from":"…"}' });
    }
  }

  /** Removes the socket file if it is still ours (not one a later owner bound after ours was taken for stale). */
  private removeSocketFile(): void {
    try {
      if (lstatSync(this.path).ino === this.inode) unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}

type Probe =
  | { readonly kind: 'alive'; readonly owner: OwnerInfo; readonly socket: Socket; readonly next: () => Promise<OwnerMessage | null> }
  | { readonly kind: 'silent' }
  | { readonly kind: 'stale'; readonly inode: number }
  | { readonly kind: 'none' };

/**
 * Connects to the socket at path: the owner's greeting (and the open connection, for more), 'silent' when it connects
 * but says nothing, 'stale' when nothing listens (the owner died), 'none' when there is no socket.
 */
async function probe(path: string): Promise<Probe> {
  let inode: number;
  try {
    const stat = lstatSync(path);
    if (!stat.isSocket()) throw new Error(`${path} is not a socket: remove it`);
    inode = stat.ino;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
    throw error;
  }
  const socket = createConnection(path);
  const messages: (OwnerMessage | null)[] = [];
  const waiting: ((message: OwnerMessage | null) => void)[] = [];
  const deliver = (message: OwnerMessage | null): void => {
    const waiter = waiting.shift();
    if (waiter === undefined) messages.push(message);
    else waiter(message);
  };
  const next = (): Promise<OwnerMessage | null> => {
    if (messages.length > 0) return Promise.resolve(messages.shift() ?? null);
    return new Promise((resolve) => waiting.push(resolve));
  };
  const connected = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
    socket.once('connect', () => resolve(null));
    socket.once('error', resolve);
  });
  if (connected !== null) {
    socket.destroy();
    if (connected.code === 'ECONNREFUSED') return { kind: 'stale', inode };
    if (connected.code === 'ENOENT') return { kind: 'none' };
    throw connected;
  }
  socket.on('error', () => {});
  socket.on('close', () => {
    deliver(null);
    for (const waiter of waiting.splice(0)) waiter(null);
  });
  readLines(socket, (line) => deliver(parse(line) as OwnerMessage | null));
  const greeting = await Promise.race([next(), new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), greetingTimeoutMs).unref())]);
  if (greeting === 'timeout' || greeting?.type !== 'owner') {
    socket.destroy();
    return greeting === null ? { kind: 'stale', inode } : { kind: 'silent' };
  }
  const owner: OwnerInfo = { pid: greeting.pid, command: greeting.command, since: greeting.since, target: greeting.target };
  return { kind: 'alive', owner, socket, next };
}

function removeStale(path: string, inode: number): void {
  try {
    if (lstatSync(path).ino === inode) unlinkSync(path);
  } catch {
    // someone else removed it first
  }
}

/** A connection to the process that holds a pen, for watching or relaying STOP. */
export interface OwnerConnection {
  readonly owner: OwnerInfo;
  send(message: ClientMessage): void;
  /** The owner's next message; null once the connection ends. */
  next(): Promise<OwnerMessage | null>;
  close(): void;
}

/**
 * Finds the process holding the pen named key and connects to it, or returns null when none does (removing a
 * socket its owner left behind when it died). Throws a BusyError when one holds it but does not answer.
 */
export async function connectToOwner(key: string, target: string): Promise<OwnerConnection | null> {
  const path = ownerSocketPath(key);
  for (let attempt = 0; attempt < 3; attempt++) {
    const found = await probe(path);
    if (found.kind === 'none') return null;
    if (found.kind === 'stale') {
      removeStale(path, found.inode);
      continue;
    }
    if (found.kind === 'silent') throw new BusyError(`busy: a process holds ${target}: its status socket ${path} accepts connections but does not answer`);
    const { socket } = found;
    return {
      owner: found.owner,
      send: (message) => send(socket, message),
      next: found.next,
      close: () => socket.destroy(),
    };
  }
  return null;
}

/** Waits for the owner's next message of one of the given types (others skipped), or null at the end or the time limit. */
export async function nextOfType<K extends OwnerMessage['type']>(
  connection: OwnerConnection, types: readonly K[], timeoutMs: number,
): Promise<Extract<OwnerMessage, { type: K }> | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) return null;
    let timer: NodeJS.Timeout | undefined;
    const message = await Promise.race([
      connection.next(),
      new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), remaining))),
    ]);
    clearTimeout(timer);
    if (message === 'timeout' || message === null) return null;
    if ((types as readonly string[]).includes(message.type)) return message as Extract<OwnerMessage, { type: K }>;
  }
}
