// Framing: CRC16-CCITT, the byte-stuffed frame encoder and a streaming parser with the firmware's rules.
import {
  FRAME_ESCAPE, FRAME_ESCAPE_XOR, FRAME_MAX_BYTES, FRAME_MIN_BYTES, FRAME_STOP, FRAME_SYNC,
} from '../../hardware/generated/protocol.ts';

/** CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection; 0x29B1 for "123456789". */
export function crc16Ccitt(bytes: Uint8Array): number {
  let crc = 0xffff;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

export interface Frame {
  readonly seqByte: number;
  readonly payload: Uint8Array;
}

const needsEscape = (byte: number): boolean => byte === FRAME_SYNC || byte === FRAME_ESCAPE || byte === FRAME_STOP;

/** The frame as it goes on the wire: `sync | len seq payload crc (escaped) | sync`. */
export function encodeFrame(seqByte: number, payload: Uint8Array): Uint8Array {
  const length = payload.length + FRAME_MIN_BYTES;
  if (length > FRAME_MAX_BYTES) {
    throw new RangeError(`payload of ${payload.length} bytes exceeds the ${FRAME_MAX_BYTES - FRAME_MIN_BYTES}-byte maximum`);
  }
  const frame = new Uint8Array(length);
  frame[0] = length;
  frame[1] = seqByte;
  frame.set(payload, 2);
  const crc = crc16Ccitt(frame.subarray(0, length - 2));
  frame[length - 2] = crc >> 8;
  frame[length - 1] = crc & 0xff;
  const wire = [FRAME_SYNC];
  for (const byte of frame) {
    if (needsEscape(byte)) wire.push(FRAME_ESCAPE, byte ^ FRAME_ESCAPE_XOR);
    else wire.push(byte);
  }
  wire.push(FRAME_SYNC);
  return Uint8Array.from(wire);
}

export interface ParserStats {
  framesGood: number;
  framesBad: number;
  bytesDropped: number;
}

/** Same rules as the firmware's link_feed: a frame ends at a sync byte; bad length or CRC rejects it. */
export class FrameParser {
  readonly stats: ParserStats = { framesGood: 0, framesBad: 0, bytesDropped: 0 };
  private readonly buffer = new Uint8Array(FRAME_MAX_BYTES);
  private length = 0;
  private escaped = false;
  private discarding = false;

  /** Feeds bytes; calls onFrame for each good frame and onBad for each rejected one. */
  push(bytes: Uint8Array, onFrame: (frame: Frame) => void, onBad: () => void = () => {}): void {
    for (const byte of bytes) {
      const result = this.feed(byte);
      if (result === 'frame') {
        this.stats.framesGood++;
        onFrame({ seqByte: this.buffer[1] ?? 0, payload: this.buffer.slice(2, this.length - 2) });
        this.length = 0;
      } else if (result === 'bad') {
        this.stats.framesBad++;
        onBad();
      }
    }
  }

  private feed(byte: number): 'pending' | 'frame' | 'bad' {
    if (byte === FRAME_STOP) return 'pending';  // the STOP byte is acted on before framing, never part of a frame
    if (byte === FRAME_SYNC) {
      if (this.discarding) {
        this.discarding = false;
        return 'pending';
      }
      if (this.length === 0 && !this.escaped) return 'pending';  // an opening flag, or idle fill
      const length = this.length;
      if (this.escaped || length < FRAME_MIN_BYTES || this.buffer[0] !== length) return this.reject(false);
      const crc = crc16Ccitt(this.buffer.subarray(0, length - 2));
      if (this.buffer[length - 2] !== crc >> 8 || this.buffer[length - 1] !== (crc & 0xff)) return this.reject(false);
      return 'frame';
    }
    if (this.discarding) {
      this.stats.bytesDropped++;
      return 'pending';
    }
    if (byte === FRAME_ESCAPE && !this.escaped) {
      this.escaped = true;
      return 'pending';
    }
    const value = this.escaped ? byte ^ FRAME_ESCAPE_XOR : byte;
    this.escaped = false;
    if (this.length === FRAME_MAX_BYTES) return this.reject(true);  // too long to be a frame
    this.buffer[this.length++] = value;
    return 'pending';
  }

  private reject(skipToSync: boolean): 'bad' {
    this.stats.bytesDropped += this.length;
    this.length = 0;
    this.escaped = false;
    this.discarding = skipToSync;
    return 'bad';
  }
}
