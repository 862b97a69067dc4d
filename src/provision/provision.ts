// Provisioning a pen: a serial number and a fresh random key per keyed role, the key files written (0600) before the
// pen is told, so a key the pen holds is never lost; re-provisioning proves the engineer key of the pen's current
// serial. Virtual pens (serial SIM-…) get the published test keys instead, and no key files.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { isVirtualSerial, testKeys, type KeyedRole } from '../../hal/auth.ts';
import { HostRefusedError } from '../../hal/limits.ts';
import { PenRefusedError, type PenDevice, type PenIdentity } from '../../hal/device.ts';
import { hostSerialPattern, KeyFiles, moveFolder, removeFolder, writeKeySet } from './keys.ts';

export interface ProvisionPlan {
  readonly serial: string;
  readonly keys: KeyFiles;
  /** Whether this is a virtual pen that takes the test keys (checked by the caller: see provisionProblem). */
  readonly testKeys: boolean;
}

export interface ProvisionResult {
  readonly serial: string;
  readonly previousSerial: string | null;
  /** Where the keys are kept: the key folder, or the test keys' file. */
  readonly keys: string;
  /** The key folder of the same serial from before, kept under another name; null if there was none. */
  readonly replacedKeys: string | null;
  readonly identity: PenIdentity;
}

/**
 * What is wrong with these flags, before anything is opened (null: nothing). SIM- serials carry the published test
 * keys, so they are for virtual pens only: the in-process one, or one on a port when --test-keys says it is virtual.
 */
export function provisionProblem(serial: string, testKeysFlag: boolean, port: string | null): string | null {
  if (!hostSerialPattern.test(serial)) {
    return `--serial "${serial}" is not a serial this host can keep keys for: 1–16 letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. PN-000123)`;
  }
  const virtual = isVirtualSerial(serial);
  if (testKeysFlag && !virtual) return `--test-keys are for virtual pens, whose serials start with SIM-; "${serial}" gets fresh random keys (leave out --test-keys)`;
  if (virtual && port !== null && !testKeysFlag) {
    return `serials starting with SIM- carry the published test keys and mark a virtual pen; for the pen on ${port} choose another serial, or add --test-keys if it is a virtual pen (pen sim)`;
  }
  return null;
}

function freshKeys(): Record<KeyedRole, Uint8Array> {
  return { reprocessing: Uint8Array.from(randomBytes(32)), technician: Uint8Array.from(randomBytes(32)), engineer: Uint8Array.from(randomBytes(32)) };
}

/** Provisions the connected pen (see the file's purpose line); throws with what to do when it cannot. */
export async function provisionPen(device: PenDevice, plan: ProvisionPlan): Promise<ProvisionResult> {
  const { serial, keys: keyFiles } = plan;
  const previousSerial = device.identity.serial === '' ? null : device.identity.serial;
  device.keys = keyFiles;
  // Re-provisioning needs the engineer key of the serial the pen has now: found before anything is written.
  if (previousSerial !== null && keyFiles.key(previousSerial, 'engineer') === null) {
    throw new HostRefusedError(`the pen is provisioned as ${previousSerial}; re-provisioning needs its engineer key, and there is none (${keyFiles.where(previousSerial, 'engineer')})`);
  }
  if (plan.testKeys) {
    const identity = await device.provision(serial, testKeys);
    return { serial, previousSerial, keys: 'hardware/sim/test-keys.json (test keys, virtual pens only)', replacedKeys: null, identity };
  }
  const folder = keyFiles.folder(serial);
  if (existsSync(folder) && serial !== previousSerial) {
    throw new HostRefusedError(`keys for ${serial} are kept already (${folder}): another pen carries that serial; choose another, or move that folder away if that pen is gone`);
  }
  const pending = join(keyFiles.dir, `.pending-${serial}`);
  removeFolder(pending);  // left by a provisioning that never reached the pen
  const keys = freshKeys();
  writeKeySet(pending, keys);
  let identity: PenIdentity;
  try {
    identity = await device.provision(serial, keys);
  } catch (error) {
    if (error instanceof PenRefusedError || error instanceof HostRefusedError) {
      removeFolder(pending);  // refused: the pen keeps its old keys, and these were never used
      throw error;
    }
    throw new Error(`${error instanceof Error ? error.message : String(error)}; the pen may or may not hold the new keys, which are kept in ${pending}: ` +
      `if pen info shows serial ${serial}, move that folder to ${folder}`);
  }
  let replacedKeys: string | null = null;
  if (existsSync(folder)) {
    replacedKeys = join(keyFiles.dir, `.replaced-${serial}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
    moveFolder(folder, replacedKeys);
  }
  moveFolder(pending, folder);
  return { serial, previousSerial, keys: folder, replacedKeys, identity };
}

