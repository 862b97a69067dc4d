// The TypeScript framing against the shared vectors, plus codec round trips and refusals.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { crc16Ccitt, encodeFrame, FrameParser, type Frame } from '../../hal/link/frame.ts';
import { decodeMessage, encodeMessage, DecodeError } from '../../hal/link/codec.ts';

const fromHex = (text: string): Uint8Array => (text === '-' ? new Uint8Array(0) : Uint8Array.from(Buffer.from(text, 'hex')));
const vectors = readFileSync(new URL('../vectors/frames.txt', import.meta.url), 'utf8')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line !== '' && !line.startsWith('#'))
  .map((line) => line.split(/\s+/));

describe('shared link vectors (TypeScript side)', { tags: ['REQ-LINK-INTEGRITY'] }, () => {
  it('has vectors of every kind', () => {
    const kinds = new Set(vectors.map((v) => v[0]));
    expect([...kinds].sort()).toEqual(['crc', 'frame', 'stream']);
  });

  for (const [kind, a = '', b = '', c = ''] of vectors) {
    if (kind === 'crc') {
      it(`crc of ${a.slice(0, 16)} is ${b}`, () => {
        expect(crc16Ccitt(fromHex(a))).toBe(parseInt(b, 16));
      });
    } else if (kind === 'frame') {
      it(`frame seq ${a} payload ${b.slice(0, 16)}`, () => {
        const seqByte = parseInt(a, 16);
        expect(Buffer.from(encodeFrame(seqByte, fromHex(b))).toString('hex').toUpperCase()).toBe(c);
        const frames: Frame[] = [];
        new FrameParser().push(fromHex(c), (frame) => frames.push(frame));
        expect(frames).toEqual([{ seqByte, payload: fromHex(b) }]);
      });
    } else {
      it(`stream ${a.slice(0, 24)} gives ${b} good, ${c} bad`, () => {
        const parser = new FrameParser();
        parser.push(fromHex(a), () => {});
        expect([parser.stats.framesGood, parser.stats.framesBad]).toEqual([Number(b), Number(c)]);
      });
    }
  }
});

describe('framing limits', { tags: ['REQ-LINK-INTEGRITY'] }, () => {
  it('refuses a payload that would exceed the maximum frame', () => {
    expect(() => encodeFrame(0x10, new Uint8Array(61))).toThrow(/61 bytes exceeds the 60-byte maximum/);
  });

  it('finds every frame in a stream cut into single bytes', () => {
    const stream = [encodeFrame(0x10, Uint8Array.of(1, 1, 0)), encodeFrame(0x11, Uint8Array.of(3))];
    const parser = new FrameParser();
    const seen: number[] = [];
    for (const frame of stream) for (const byte of frame) parser.push(Uint8Array.of(byte), (f) => seen.push(f.seqByte));
    expect(seen).toEqual([0x10, 0x11]);
  });
});

describe('message codec', { tags: ['REQ-LINK-INTEGRITY'] }, () => {
  it('round-trips an identity reply, strings and unsigned 32-bit values included', () => {
    const fields = {
      protocolVersion: 1, firmwareMajor: 2, firmwareMinor: 3, firmwarePatch: 4, resetCause: 4,
      buildId: 0xdeadbeef, boardName: 'pen-r1a', serial: 'PN-0001.a_Z',
    };
    const payload = encodeMessage('identify_reply', fields);
    expect(payload.length).toBe(35);
    expect(decodeMessage(payload)).toEqual({ name: 'identify_reply', fields });
  });

  it('round-trips byte fields of their exact size and refuses any other size', () => {
    const nonce = Uint8Array.from({ length: 16 }, (_, i) => 255 - i);
    const fields = { nonce, role: 2, commandId: 13 };
    expect(decodeMessage(encodeMessage('challenge', fields))).toEqual({ name: 'challenge', fields });
    expect(() => encodeMessage('answer_challenge', { mac: new Uint8Array(31) })).toThrow(/mac must be 32 bytes/);
    expect(() => encodeMessage('answer_challenge', { mac: new Uint8Array(33) })).toThrow(/mac must be 32 bytes/);
  });

  it('round-trips a negative detail in an error reply', () => {
    const fields = { requestId: 3, code: 7, detail: -2500 };
    expect(decodeMessage(encodeMessage('error', fields))).toEqual({ name: 'error', fields });
  });

  it('refuses unknown ids and wrong lengths with the reason', () => {
    expect(() => decodeMessage(Uint8Array.of(0x42))).toThrow(new DecodeError('unknown message id 66'));
    expect(() => decodeMessage(Uint8Array.of(0x80))).toThrow(/ok is 1 bytes, expected 2/);
  });
});
