// Provisioned virtual pens for tests: the identity record (serial and the test keys) written into the EEPROM image as
// the firmware's provision command stores it (firmware/src/storage.c: version, sequence, payload, CRC in slot 0 at
// 0x100), so a pen starts provisioned without half a second of EEPROM writes. tests/sim/roles.test.ts checks that a
// pen provisioned through the wire holds the same bytes.
import { writeFileSync } from 'node:fs';
import { crc16Ccitt } from '../../hal/link/frame.ts';
import { keyedRoles, serialField, testKeys, type KeyedRole } from '../../hal/auth.ts';
import { VirtualPen, type VirtualPenOptions } from '../../hardware/sim/virtual-pen.ts';

export const testSerial = 'SIM-0001';
const identityAddress = 0x100;
const identityVersion = 1;
const eepromBytes = 1024;

/** The identity record's bytes (version, sequence 1, serial, keys in role order, CRC), as slot 0 holds it. */
export function identityRecord(serial: string, keys: Readonly<Record<KeyedRole, Uint8Array>> = testKeys): Uint8Array {
  const covered = Uint8Array.from([identityVersion, 1, 0, ...serialField(serial), ...keyedRoles.flatMap((role) => [...keys[role]])]);
  const crc = crc16Ccitt(covered);
  return Uint8Array.from([...covered, crc & 0xff, crc >> 8]);
}

/** Writes the identity into an EEPROM image (a virtual pen's eeprom.memory before start, or a file's bytes). */
export function writeTestIdentity(memory: Uint8Array, serial = testSerial, keys: Readonly<Record<KeyedRole, Uint8Array>> = testKeys): void {
  memory.set(identityRecord(serial, keys), identityAddress);
}

/** A virtual pen provisioned with serial and the test keys (not started). */
export function provisionedVirtualPen(options: VirtualPenOptions = {}, serial = testSerial): VirtualPen {
  const pen = new VirtualPen(options);
  writeTestIdentity(pen.eeprom.memory, serial);
  return pen;
}

/** A blank EEPROM image file but for the identity, for `pen sim --eeprom FILE` or an in-process pen's --eeprom. */
export function writeProvisionedEepromFile(path: string, serial = testSerial): string {
  const image = new Uint8Array(eepromBytes).fill(0xff);
  writeTestIdentity(image, serial);
  writeFileSync(path, image);
  return path;
}
