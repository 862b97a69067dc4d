// Role key files on the host: one file per pen and role, <keys dir>/<serial>/<role>.key, 64 hex digits, mode 0600 in
// a 0700 folder, refused when group or others may open it. The virtual pen's published test keys stand in only for
// pens whose serial marks them virtual (SIM-…), and only when no key file is kept for them.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { isVirtualSerial, keyedRoles, virtualPenKeys, type KeyedRole, type RoleKeys } from '../../hal/auth.ts';
import { HostRefusedError } from '../../hal/limits.ts';

/** Where key files live: $PEN_KEYS_DIR, else $XDG_CONFIG_HOME/pen/keys, else ~/.config/pen/keys. */
export function defaultKeysDir(): string {
  const explicit = process.env['PEN_KEYS_DIR'];
  if (explicit !== undefined && explicit !== '') return explicit;
  const configHome = process.env['XDG_CONFIG_HOME'];
  return join(configHome !== undefined && configHome !== '' ? configHome : join(homedir(), '.config'), 'pen', 'keys');
}

/**
 * A serial this host provisions and keeps keys for. It names a folder, so: letters, digits, '.', '_' and '-', 1–16 of
 * them, starting with a letter or digit (never '.' or '..'). The pen itself takes any printable ASCII but space.
 */
export const hostSerialPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,15}$/;

/** A key file exists but may not be used (too open, not this user's, not a key): nothing was sent to the pen. */
export class KeyFileError extends HostRefusedError {}

const keyFilePattern = /^[0-9a-f]{64}$/i;

/** Reads one key file, refusing it when group or others have any access, when another user owns it, or when malformed. */
export function readKeyFile(file: string): Uint8Array {
  const stat = statSync(file);
  if (!stat.isFile()) throw new KeyFileError(`${file} is not a file`);
  const mode = (stat.mode & 0o777).toString(8).padStart(4, '0');
  if ((stat.mode & 0o077) !== 0) throw new KeyFileError(`${file} is open to group or others (mode ${mode}); a key file must be 0600: chmod 600 ${file}`);
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid) throw new KeyFileError(`${file} belongs to uid ${stat.uid}, not to this user (uid ${uid}): refusing to use it`);
  const text = readFileSync(file, 'utf8').trim();
  if (!keyFilePattern.test(text)) throw new KeyFileError(`${file} does not hold a key: it must be 64 hex digits (32 bytes)`);
  return Uint8Array.from(Buffer.from(text, 'hex'));
}

/** Keys from files in dir; for a virtual pen with no files, the test keys (hal/auth.ts). */
export class KeyFiles implements RoleKeys {
  constructor(readonly dir: string, private readonly fallback: RoleKeys = virtualPenKeys) {}

  folder(serial: string): string {
    return join(this.dir, serial);
  }

  path(serial: string, role: KeyedRole): string {
    return join(this.folder(serial), `${role}.key`);
  }

  key(serial: string, role: KeyedRole): Uint8Array | null {
    if (!hostSerialPattern.test(serial)) {
      throw new KeyFileError(`the pen's serial "${serial}" cannot name a key folder (letters, digits, '.', '_', '-' only): no key is looked up for it`);
    }
    const file = this.path(serial, role);
    return existsSync(file) ? readKeyFile(file) : this.fallback.key(serial, role);
  }

  where(serial: string, role: KeyedRole): string {
    return hostSerialPattern.test(serial)
      ? `${this.path(serial, role)}${isVirtualSerial(serial) ? ", else the virtual pen's test keys" : ''}`
      : 'none: the serial cannot name a key folder';
  }
}

function syncFolder(folder: string): void {
  const fd = openSync(folder, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes a key per role into a new folder (0700), each file created exclusively with mode 0600 and synced to disk. */
export function writeKeySet(folder: string, keys: Readonly<Record<KeyedRole, Uint8Array>>): void {
  mkdirSync(dirname(folder), { recursive: true, mode: 0o700 });
  mkdirSync(folder, { mode: 0o700 });
  for (const role of keyedRoles) {
    const fd = openSync(join(folder, `${role}.key`), 'wx', 0o600);
    try {
      writeSync(fd, `${Buffer.from(keys[role]).toString('hex')}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  syncFolder(folder);
  syncFolder(dirname(folder));
}

/** Moves a folder to a new name (atomic on one file system), synced. */
export function moveFolder(from: string, to: string): void {
  renameSync(from, to);
  syncFolder(dirname(to));
}

export function removeFolder(folder: string): void {
  rmSync(folder, { recursive: true, force: true });
}
