// A raw client for tests: speaks frames to the virtual pen without the HAL, to send what a buggy or hostile host would.
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { encodeFrame, FrameParser, type Frame } from '../../hal/link/frame.ts';
import { decodeMessage, encodeMessage, type Message } from '../../hal/link/codec.ts';
import { FrameKind, PROTOCOL_VERSION, type HostMessageName, type MessageFields } from '../../hardware/generated/protocol.ts';

export class RawClient {
  readonly frames: Frame[] = [];
  readonly parser = new FrameParser();
  private readonly port;

  constructor(readonly pen: VirtualPen) {
    this.port = pen.openPort();
    this.port.onData((bytes) => this.parser.push(bytes, (frame) => this.frames.push(frame)));
  }

  writeBytes(bytes: Uint8Array): void {
    this.port.write(bytes);
  }

  sendFrame(seqByte: number, payload: Uint8Array): void {
    this.port.write(encodeFrame(seqByte, payload));
  }

  send<K extends HostMessageName>(seq: number, name: K, fields: MessageFields[K]): void {
    this.sendFrame(FrameKind.data | seq, encodeMessage(name, fields));
  }

  /** Frames received since `from` (an index into frames) that are replies or naks, not telemetry. */
  answers(from = 0): Frame[] {
    return this.frames.slice(from).filter((f) => (f.seqByte & 0xf0) !== FrameKind.event);
  }

  /** Waits (simulated time) until an answer arrives after index `from`, or throws after timeoutMs. */
  async nextAnswer(from: number, timeoutMs = 50): Promise<Frame> {
    const deadline = this.pen.clock.nowMs() + timeoutMs;
    for (;;) {
      const answer = this.answers(from)[0];
      if (answer !== undefined) return answer;
      if (this.pen.clock.nowMs() > deadline) throw new Error(`no answer from the pen within ${timeoutMs} ms`);
      await this.pen.clock.sleep(1);
    }
  }

  /** Sends a command with the given sequence number and returns the decoded reply (waiting timeoutMs at most). */
  async request<K extends HostMessageName>(seq: number, name: K, fields: MessageFields[K], timeoutMs = 50): Promise<{ frame: Frame; message: Message }> {
    const from = this.frames.length;
    this.send(seq, name, fields);
    const frame = await this.nextAnswer(from, timeoutMs);
    return { frame, message: decodeMessage(frame.payload) };
  }

  /** Restarts sequence numbering (sync) and identifies with this host's protocol version. */
  async handshake(): Promise<void> {
    await this.sync();
    await this.request(0, 'identify', { hostProtocolVersion: PROTOCOL_VERSION });
  }

  /**
   * Restarts sequence numbering: a sync frame, sent again until the pen answers it, as the HAL's link does: bytes that
   * reach a pen still starting up (its UART not yet on) are lost.
   */
  async sync(): Promise<void> {
    const isSyncReply = (frame: Frame): boolean => frame.seqByte === FrameKind.reply && frame.payload.length === 0;
    for (let attempt = 1; attempt <= 5; attempt++) {
      const from = this.frames.length;
      this.sendFrame(FrameKind.sync, new Uint8Array(0));
      // Late replies to a host that went away before may come first: only the sync's empty reply counts.
      const deadline = this.pen.clock.nowMs() + 20;
      while (!this.answers(from).some(isSyncReply) && this.pen.clock.nowMs() <= deadline) await this.pen.clock.sleep(1);
      if (this.answers(from).some(isSyncReply)) return;
    }
    throw new Error('sync was not answered within 5 tries');
  }
}
