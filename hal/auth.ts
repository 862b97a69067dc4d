// Auth, the host's side: the keyed roles, where a role's key comes from (RoleKeys), the answer to a pen's challenge
// (HMAC-SHA256 with node:crypto, the layout in docs/protocol.md), and the virtual pen's published test keys.
import { createHmac } from 'node:crypto';
import testKeysJson from '../hardware/sim/test-keys.json' with { type: 'json' };
import { AUTH, Role, type RoleName } from '../hardware/generated/protocol.ts';

/** The roles with a key: every role but the operator's. */
export type KeyedRole = Exclude<RoleName, 'operator'>;
export const keyedRoles: readonly KeyedRole[] = ['reprocessing', 'technician', 'engineer'];

/** The role of a pen's role number, if it is a keyed one. */
export function keyedRoleOf(value: number): KeyedRole | null {
  return keyedRoles.find((role) => Role[role] === value) ?? null;
}

/** Where a host finds a role's key for a pen. */
export interface RoleKeys {
  /** The key of role for the pen with this serial; null when none is kept. Throws when one is kept but may not be used. */
  key(serial: string, role: KeyedRole): Uint8Array | null;
  /** Where that key is looked for, for people. */
  where(serial: string, role: KeyedRole): string;
}

/** A serial the pen may hold: 1–16 printable ASCII characters, no space (the firmware refuses any other). */
export const penSerialPattern = /^[\x21-\x7e]{1,16}$/;

/** Serials that start with the virtual pen's prefix belong to virtual pens, which carry the published test keys. */
export function isVirtualSerial(serial: string): boolean {
  return serial.startsWith(AUTH.virtualSerialPrefix);
}

function keyFromHex(hex: string, what: string): Uint8Array {
  if (!new RegExp(`^[0-9a-f]{${2 * AUTH.keyBytes}}$`, 'i').test(hex)) throw new Error(`${what} is not ${AUTH.keyBytes} bytes of hex`);
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

/** The virtual pen's keys: published in hardware/sim/test-keys.json, so they prove nothing on anything else. */
export const testKeys: Readonly<Record<KeyedRole, Uint8Array>> = {
  reprocessing: keyFromHex(testKeysJson.keys.reprocessing, 'the test reprocessing key'),
  technician: keyFromHex(testKeysJson.keys.technician, 'the test technician key'),
  engineer: keyFromHex(testKeysJson.keys.engineer, 'the test engineer key'),
};

/** The test keys, for virtual pens (serial SIM-…) and no other: the host's default key source. */
export const virtualPenKeys: RoleKeys = {
  key: (serial, role) => (isVirtualSerial(serial) ? testKeys[role] : null),
  where: (serial) => (isVirtualSerial(serial) ? 'the virtual pen\'s test keys (hardware/sim/test-keys.json)' : 'no key files configured'),
};

/** The serial as the challenge covers it: its ASCII bytes, NUL-padded to AUTH.serialBytes. */
export function serialField(serial: string): Uint8Array {
  const field = new Uint8Array(AUTH.serialBytes);
  for (let i = 0; i < Math.min(serial.length, field.length); i++) field[i] = serial.charCodeAt(i) & 0x7f;
  return field;
}

/** HMAC-SHA256(key, nonce ‖ serial (16 bytes, NUL-padded) ‖ command id): the answer to a pen's challenge. */
export function challengeAnswer(key: Uint8Array, nonce: Uint8Array, serial: string, commandId: number): Uint8Array {
  if (nonce.length !== AUTH.nonceBytes) throw new RangeError(`a nonce is ${AUTH.nonceBytes} bytes, not ${nonce.length}`);
  const mac = createHmac('sha256', key).update(nonce).update(serialField(serial)).update(Uint8Array.of(commandId)).digest();
  return Uint8Array.from(mac);
}
