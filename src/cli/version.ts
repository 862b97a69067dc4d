// `pen --version`: the host's version, the protocol version it speaks, and the firmware build it carries.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import packageJson from '../../package.json' with { type: 'json' };
import { pen } from '../../hardware/description.ts';
import { PROTOCOL_VERSION } from '../../hardware/generated/protocol.ts';

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

export function versionInfo(imagePath: string = firmwareImagePath): VersionInfo {
  const sources = sourcesBuildId();
  const firmware = { version: pen.board.firmwareVersion.join('.'), sourcesBuildId: sources };
  if (!existsSync(imagePath)) {
    return { host: packageJson.version, protocolVersion: PROTOCOL_VERSION, firmware: { ...firmware, image: null, buildId: null, buildIdFrom: 'no image: build it with `npm run firmware`' } };
  }
  const image = relative(root, imagePath);
  // firmware/Makefile writes the BUILD_ID it compiled into the image next to it.
  const idPath = imagePath.replace(/\.hex$/, '.build-id');
  const buildId = existsSync(idPath) ? readFileSync(idPath, 'utf8').trim() : null;
  const buildIdFrom = buildId === null ? `no ${relative(root, idPath)}: rebuild with \`npm run firmware\`` : relative(root, idPath);
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
