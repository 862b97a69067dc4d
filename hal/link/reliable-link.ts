// Reliable link: sequence numbers, a retransmit window with go-back-N, reply matching and link-loss detection.
import type { Clock, Timer } from '../../hardware/clock.ts';
import { pen } from '../../hardware/description.ts';
import { FRAME_STOP, FrameKind, SEQ_WINDOW, type HostMessageName, type MessageFields } from '../../hardware/generated/protocol.ts';
import { decodeMessage, encodeMessage, DecodeError, type Message } from './codec.ts';
import { encodeFrame, FrameParser, type Frame } from './frame.ts';
import type { Transport } from './transport.ts';

export interface LinkOptions {
  readonly clock: Clock;
  readonly retransmitTimeoutMs?: number;
  readonly maxRetransmits?: number;
  /** No valid frame from the pen for this long means the link is lost. */
  readonly linkLossTimeoutMs?: number;
  /**
   * How long opening the link keeps calling the pen before giving up. A board just reset (a serial port's DTR, the
   * reset button) sits in its bootloader for about a second before the pen firmware answers. Default: the usual
   * maxRetransmits + 1 tries, retransmitTimeoutMs apart.
   */
  readonly connectWithinMs?: number;
  /** Called once when those usual tries got no answer and opening keeps calling, until connectWithinMs. */
  readonly onConnectWait?: (waitedMs: number, connectWithinMs: number) => void;
}

export class LinkLostError extends Error {}

export interface LinkStats {
  framesSent: number;
  retransmits: number;
  naksReceived: number;
  framesReceived: number;
  framesBad: number;
  bytesDropped: number;
  undecodable: number;
}

interface PendingRequest {
  readonly seq: number;
  readonly frame: Uint8Array;
  readonly name: HostMessageName;
  readonly resolve: (reply: Message) => void;
  readonly reject: (error: Error) => void;
  retransmits: number;
  timer: Timer | null;
}

const sequenceMask = 0x0f;

export class PenLink {
  readonly stats: LinkStats = {
    framesSent: 0, retransmits: 0, naksReceived: 0, framesReceived: 0, framesBad: 0, bytesDropped: 0, undecodable: 0,
  };
  private readonly clock: Clock;
  private readonly retransmitTimeoutMs: number;
  private readonly maxRetransmits: number;
  private readonly linkLossTimeoutMs: number;
  private readonly connectWithinMs: number;
  private readonly onConnectWait: ((waitedMs: number, connectWithinMs: number) => void) | undefined;
  private readonly parser = new FrameParser();
  private readonly eventListeners: ((message: Message) => void)[] = [];
  private readonly lostListeners: ((error: LinkLostError) => void)[] = [];
  private readonly inFlight: PendingRequest[] = [];
  private readonly waiting: (() => void)[] = [];
  private nextSeq = 0;
  private lost: LinkLostError | null = null;
  private closing = false;
  private silenceTimer: Timer | null = null;
  private syncAnswered: (() => void) | null = null;

  private constructor(private readonly transport: Transport, options: LinkOptions) {
    this.clock = options.clock;
    this.retransmitTimeoutMs = options.retransmitTimeoutMs ?? pen.timing.retransmitTimeoutMs;
    this.maxRetransmits = options.maxRetransmits ?? pen.timing.maxRetransmits;
    this.linkLossTimeoutMs = options.linkLossTimeoutMs ?? pen.timing.linkLossTimeoutMs;
    this.connectWithinMs = options.connectWithinMs ?? 0;
    this.onConnectWait = options.onConnectWait;
    transport.onData((bytes) => {
      this.parser.push(bytes, (frame) => this.onFrame(frame));
      this.stats.framesBad = this.parser.stats.framesBad;
      this.stats.bytesDropped = this.parser.stats.bytesDropped;
    });
    transport.onClose((error) => {
      if (!this.closing) this.fail(`${transport.description} closed${error ? `: ${error.message}` : ''}`);
    });
  }

  /** Restarts the pen's sequence numbering and starts watching for silence. */
  static async open(transport: Transport, options: LinkOptions): Promise<PenLink> {
    const link = new PenLink(transport, options);
    await link.synchronise();
    link.armSilenceTimer();
    return link;
  }

  get description(): string {
    return this.transport.description;
  }

  onEvent(listener: (message: Message) => void): void {
    this.eventListeners.push(listener);
  }

  onLost(listener: (error: LinkLostError) => void): void {
    this.lostListeners.push(listener);
  }

  /** Sends a command and resolves with the pen's reply (an `error` message is a reply too). */
  async request<K extends HostMessageName>(name: K, fields: MessageFields[K]): Promise<Message> {
    const payload = encodeMessage(name, fields);
    // The STOP byte goes out now, ahead of the window and any frame: the pen acts on it wherever it lands. The framed
    // stop that follows is the one the pen acknowledges.
    if (name === 'stop' && this.lost === null) this.transport.write(Uint8Array.of(FRAME_STOP));
    while (this.inFlight.length >= SEQ_WINDOW && this.lost === null) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    if (this.lost !== null) throw this.lost;
    const seq = this.nextSeq;
    this.nextSeq = (seq + 1) & sequenceMask;
    return new Promise<Message>((resolve, reject) => {
      const request: PendingRequest = {
        seq, name, resolve, reject, retransmits: 0, timer: null, frame: encodeFrame(FrameKind.data | seq, payload),
      };
      this.inFlight.push(request);
      this.send(request);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    this.fail('link closed by the host');
    await this.transport.close();
  }

  private send(request: PendingRequest): void {
    request.timer?.cancel();
    this.transport.write(request.frame);
    this.stats.framesSent++;
    request.timer = this.clock.after(this.retransmitTimeoutMs, () => this.onTimeout(request));
  }

  private onTimeout(request: PendingRequest): void {
    if (request.retransmits >= this.maxRetransmits) {
      this.fail(`no answer to ${request.name} from ${this.transport.description} after ${request.retransmits + 1} tries`);
      return;
    }
    // Go-back-N: the pen executes in order, so resend everything from this request on.
    this.retransmitFrom(request.seq);
  }

  private retransmitFrom(seq: number): void {
    const start = this.inFlight.findIndex((r) => r.seq === seq);
    for (const request of this.inFlight.slice(Math.max(0, start))) {
      request.retransmits++;
      this.stats.retransmits++;
      this.send(request);
    }
  }

  private onFrame(frame: Frame): void {
    this.stats.framesReceived++;
    this.armSilenceTimer();
    const kind = frame.seqByte & 0xf0;
    const number = frame.seqByte & sequenceMask;
    if (kind === FrameKind.nak) {
      this.stats.naksReceived++;
      if (this.inFlight.some((r) => r.seq === number)) this.retransmitFrom(number);
      return;
    }
    if (kind === FrameKind.reply && frame.payload.length === 0) {
      if (number === 0) this.syncAnswered?.();
      return;
    }
    let message: Message;
    try {
      message = decodeMessage(frame.payload);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      this.stats.undecodable++;
      return;
    }
    if (kind === FrameKind.event) {
      for (const listener of this.eventListeners) listener(message);
    } else if (kind === FrameKind.reply) {
      const answered = (number - 1) & sequenceMask;
      const index = this.inFlight.findIndex((r) => r.seq === answered);
      const request = this.inFlight[index];
      if (request === undefined) return;  // a replayed reply we already have
      this.inFlight.splice(index, 1);
      request.timer?.cancel();
      request.resolve(message);
      this.waiting.shift()?.();
    }
  }

  private async synchronise(): Promise<void> {
    const frame = encodeFrame(FrameKind.sync, new Uint8Array(0));
    const started = this.clock.nowMs();
    let attempt = 0;
    // The usual tries, then on (a board in its bootloader) while connectWithinMs lasts.
    for (; attempt <= this.maxRetransmits || this.clock.nowMs() - started < this.connectWithinMs; attempt++) {
      if (attempt === this.maxRetransmits + 1) this.onConnectWait?.(this.clock.nowMs() - started, this.connectWithinMs);
      const answered = await new Promise<boolean>((resolve) => {
        const timer = this.clock.after(this.retransmitTimeoutMs, () => resolve(false));
        this.syncAnswered = () => {
          timer.cancel();
          resolve(true);
        };
        this.transport.write(frame);
        this.stats.framesSent++;
      });
      if (answered) {
        this.syncAnswered = null;
        return;
      }
      if (this.lost !== null) throw this.lost;
    }
    const waited = Math.round(this.clock.nowMs() - started);
    const error = new LinkLostError(
      `no answer from the pen on ${this.transport.description} after ${attempt} tries in ${waited} ms: is it powered and running the pen firmware?`,
    );
    this.fail(error.message);
    throw error;
  }

  private armSilenceTimer(): void {
    if (this.lost !== null || this.syncAnswered !== null) return;
    this.silenceTimer?.cancel();
    const armedAtMs = this.clock.nowMs();
    this.silenceTimer = this.clock.after(this.linkLossTimeoutMs, () => {
      // Fired late: this process was stalled (a slow disk write, a pause), and bytes the pen sent meanwhile are still
      // waiting to be read behind this timer. That is the host's silence, not the pen's: watch a full period again.
      const lateMs = this.clock.nowMs() - armedAtMs - this.linkLossTimeoutMs;
      if (lateMs > this.linkLossTimeoutMs / 2) {
        this.armSilenceTimer();
        return;
      }
      this.fail(`no frame from the pen on ${this.transport.description} for ${this.linkLossTimeoutMs} ms`);
    });
  }

  private fail(reason: string): void {
    if (this.lost !== null) return;
    this.lost = new LinkLostError(`link lost: ${reason}`);
    this.silenceTimer?.cancel();
    for (const request of this.inFlight.splice(0)) {
      request.timer?.cancel();
      request.reject(this.lost);
    }
    for (const wake of this.waiting.splice(0)) wake();
    if (!this.closing) for (const listener of this.lostListeners) listener(this.lost);
  }
}
