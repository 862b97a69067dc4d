// The `pen` command line: run, status, home, stop, faults, info, sim, demo; every command defaults to an
// in-process virtual pen, and takes --port for a serial path or tcp://HOST:PORT.
import { Command, CommanderError, Option } from 'commander';
import { RealClock } from '../../hardware/clock.ts';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { parseListenAddress, servePen } from '../../hardware/sim/tcp-server.ts';
import { maxLoopRateHz } from '../control/loop.ts';
import { defaultStorePath, PenStore } from '../store/store.ts';
import { describeIdentity, describeTelemetry, ExitCode, exitCodeFor, exitCodeHelp, numberOption, UsageError } from './format.ts';
import { runDemo } from './demo.ts';
import { consoleOutput, runTreatment } from './run.ts';
import { openTarget, type Target } from './target.ts';
import { checkDepthCalibration, checkSensorCalibration } from '../../hal/limits.ts';

const portOption = (): Option => new Option('-p, --port <port>', 'serial device path or tcp://HOST:PORT (default: an in-process virtual pen)');
const firmwareOption = (): Option => new Option('--firmware <hex>', 'firmware image for the in-process virtual pen (default: firmware/build/pen.hex)');
const jsonOption = (): Option => new Option('--json', 'print JSON instead of text');
const dbOption = (): Option => new Option('--db <file>', `the SQLite store (default: $PEN_DB or ${defaultStorePath()})`);

interface TargetFlags { port?: string; firmware?: string; json?: boolean; db?: string }

/** Set by each action: the process exit code. */
let exitCode: number = ExitCode.ok;

function waitForInterrupt(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
}

/** Runs a one-shot command on the target, recording it and its outcome in the audit log. */
async function withAudit(flags: TargetFlags, command: string, action: (target: Target) => Promise<void>): Promise<void> {
  const target = await openTarget({ port: flags.port, firmware: flags.firmware });
  const store = PenStore.open(flags.db ?? defaultStorePath(), new RealClock());
  try {
    await action(target);
    store.audit(null, command, { target: target.where }, 'ok');
  } catch (error) {
    store.audit(null, command, { target: target.where }, `refused: ${error instanceof Error ? error.message : String(error)}`);
    throw error;
  } finally {
    store.close();
    await target.close();
  }
}

function buildProgram(): Command {
  const program = new Command('pen')
    .description('Controller for the motorized microneedling pen: talks to the pen over serial, TCP or an in-process virtual pen.')
    .showHelpAfterError()
    .exitOverride();
  program.addHelpText('after', `\n${exitCodeHelp}`);

  program
    .command('run')
    .description('self-test, home, clear the cartridge and run a treatment, with a live status line; Ctrl-C stops the pen first')
    .requiredOption('--depth <mm>', 'needle depth, 0.50–2.00 mm')
    .requiredOption('--speed <strokes/s>', 'needle speed, 50–150 strokes per second')
    .option('--duration <s>', 'needle-on time in seconds (default: until Ctrl-C)')
    .option('--cartridge <id>', 'cartridge id to clear for use', '1')
    .option('--footswitch', 'run the needle only while the footswitch is pressed (release pauses)')
    .option('--rate <hz>', `supervisory loop rate, 1–${maxLoopRateHz} Hz`, '100')
    .addOption(portOption()).addOption(firmwareOption()).addOption(dbOption()).addOption(jsonOption())
    .action(async (flags: TargetFlags & { depth: string; speed: string; duration?: string; cartridge: string; footswitch?: boolean; rate: string }) => {
      const depthMm = numberOption(flags.depth, '--depth', '1.0') ?? 0;
      const strokesPerSecond = numberOption(flags.speed, '--speed', '100') ?? 0;
      const durationS = numberOption(flags.duration, '--duration', '30') ?? null;
      const cartridgeId = numberOption(flags.cartridge, '--cartridge', '1') ?? 1;
      const loopRateHz = numberOption(flags.rate, '--rate', '100') ?? 100;
      if (loopRateHz < 1 || loopRateHz > maxLoopRateHz) throw new UsageError(`--rate ${loopRateHz} Hz is outside 1–${maxLoopRateHz} Hz`);
      const output = consoleOutput(flags.json === true);
      const target = await openTarget({ port: flags.port, firmware: flags.firmware, timeMode: 'real', heartbeat: false });
      try {
        output.line(describeIdentity(target.device.identity, target.where));
        const { code, summary } = await runTreatment(target, {
          plan: { depthMm, strokesPerSecond, durationS }, cartridgeId, footswitchControl: flags.footswitch === true,
          loopRateHz, storePath: flags.db ?? defaultStorePath(), json: flags.json === true,
        }, output);
        if (flags.json === true) console.log(JSON.stringify({ summary, final: await target.device.status() }, null, 2));
        exitCode = code;
      } finally {
        await target.close();
      }
    });

  program
    .command('status')
    .description("print the pen's state, depth, needle, sensors and inputs (--watch to follow it)")
    .option('--watch', 'keep printing until Ctrl-C')
    .addOption(portOption()).addOption(firmwareOption()).addOption(jsonOption())
    .action(async (flags: TargetFlags & { watch?: boolean }) => {
      const target = await openTarget({ port: flags.port, firmware: flags.firmware, timeMode: flags.watch === true ? 'real' : 'virtual' });
      try {
        const print = (t: Awaited<ReturnType<typeof target.device.status>>): void => {
          console.log(flags.json === true ? JSON.stringify(t) : `${target.where}:\n${describeTelemetry(t)}`);
        };
        print(await target.device.status());
        if (flags.watch === true) {
          let last = 0;
          target.device.onTelemetry((t) => {
            if (t.uptimeMs - last < 250) return;
            last = t.uptimeMs;
            print(t);
          });
          await waitForInterrupt();
        }
      } finally {
        await target.close();
      }
    });

  program
    .command('home')
    .description('find the home switch and set 0 mm there')
    .addOption(portOption()).addOption(firmwareOption()).addOption(dbOption()).addOption(jsonOption())
    .action((flags: TargetFlags) => withAudit(flags, 'home', async (target) => {
      await target.device.depth.home();
      const t = await target.device.status();
      console.log(flags.json === true ? JSON.stringify(t) : `homed: needle at ${t.depthMm.toFixed(3)} mm, state ${t.state}`);
    }));

  program
    .command('stop')
    .description('STOP: motor off, disarm, needle home (acted on by the pen ahead of anything queued)')
    .addOption(portOption()).addOption(firmwareOption()).addOption(dbOption()).addOption(jsonOption())
    .action((flags: TargetFlags) => withAudit(flags, 'stop', async (target) => {
      await target.device.stop();
      const t = await target.device.status();
      console.log(flags.json === true ? JSON.stringify(t) : `stopped: state ${t.state}, needle ${t.needleOn ? 'ON' : 'off'}`);
    }));

  program
    .command('faults')
    .description('list recorded faults, newest first, from the store')
    .option('--limit <n>', 'how many', '20')
    .addOption(dbOption()).addOption(jsonOption())
    .action((flags: { db?: string; json?: boolean; limit: string }) => {
      const limit = numberOption(flags.limit, '--limit', '20') ?? 20;
      if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit must be a whole number ≥ 1 (got ${flags.limit})`);
      const store = PenStore.open(flags.db ?? defaultStorePath(), new RealClock());
      try {
        const faults = store.faults(limit);
        if (flags.json === true) console.log(JSON.stringify(faults, null, 2));
        else if (faults.length === 0) console.log(`no faults recorded in ${store.path}`);
        else for (const f of faults) console.log(`${f.at}  session ${f.sessionId ?? '-'}  ${f.source}  ${f.code}: ${f.text}`);
      } finally {
        store.close();
      }
    });

  program
    .command('calibration')
    .description('show both depth calibrations in force; with one pair of --set-… options, store that calibration in the pen (EEPROM; an in-process virtual pen forgets it on exit)')
    .option('--set-steps-per-mm <n>', 'step calibration (technician): microsteps per mm of true needle depth (nominal 1600)')
    .option('--set-zero-offset <mm>', 'step calibration (technician): true needle depth at home, in mm (nominal 0)')
    .option('--set-sensor-zero <mV>', 'depth sensor calibration (engineer): output at carriage 0, in mV (nominal 500)')
    .option('--set-sensor-slope <mV/mm>', 'depth sensor calibration (engineer): mV per mm of carriage travel (nominal 1600)')
    .addOption(portOption()).addOption(firmwareOption()).addOption(dbOption()).addOption(jsonOption())
    .action(async (flags: TargetFlags & { setStepsPerMm?: string; setZeroOffset?: string; setSensorZero?: string; setSensorSlope?: string }) => {
      const stepsPerMm = numberOption(flags.setStepsPerMm, '--set-steps-per-mm', '1600');
      const zeroOffsetMm = numberOption(flags.setZeroOffset, '--set-zero-offset', '0.02');
      const sensorZeroMv = numberOption(flags.setSensorZero, '--set-sensor-zero', '500');
      const sensorMvPerMm = numberOption(flags.setSensorSlope, '--set-sensor-slope', '1600');
      const depthGiven = [stepsPerMm, zeroOffsetMm].filter((value) => value !== undefined).length;
      const sensorGiven = [sensorZeroMv, sensorMvPerMm].filter((value) => value !== undefined).length;
      if (depthGiven === 1) throw new UsageError('the step calibration takes both --set-steps-per-mm and --set-zero-offset');
      if (sensorGiven === 1) throw new UsageError('the depth sensor calibration takes both --set-sensor-zero and --set-sensor-slope');
      if (depthGiven > 0 && sensorGiven > 0) {
        throw new UsageError('the step calibration and the depth sensor calibration are stored separately, so that one command never moves both depth channels: give one pair at a time');
      }
      // Checked before connecting: a refused value never reaches the pen.
      const depth = stepsPerMm !== undefined && zeroOffsetMm !== undefined ? { stepsPerMm, zeroOffsetMm } : undefined;
      const sensor = sensorZeroMv !== undefined && sensorMvPerMm !== undefined ? { sensorZeroMv, sensorMvPerMm } : undefined;
      if (depth !== undefined) checkDepthCalibration(depth);
      if (sensor !== undefined) checkSensorCalibration(sensor);
      const show = async (target: Target): Promise<void> => {
        const calibration = await target.device.calibration();
        console.log(flags.json === true ? JSON.stringify(calibration) :
          `calibration (${calibration.source}, ${calibration.storedCount} stored so far): ${calibration.stepsPerMm.toFixed(2)} steps/mm, ` +
          `zero offset ${calibration.zeroOffsetMm.toFixed(3)} mm; depth sensor ${calibration.sensorZeroMv} mV + ${calibration.sensorMvPerMm} mV/mm`);
      };
      if (depth === undefined && sensor === undefined) {
        const target = await openTarget({ port: flags.port, firmware: flags.firmware });
        try {
          await show(target);
        } finally {
          await target.close();
        }
        return;
      }
      await withAudit(flags, depth !== undefined ? 'set_depth_calibration' : 'set_sensor_calibration', async (target) => {
        if (depth !== undefined) await target.device.setDepthCalibration(depth);
        if (sensor !== undefined) await target.device.setSensorCalibration(sensor);
        await show(target);
      });
    });

  program
    .command('info')
    .description("connect, exchange protocol versions and print the pen's identity and state")
    .addOption(portOption()).addOption(firmwareOption()).addOption(jsonOption())
    .action(async (flags: TargetFlags) => {
      const target = await openTarget({ port: flags.port, firmware: flags.firmware });
      try {
        const status = await target.device.status();
        if (flags.json === true) {
          console.log(JSON.stringify({ port: target.where, identity: target.device.identity, status }, null, 2));
        } else {
          console.log(describeIdentity(target.device.identity, target.where));
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
    .addOption(firmwareOption()).addOption(jsonOption())
    .action(async (flags: { listen: string; firmware?: string; json?: boolean }) => {
      let address;
      try {
        address = parseListenAddress(flags.listen);
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
      const pen = new VirtualPen({ timeMode: 'real', ...(flags.firmware === undefined ? {} : { firmwarePath: flags.firmware }) });
      const log = (line: string): void => {
        console.log(flags.json === true ? JSON.stringify({ event: line, simTimeMs: Math.round(pen.simTimeMs) }) : line);
      };
      pen.start();
      const server = await servePen(pen, address, log);
      const bound = server.address();
      const port = typeof bound === 'object' && bound !== null ? bound.port : address.port;
      log(`virtual pen listening on tcp://${address.host}:${port} (Ctrl-C to stop)`);
      await waitForInterrupt();
      server.close();
      await pen.stop();
      log('virtual pen stopped');
    });

  program
    .command('demo')
    .description('the main job on the virtual pen: boot, self-test, home, treat at 1.0 mm, survive a needle jam, recover, finish (npm start)')
    .addOption(firmwareOption()).addOption(dbOption()).addOption(jsonOption())
    .action(async (flags: { firmware?: string; db?: string; json?: boolean }) => {
      const output = consoleOutput(flags.json === true);
      output.line('booting the virtual pen: firmware/build/pen.hex in avr8js, ATmega328P @ 16 MHz, paced to real time ...');
      const target = await openTarget({ firmware: flags.firmware, timeMode: 'real', heartbeat: false });
      try {
        const result = await runDemo(target, flags.db ?? defaultStorePath(), output);
        if (flags.json === true) console.log(JSON.stringify(result, null, 2));
      } finally {
        await target.close();
      }
    });

  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  exitCode = ExitCode.ok;
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are successful exits; commander has printed the message already.
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    console.error(`pen: ${error instanceof Error ? error.message : String(error)}`);
    return exitCodeFor(error);
  }
}
