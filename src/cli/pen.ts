// The `pen` command line: sim, info and demo; every command defaults to an in-process virtual pen.
import { Command, CommanderError, Option } from 'commander';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { parseListenAddress, servePen } from '../../hardware/sim/tcp-server.ts';
import { PenRefusedError, ProtocolMismatchError, type PenIdentity, type Telemetry } from '../../hal/device.ts';
import { LinkLostError } from '../../hal/link/reliable-link.ts';
import { TransportError } from '../../hal/link/transport.ts';
import { openTarget } from './target.ts';

/** Exit codes a script can act on. */
export const ExitCode = { ok: 0, failure: 1, usage: 2, link: 3, protocolMismatch: 4, refused: 5 } as const;

class UsageError extends Error {}

function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError) return ExitCode.usage;
  if (error instanceof ProtocolMismatchError) return ExitCode.protocolMismatch;
  if (error instanceof LinkLostError || error instanceof TransportError) return ExitCode.link;
  if (error instanceof PenRefusedError) return ExitCode.refused;
  return ExitCode.failure;
}

function describeIdentity(identity: PenIdentity, where: string): string {
  return [
    `pen ${identity.boardName} on ${where}`,
    `  firmware ${identity.firmwareVersion} (build ${identity.buildId}), protocol version ${identity.protocolVersion}`,
    `  last reset: ${identity.resetCauseText}`,
  ].join('\n');
}

function describeTelemetry(telemetry: Telemetry): string {
  const fault = telemetry.fault === 'none' ? 'no fault' : `FAULT ${telemetry.fault}: ${telemetry.faultText}`;
  return `  state ${telemetry.state}, ${fault}, up ${(telemetry.uptimeMs / 1000).toFixed(2)} s`;
}

const portOption = new Option('-p, --port <port>', 'serial device path or tcp://HOST:PORT (default: an in-process virtual pen)');
const firmwareOption = new Option('--firmware <hex>', 'firmware image for the in-process virtual pen (default: firmware/build/pen.hex)');
const jsonOption = new Option('--json', 'print one JSON document instead of text');

export function buildProgram(): Command {
  const program = new Command('pen')
    .description('Controller for the motorized microneedling pen: talks to the pen over serial, TCP or an in-process virtual pen.')
    .showHelpAfterError()
    .exitOverride();
  program.addHelpText('after', `\nExit codes: 0 ok, 1 failure, 2 bad usage, 3 link failed or lost, 4 protocol mismatch, 5 pen refused.`);

  program
    .command('info')
    .description("connect, exchange protocol versions and print the pen's identity and state")
    .addOption(portOption)
    .addOption(firmwareOption)
    .addOption(jsonOption)
    .action(async (options: { port?: string; firmware?: string; json?: boolean }) => {
      const target = await openTarget({ port: options.port, firmware: options.firmware });
      try {
        const status = await target.device.status();
        const where = options.port ?? 'the in-process virtual pen';
        if (options.json === true) {
          console.log(JSON.stringify({ port: where, identity: target.device.identity, status }, null, 2));
        } else {
          console.log(describeIdentity(target.device.identity, where));
          console.log(describeTelemetry(status));
        }
      } finally {
        await target.close();
      }
    });

  program
    .command('sim')
    .description('run the virtual pen (the real firmware image in avr8js), paced to real time, serving its UART on TCP')
    .option('--listen <address>', 'where to serve the UART', 'tcp://127.0.0.1:7777')
    .addOption(firmwareOption)
    .addOption(jsonOption)
    .action(async (options: { listen: string; firmware?: string; json?: boolean }) => {
      let address;
      try {
        address = parseListenAddress(options.listen);
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
      const pen = new VirtualPen({ timeMode: 'real', ...(options.firmware === undefined ? {} : { firmwarePath: options.firmware }) });
      const log = (line: string): void => {
        console.log(options.json === true ? JSON.stringify({ event: line, simTimeMs: Math.round(pen.simTimeMs) }) : line);
      };
      pen.start();
      const server = await servePen(pen, address, log);
      const bound = server.address();
      const port = typeof bound === 'object' && bound !== null ? bound.port : address.port;
      log(`virtual pen listening on tcp://${address.host}:${port} (Ctrl-C to stop)`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      server.close();
      await pen.stop();
      log('virtual pen stopped');
    });

  program
    .command('demo')
    .description('boot the virtual pen, show its identity and a second of telemetry (what `npm start` runs)')
    .addOption(firmwareOption)
    .addOption(jsonOption)
    .action(async (options: { firmware?: string; json?: boolean }) => {
      const text = options.json !== true;
      if (text) console.log('booting the virtual pen: firmware/build/pen.hex in avr8js, ATmega328P @ 16 MHz ...');
      const target = await openTarget({ firmware: options.firmware, timeMode: 'real' });
      try {
        const { device } = target;
        if (text) console.log(describeIdentity(device.identity, 'the in-process virtual pen'));
        const records: Telemetry[] = [];
        device.onTelemetry((telemetry) => {
          records.push(telemetry);
          if (text && records.length % 5 === 0) console.log(describeTelemetry(telemetry));
        });
        await target.virtualPen?.clock.sleep(1000);
        const summary = { identity: device.identity, telemetryRecords: records.length, link: device.linkStats };
        if (text) {
          console.log(`received ${records.length} telemetry records in 1 s; link: ${device.linkStats.framesSent} frames sent, ` +
            `${device.linkStats.retransmits} retransmits, ${device.linkStats.framesBad} bad frames`);
        } else {
          console.log(JSON.stringify(summary, null, 2));
        }
      } finally {
        await target.close();
      }
    });

  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return ExitCode.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are successful exits; commander has printed the message already.
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    console.error(`pen: ${error instanceof Error ? error.message : String(error)}`);
    return exitCodeFor(error);
  }
}
