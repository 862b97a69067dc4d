// `pen flash [HEX] --port P`: puts a pen firmware image on a board through its Optiboot bootloader with avrdude, then
// waits for the new firmware, identifies it and checks that it is the build just written. The image is checked first:
// Intel HEX, inside the application section (the boot section holds the bootloader), and pen firmware for this board
// and this host's protocol (the identity record firmware/src/avr/board.c puts in every image).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Option, type Command } from 'commander';
import { RealClock } from '../../hardware/clock.ts';
import { pen as description } from '../../hardware/description.ts';
import { PROTOCOL_VERSION } from '../../hardware/generated/protocol.ts';
import { IntelHexError, parseIntelHex, readIntelHexRecords } from '../../hardware/sim/intel-hex.ts';
import { bootSectionStartWord } from '../../hardware/sim/self-programming.ts';
import { defaultFirmwarePath } from '../../hardware/sim/virtual-pen.ts';
import { ProtocolMismatchError, type PenIdentity } from '../../hal/device.ts';
import { LinkLostError } from '../../hal/link/reliable-link.ts';
import { TransportError } from '../../hal/link/transport.ts';
import { auditActor, operatorName } from '../store/actor.ts';
import { defaultStorePath, PenStore } from '../store/store.ts';
import { AvrdudeError, avrdudeArguments, runAvrdude, type AvrdudeFailureKind, type AvrdudeRun } from './avrdude.ts';
import { checkPortSyntax, connectPort } from './connect-port.ts';
import { describeIdentity, ExitCode, numberOption, UsageError } from './format.ts';
import { commandLine, PenOwnership } from './status-socket.ts';
import { nameTarget } from './target.ts';

/** The application section ends where the 512-byte boot section (Optiboot) begins. */
export const applicationEndByte = bootSectionStartWord(512) * 2;
const pageBytes = 128;
/** The identity record's tag and layout (firmware/src/avr/board.c image_identity). */
const identityTag = Buffer.from('PENFW-ID', 'latin1');
const identityLayout = 1;
const identityBytes = 22;
/**
 * Optiboot answers within a second of the reset that avrdude's DTR pulse (or `pen sim --auto-reset`) gives; avrdude
 * itself would retry for 6 s against a running firmware and about a minute against a silent port.
 */
const syncWithinMs = 3000;
const defaultTimeoutS = 120;

export interface FirmwareImage {
  readonly path: string;
  readonly text: string;
  /** Data bytes the file writes. */
  readonly bytes: number;
  /** Flash pages (128 bytes) it touches. */
  readonly pages: number;
  readonly boardName: string;
  readonly protocolVersion: number;
  /** 8 hex digits, as identify reports it. */
  readonly buildId: string;
}

const hex16 = (value: number): string => `0x${value.toString(16).toUpperCase().padStart(4, '0')}`;

/** Reads and checks an image before anything touches the board; a usage error says what is wrong and what is allowed. */
export function checkFirmwareImage(path: string): FirmwareImage {
  const shown = relative(process.cwd(), path) || path;
  let text: string;
  try {
    text = readFileSync(path, 'latin1');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(code === 'ENOENT'
      ? `${shown} does not exist: build the firmware with \`npm run firmware\` (firmware/build/pen.hex), or give the path of a pen firmware .hex`
      : `cannot read ${shown}: ${(error as Error).message}`);
  }
  let records;
  try {
    records = readIntelHexRecords(text);
  } catch (error) {
    if (!(error instanceof IntelHexError)) throw error;
    throw new UsageError(`${shown} is not an Intel HEX file (${error.message}): pen flash takes the .hex that \`npm run firmware\` builds, ` +
      'e.g. firmware/build/pen.hex (not the .elf or a .bin)');
  }
  if (records.length === 0) throw new UsageError(`${shown} holds no data to flash: give the pen firmware's .hex (firmware/build/pen.hex)`);
  const flashBytes = description.board.flashBytes;
  const end = Math.max(...records.map((record) => record.address + record.data.length));
  if (end > flashBytes) {
    throw new UsageError(`${shown} writes up to ${hex16(end - 1)}, beyond the ATmega328P's ${flashBytes / 1024} KB of flash: it is not an image for this board`);
  }
  if (end > applicationEndByte) {
    const into = records.filter((record) => record.address + record.data.length > applicationEndByte)
      .reduce((sum, record) => sum + record.address + record.data.length - Math.max(record.address, applicationEndByte), 0);
    throw new UsageError(`${shown} writes ${into} bytes at ${hex16(applicationEndByte)}–${hex16(end - 1)}, in the boot section where the bootloader ` +
      `lives: an application may use ${hex16(0)}–${hex16(applicationEndByte - 1)} (${applicationEndByte} bytes). ` +
      'The firmware build refuses an application that large; a bootloader is burnt with an ISP programmer, not flashed through itself');
  }
  const image = Buffer.from(parseIntelHex(text, flashBytes));
  const found: number[] = [];
  for (let at = image.indexOf(identityTag); at >= 0; at = image.indexOf(identityTag, at + 1)) found.push(at);
  const [at] = found;
  if (at === undefined || found.length > 1 || image[at + identityTag.length] !== identityLayout || at + identityBytes > image.length) {
    throw new UsageError(`${shown} is not pen firmware: it carries ${found.length === 0 ? 'no' : 'no single readable'} pen firmware identity record ` +
      `(tag "${identityTag.toString('latin1')}", firmware/src/avr/board.c), which every image this project builds has. ` +
      'Flash the .hex that `npm run firmware` builds (firmware/build/pen.hex)');
  }
  const boardName = image.subarray(at + 9, at + 17).toString('latin1').replace(/\0+$/, '');
  const protocolVersion = image[at + 17] ?? 0;
  const buildId = image.readUInt32LE(at + 18).toString(16).padStart(8, '0');
  if (boardName !== description.board.name) {
    throw new UsageError(`${shown} is pen firmware for board ${boardName}, and this host drives board ${description.board.name} ` +
      '(hardware/pen.json): flash firmware built for this board');
  }
  if (protocolVersion !== PROTOCOL_VERSION) {
    throw new UsageError(`${shown} speaks protocol version ${protocolVersion}, and this host speaks version ${PROTOCOL_VERSION}: ` +
      'the host would refuse the pen once flashed. Flash firmware built from the same checkout as this host');
  }
  const pages = new Set<number>();
  let bytes = 0;
  for (const record of records) {
    bytes += record.data.length;
    for (let address = record.address; address < record.address + record.data.length; address++) pages.add(Math.floor(address / pageBytes));
  }
  return { path, text, bytes, pages: pages.size, boardName, protocolVersion, buildId };
}

export interface FlashFlags {
  readonly port?: string;
  readonly json?: boolean;
  readonly timeout?: string;
  readonly db?: string;
}

export interface FlashReport {
  readonly ok: boolean;
  readonly port: string;
  readonly image: Omit<FirmwareImage, 'text'>;
  readonly avrdude: Omit<AvrdudeRun, 'lines'> | null;
  /** The pen as it answered after flashing. */
  readonly identity: PenIdentity | null;
  readonly ms: number;
  readonly failure: { readonly kind: AvrdudeFailureKind | 'no-firmware-answer' | 'protocol-mismatch' | 'wrong-build'; readonly message: string } | null;
}

const exitCodes: Record<NonNullable<FlashReport['failure']>['kind'], number> = {
  'missing': ExitCode.failure, 'cannot-open': ExitCode.link, 'no-bootloader': ExitCode.link, 'wrong-signature': ExitCode.failure,
  'verify-failed': ExitCode.failure, 'timeout': ExitCode.link, 'interrupted': ExitCode.interrupted, 'failed': ExitCode.failure,
  'no-firmware-answer': ExitCode.link, 'protocol-mismatch': ExitCode.protocolMismatch, 'wrong-build': ExitCode.failure,
};

class FlashFailure extends Error {
  constructor(readonly kind: NonNullable<FlashReport['failure']>['kind'], message: string) {
    super(message);
  }
}

/** Waits for the firmware just written (connecting waits out the bootloader), identifies it and checks it is that build. */
/** How long a port still held by avrdude's connection (a TCP server serving one host at a time) is tried again. */
const portReleaseWaitMs = 3000;

async function identifyFlashed(port: string, image: FirmwareImage): Promise<PenIdentity> {
  let identity: PenIdentity;
  const clock = new RealClock();
  const deadline = clock.nowMs() + portReleaseWaitMs;
  try {
    for (;;) {
      try {
        const device = await connectPort(port, false);
        identity = device.identity;
        await device.close();
        break;
      } catch (error) {
        // The server may not have seen avrdude's connection close yet: it answers busy for a moment.
        if (!(error instanceof TransportError || error instanceof LinkLostError) || !/busy:/.test(error.message) || clock.nowMs() > deadline) throw error;
        await clock.sleep(200);
      }
    }
  } catch (error) {
    if (error instanceof ProtocolMismatchError) throw new FlashFailure('protocol-mismatch', error.message);
    if (error instanceof LinkLostError || error instanceof TransportError) {
      throw new FlashFailure('no-firmware-answer', `flashed and verified, but the new firmware does not answer: ${error.message.replace(/^link lost: /, '')}`);
    }
    throw error;
  }
  if (identity.buildId !== image.buildId) {
    throw new FlashFailure('wrong-build', `the pen on ${port} runs build ${identity.buildId} after flashing, and the image is build ${image.buildId}: ` +
      'the flash did not take, or another board answered; flash again');
  }
  return identity;
}

export async function flashCommand(hexArgument: string | undefined, flags: FlashFlags): Promise<number> {
  const clock = new RealClock();
  const started = clock.nowMs();
  const port = flags.port;
  if (port === undefined || port === '') {
    throw new UsageError('pen flash needs the board: --port /dev/ttyUSB0 (a serial path; `pen ports` lists them) or --port tcp://HOST:PORT of a `pen sim --auto-reset`');
  }
  checkPortSyntax(port);
  const timeoutS = numberOption(flags.timeout, '--timeout', '120') ?? defaultTimeoutS;
  if (!(timeoutS >= 10 && timeoutS <= 3600)) throw new UsageError(`--timeout must be 10–3600 s (got ${flags.timeout ?? ''})`);
  const image = checkFirmwareImage(hexArgument ?? defaultFirmwarePath);  // refused here, nothing has touched the board
  const json = flags.json === true;
  const say = (line: string): void => { (json ? process.stderr : process.stdout).write(`${line}\n`); };
  const name = nameTarget({ port, eeprom: undefined });
  const owner = name.key === null ? null : await PenOwnership.claim(name.key, { command: commandLine(), target: name.where });
  const { text, ...imageFacts } = image;
  let run: AvrdudeRun | null = null;
  let identity: PenIdentity | null = null;
  let failure: FlashReport['failure'] = null;
  // avrdude gets a private copy of the bytes checked here (and a path with no ':' for its -U syntax).
  const directory = mkdtempSync(join(tmpdir(), 'pen-flash-'));
  try {
    const copy = join(directory, 'image.hex');
    writeFileSync(copy, text, 'latin1');
    say(`flashing build ${image.buildId} (${relative(process.cwd(), image.path) || image.path}: ${image.bytes} bytes, ${image.pages} pages) into ${port} ` +
      'through its bootloader with avrdude ...');
    const onProgress = ({ phase, percent }: { phase: string; percent: number }): void => {
      if (percent % 20 === 0) process.stderr.write(`  ${phase} ${String(percent).padStart(3)}%\n`);
    };
    try {
      run = await runAvrdude(avrdudeArguments(port, copy), { clock, port, syncWithinMs, timeoutMs: timeoutS * 1000, onProgress });
      say(`wrote and verified ${image.bytes} bytes (writing ${run.writeSeconds?.toFixed(2) ?? '?'} s, verifying ${run.verifySeconds?.toFixed(2) ?? '?'} s); ` +
        'waiting for the new firmware ...');
      identity = await identifyFlashed(port, image);
    } catch (error) {
      if (!(error instanceof AvrdudeError) && !(error instanceof FlashFailure)) throw error;
      failure = { kind: error.kind, message: error.message };
    }
  } finally {
    rmSync(directory, { recursive: true, force: true });
    await owner?.close();
  }
  const report: FlashReport = { ok: failure === null, port, image: imageFacts, avrdude: run === null ? null : { writeSeconds: run.writeSeconds, verifySeconds: run.verifySeconds, ms: run.ms }, identity, ms: Math.round(clock.nowMs() - started), failure };
  recordInAudit(flags, report);
  if (json) console.log(JSON.stringify(report, null, 2));
  if (failure !== null) {
    console.error(`pen: ${failure.message}`);
    return exitCodes[failure.kind];
  }
  if (!json && identity !== null) {
    console.log(describeIdentity(identity, port));
    console.log(`running the new firmware, build ${image.buildId}, ${(report.ms / 1000).toFixed(1)} s in all`);
  }
  return ExitCode.ok;
}

/** The audit log keeps every flash that reached the board, with what was written and how it ended. */
function recordInAudit(flags: FlashFlags, report: FlashReport): void {
  const store = PenStore.open(flags.db ?? defaultStorePath(), new RealClock());
  try {
    const details = { target: report.port, image: report.image.path, buildId: report.image.buildId, bytes: report.image.bytes };
    store.audit(null, 'flash', details, report.failure === null ? 'ok' : `failed: ${report.failure.message}`,
      report.identity === null ? { operator: operatorName() } : auditActor(report.identity));
  } finally {
    store.close();
  }
}

/** Registers `pen flash`; setExitCode receives the command's exit code. */
export function addFlashCommand(
  program: Command, options: { readonly jsonOption: () => Option; readonly dbOption: () => Option }, setExitCode: (code: number) => void,
): void {
  program
    .command('flash')
    .description('write a pen firmware image into a board through its Optiboot bootloader (avrdude: writes, then verifies), then wait for the new ' +
      'firmware, identify it and check its build. The image is checked first: Intel HEX, clear of the boot section (0x7E00 and up), pen firmware ' +
      `for board ${description.board.name} speaking protocol version ${PROTOCOL_VERSION}. Exits 0 flashed and running, 1 failed (wrong chip, verify ` +
      'failure, wrong build after flashing, avrdude missing), 2 the image or an option refused, 3 no bootloader answer or no answer after, ' +
      '4 protocol mismatch, 7 another pen process holds the port, 130 interrupted')
    .argument('[hex]', 'the image (default: firmware/build/pen.hex, which `npm run firmware` builds)')
    .addOption(new Option('-p, --port <port>', 'the board: a serial device path (avrdude pulses DTR to reach the bootloader) or tcp://HOST:PORT ' +
      'of `pen sim --auto-reset` (default: $PEN_PORT)').env('PEN_PORT'))
    .option('--timeout <s>', `end avrdude after this long, 10–3600 s (default ${defaultTimeoutS})`)
    .addOption(options.dbOption()).addOption(options.jsonOption())
    .action(async (hex: string | undefined, flags: FlashFlags) => {
      setExitCode(await flashCommand(hex, flags));
    });
}
