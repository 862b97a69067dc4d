// Framing: CRC16-CCITT, frame encoder and a streaming parser that resynchronises on the sync byte.
import { FRAME_MAX_BYTES, FRAME_MIN_BYTES, FRAME_SYNC } from '../../hardware/generated/protocol.ts';

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

export function encodeFrame(seqByte: number, payload: Uint8Array): Uint8Array {
  const length = payload.length + FRAME_MIN_BYTES;
  if (length > FRAME_MAX_BYTES) {
    throw new RangeError(`payload of ${payload.length} bytes exceeds the ${FRAME_MAX_BYTES - FRAME_MIN_BYTES}-byte maximum`);
  }
  const frame = new Uint8Array(length);
  frame[0] = length;
  frame[1] = seqByte;
  frame.set(payload, 2);
  const crc = crc16Ccitt(frame.subarray(0, length - 3));
  frame[length - 3] = crc >> 8;
  frame[length - 2] = crc & 0xff;
  frame[length - 1] = FRAME_SYNC;
  return frame;
}

export interface ParserStats {
  framesGood: number;
  framesBad: number;
  bytesDropped: number;
}

/** Same rules as the firmware's link_feed: bad length, CRC or sync rejects the frame and skips to the next sync. */
export class FrameParser {
  readonly stats: ParserStats = { framesGood: 0, framesBad: 0, bytesDropped: 0 };
  private readonly buffer = new Uint8Array(FRAME_MAX_BYTES);
  private length = 0;
  private discarding = false;

  /** Feeds bytes; calls onFrame for each good frame and onBad for each rejected one. */
  push(bytes: Uint8Array, onFrame: (frame: Frame) => void, onBad: () => void = () => {}): void {
    for (const byte of bytes) {
      const result = this.feed(byte);
      if (result === 'frame') {
        this.stats.framesGood++;
        const total = this.buffer[0] ?? 0;
        onFrame({ seqByte: this.buffer[1] ?? 0, payload: this.buffer.slice(2, total - 3) });
      } else if (result === 'bad') {
        this.stats.framesBad++;
        onBad();
      }
    }
  }

  private feed(byte: number): 'pending' | 'frame' | 'bad' {
    if (this.discarding) {
      this.stats.bytesDropped++;
      if (byte === FRAME_SYNC) this.discarding = false;
      return 'pending';
    }
    if (this.length === 0) {
      if (byte === FRAME_SYNC) return 'pending';
      if (byte < FRAME_MIN_BYTES || byte > FRAME_MAX_BYTES) {
        this.stats.bytesDropped++;
        return this.reject(byte);
      }
    }
    this.buffer[this.length++] = byte;
    const total = this.buffer[0] ?? 0;
    if (this.length < total) return 'pending';
    if (byte !== FRAME_SYNC) return this.reject(byte);
    const crc = crc16Ccitt(this.buffer.subarray(0, total - 3));
    if (this.buffer[total - 3] !== crc >> 8 || this.buffer[total - 2] !== (crc & 0xff)) return this.reject(byte);
    this.length = 0;
    return 'frame';
  }

  private reject(lastByte: number): 'bad' {
    this.length = 0;
    this.discarding = lastByte !== FRAME_SYNC;
    return 'bad';
  }
}
