// Message codecs: encode and decode payloads from the generated protocol description (little-endian fields).
import { messageSpecs, type FieldType, type MessageFields, type MessageName } from '../../hardware/generated/protocol.ts';

export type Message = { [K in MessageName]: { readonly name: K; readonly fields: MessageFields[K] } }[MessageName];

const fieldBytes: Record<FieldType, number> = { u8: 1, u16: 2, u32: 4, i16: 2, i32: 4, char8: 8, char16: 16, bytes8: 8, bytes16: 16, bytes32: 32 };
/** Fixed-size fields: NUL-padded ASCII text, or raw bytes of exactly their size. */
const textTypes: ReadonlySet<FieldType> = new Set(['char8', 'char16']);
const byteTypes: ReadonlySet<FieldType> = new Set(['bytes8', 'bytes16', 'bytes32']);
const specsById = new Map(Object.entries(messageSpecs).map(([name, spec]) => [spec.id, { name: name as MessageName, spec }]));

export class DecodeError extends Error {}

function messageLength(name: MessageName): number {
  return 1 + messageSpecs[name].fields.reduce((sum, [, type]) => sum + fieldBytes[type], 0);
}

export function encodeMessage<K extends MessageName>(name: K, fields: MessageFields[K]): Uint8Array {
  const spec = messageSpecs[name];
  const bytes = new Uint8Array(messageLength(name));
  const view = new DataView(bytes.buffer);
  bytes[0] = spec.id;
  let offset = 1;
  const values = fields as Readonly<Record<string, number | string | Uint8Array>>;
  for (const [fieldName, type] of spec.fields) {
    const value = values[fieldName];
    if (value === undefined) throw new TypeError(`${name}: field ${fieldName} is missing`);
    if (textTypes.has(type)) {
      const text = String(value);
      for (let i = 0; i < fieldBytes[type]; i++) bytes[offset + i] = i < text.length ? text.charCodeAt(i) & 0x7f : 0;
    } else if (byteTypes.has(type)) {
      if (!(value instanceof Uint8Array) || value.length !== fieldBytes[type]) {
        throw new TypeError(`${name}: field ${fieldName} must be ${fieldBytes[type]} bytes`);
      }
      bytes.set(value, offset);
    } else {
      const number = Number(value);
      if (type === 'u8') view.setUint8(offset, number);
      else if (type === 'u16') view.setUint16(offset, number, true);
      else if (type === 'u32') view.setUint32(offset, number, true);
      else if (type === 'i16') view.setInt16(offset, number, true);
      else view.setInt32(offset, number, true);
    }
    offset += fieldBytes[type];
  }
  return bytes;
}

export function decodeMessage(payload: Uint8Array): Message {
  const id = payload[0];
  const entry = id === undefined ? undefined : specsById.get(id);
  if (entry === undefined) throw new DecodeError(`unknown message id ${id ?? '(empty payload)'}`);
  const expected = messageLength(entry.name);
  if (payload.length !== expected) {
    throw new DecodeError(`${entry.name} is ${payload.length} bytes, expected ${expected}`);
  }
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const fields: Record<string, number | string | Uint8Array> = {};
  let offset = 1;
  for (const [fieldName, type] of entry.spec.fields) {
    if (textTypes.has(type)) {
      const chars = Array.from(payload.subarray(offset, offset + fieldBytes[type])).filter((c) => c !== 0);
      fields[fieldName] = String.fromCharCode(...chars);
    } else if (byteTypes.has(type)) {
      fields[fieldName] = payload.slice(offset, offset + fieldBytes[type]);
    } else if (type === 'u8') fields[fieldName] = view.getUint8(offset);
    else if (type === 'u16') fields[fieldName] = view.getUint16(offset, true);
    else if (type === 'u32') fields[fieldName] = view.getUint32(offset, true);
    else if (type === 'i16') fields[fieldName] = view.getInt16(offset, true);
    else fields[fieldName] = view.getInt32(offset, true);
    offset += fieldBytes[type];
  }
  return { name: entry.name, fields } as Message;
}
