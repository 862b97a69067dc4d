// `pen --version`: the host's version, the protocol version it speaks, and the firmware build it carries.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import packageJson from '../../package.json' with { type: 'json' };
import { pen } from '../../hardware/description.ts';
import { PROTOCOL_VERSION } from '../../hardware/generated/protocol.ts';
import { codeSymbol, elfPathFor } from '../../hardware/sim/elf-symbols.ts';
import { parseIntelHex } from '../../hardware/sim/intel-hex.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const firmwareDir = join(root, 'firmware');
export const firmwareImagePath = join(firmwareDir, 'build', 'pen.hex');

export interface VersionInfo {
  readonly host: string;
  readonly protocolVersion: number;
  readonly firmware: {
    /** From hardware/pen.json: what this host's firmware sources call themselves. */
    readonly version: string;
    /** The firmware image the in-process virtual pen runs, relative to the repository; null when not built. */
    readonly image: string | null;
    /** BUILD_ID of that image, 8 hex digits; null when there is no image or it cannot be read. */
    readonly buildId: string | null;
    /** How buildId was found. */
    readonly buildIdFrom: string;
    /** BUILD_ID the sources would give now, computed as firmware/Makefile does. */
    readonly sourcesBuildId: string;
  };
}

/** Matches firmware/Makefile: `cat $(SOURCES) $(HEADERS) | sha256sum | cut -c1-8`, make 4.3 sorting each wildcard. */
export function sourcesBuildId(dir: string = firmwareDir): string {
  const glob = (sub: string, extension: string): string[] => {
    const path = join(dir, sub);
    if (!existsSync(path)) return [];
    return readdirSync(path).filter((name) => name.endsWith(extension)).sort().map((name) => join(path, name));
  };
  const files = [...glob('src', '.c'), ...glob('src/avr', '.c'), ...glob('include', '.h'), ...glob('generated', '.h')];
  const hash = createHash('sha256');
  for (const file of files) hash.update(readFileSync(file));
  return hash.digest('hex').slice(0, 8);
}

/** `ldi rD, K` decoded from one little-endian word, or null if it is not an LDI. */
function ldi(low: number, high: number): { register: number; value: number } | null {
  const word = low | (high << 8);
  if ((word & 0xf000) !== 0xe000) return null;
  return { register: 16 + ((word >> 4) & 0x0f), value: ((word >> 4) & 0xf0) | (word & 0x0f) };
}

/** board_build_id() compiles to `ldi r22..r25, <BUILD_ID bytes>; ret`: the id those four loads return, or null. */
function buildIdAt(flash: Uint8Array, address: number): string | null {
  let id = 0;
  for (let i = 0; i < 4; i++) {
    const load = ldi(flash[address + 2 * i] ?? 0, flash[address + 2 * i + 1] ?? 0);
    if (load?.register !== 22 + i) return null;
    id += load.value * 2 ** (8 * i);
  }
  const ret = (flash[address + 8] ?? 0) | ((flash[address + 9] ?? 0) << 8);
  return ret === 0x9508 ? id.toString(16).padStart(8, '0') : null;
}

/** Where in flash `ldi r22..r25, id; ret` occurs, or -1. */
function findBuildId(flash: Uint8Array, id: string): number {
  for (let address = 0; address + 10 <= flash.length; address += 2) {
    if (buildIdAt(flash, address) === id) return address;
  }
  return -1;
}

export function versionInfo(imagePath: string = firmwareImagePath): VersionInfo {
  const sources = sourcesBuildId();
  const firmware = { version: pen.board.firmwareVersion.join('.'), sourcesBuildId: sources };
  if (!existsSync(imagePath)) {
    return { host: packageJson.version, protocolVersion: PROTOCOL_VERSION, firmware: { ...firmware, image: null, buildId: null, buildIdFrom: 'no image: build it with `npm run firmware`' } };
  }
  const image = relative(root, imagePath);
  const flash = parseIntelHex(readFileSync(imagePath, 'utf8'), pen.board.flashBytes);
  let buildId: string | null = null;
  let buildIdFrom: string;
  try {
    // The image itself, at the function the ELF built with it names (avr-nm): exact even when the sources changed since.
    buildId = buildIdAt(flash, codeSymbol(elfPathFor(imagePath), 'board_build_id').address);
    buildIdFrom = buildId === null
      ? `board_build_id in ${image} is not the expected four loads and a return`
      : `read from ${image} at board_build_id (its address from ${relative(root, elfPathFor(imagePath))})`;
  } catch {
    buildIdFrom = `no readable ELF next to ${image}`;
  }
  if (buildId === null && findBuildId(flash, sources) >= 0) {
    buildId = sources;
    buildIdFrom = `the sources' hash (as firmware/Makefile computes it), found in ${image}`;
  } else if (buildId === null) {
    buildIdFrom += `; ${image} does not hold the sources' BUILD_ID ${sources}: rebuild with \`npm run firmware\``;
  }
  return { host: packageJson.version, protocolVersion: PROTOCOL_VERSION, firmware: { ...firmware, image, buildId, buildIdFrom } };
}

export function describeVersion(info: VersionInfo): string {
  const { firmware } = info;
  const build = firmware.image === null
    ? 'not built (firmware/build/pen.hex missing)'
    : `build ${firmware.buildId ?? 'unknown'} in ${firmware.image}` +
      (firmware.buildId !== null && firmware.buildId !== firmware.sourcesBuildId ? ` (stale: the sources now give build ${firmware.sourcesBuildId})` : '');
  return [
    `pen ${info.host}`,
    `protocol version ${info.protocolVersion}`,
    `firmware ${firmware.version}, ${build}`,
  ].join('\n');
}

/** `pen --version` or `pen -V`, optionally with `--json`, and nothing else: the text to print, else null. */
export function versionRequest(argv: readonly string[]): string | null {
  const wantsVersion = argv.some((arg) => arg === '--version' || arg === '-V');
  if (!wantsVersion || !argv.every((arg) => arg === '--version' || arg === '-V' || arg === '--json')) return null;
  const info = versionInfo();
  return argv.includes('--json') ? JSON.stringify(info, null, 2) : describeVersion(info);
}
