// The `pen` command line: run, status, home, stop, faults, info, sim, demo; every command defaults to an
// in-process virtual pen, and takes --port for a serial path or tcp://HOST:PORT.
import { Command, CommanderError, Option } from 'commander';
import { RealClock } from '../../hardware/clock.ts';
import { parseListenAddress } from '../../hardware/sim/tcp-server.ts';
import { maxLoopRateHz } from '../control/loop.ts';
import { defaultStorePath, PenStore } from '../store/store.ts';
import { describeIdentity, describeTelemetry, ExitCode, exitCodeFor, exitCodeHelp, numberOption, UsageError } from './format.ts';
import { runDemo } from './demo.ts';
import { checkSpacingBeforeConnecting, consoleOutput, runTreatment } from './run.ts';
import { addTargetOptions, openTarget, type Target } from './target.ts';
import { relayStop, statusCommand, intervalRange, type StatusFlags } from './status.ts';
import { boundAddress, createSimPen, createSimRig, serveSimControl, serveSimGauge, serveSimRig, simOptionHelp, type SimFlags, type SimLog } from './sim.ts';
import { waitForInterrupt as interruption } from './interrupt.ts';
import { parseRunFlags } from './run-options.ts';
import { serveOrExplain } from './listen.ts';
import { versionRequest } from './version.ts';
import { checkDepthCalibration, checkSensorCalibration } from '../../hal/limits.ts';
import { auditCommand, type AuditFlags } from './audit.ts';
import { addRecordsCommand } from './records.ts';
import { auditActor, grantedRole, operatorName } from '../store/actor.ts';
import { clearFault } from './clear-fault.ts';
import { faultsCommand, type FaultsFlags } from './faults.ts';
import { addPortsCommand } from './ports.ts';
import { addDoctorCommand } from './doctor.ts';
import { addFlashCommand } from './flash.ts';
import type { DepthCalibration } from '../../hal/device.ts';
import { addProvisionCommand, describeAuthStatus, keysDirOption } from './provision.ts';
import { defaultKeysDir, KeyFiles } from '../provision/keys.ts';
import { auditAuthCounters } from '../provision/auth-audit.ts';
import { clientRefFormat } from '../control/spacing.ts';
import { policy } from '../sterilization/config.ts';
import { addPartsCommand } from './parts.ts';
import { addSterilizeCommand } from './sterilize.ts';
import { describeCalibrationDue, penCalibrationDue } from '../calibration/due.ts';
import { addCalibrateCommand, calibrationHistory, restoreDefaultCalibration } from './calibrate.ts';

const portOption = (): Option => new Option('-p, --port <port>', 'serial device path or tcp://HOST:PORT (default: $PEN_PORT, else an in-process virtual pen)').env('PEN_PORT');
const firmwareOption = (): Option => new Option('--firmware <hex>', 'firmware image for the in-process virtual pen (default: firmware/build/pen.hex)');
const jsonOption = (): Option => new Option('--json', 'print JSON instead of text');
const dbOption = (): Option => new Option('--db <file>', `the SQLite store (default: $PEN_DB or ${defaultStorePath()})`);

interface TargetFlags { port?: string; firmware?: string; json?: boolean; db?: string; keysDir?: string }

/** Set by each action: the process exit code. */
let exitCode: number = ExitCode.ok;

/** Ctrl-C, SIGTERM, SIGHUP, or stdout's reader gone (src/cli/interrupt.ts). */
async function waitForInterrupt(): Promise<void> {
  await interruption();
}

/**
 * Runs a one-shot command on the target, recording it and its outcome in the audit log with the pen's identity and the
 * operator ($PEN_OPERATOR, else the OS user); what the action puts in details (old and new values) is recorded too, with
 * the grants its service commands used (keys from --keys-dir). What the pen's role checks refused since the last look,
 * and during the command, is recorded as well (src/provision/auth-audit.ts).
 */
async function withAudit(
  flags: TargetFlags, command: string, action: (target: Target, details: Record<string, unknown>, store: PenStore) => Promise<void>,
): Promise<void> {
  const target = await openTarget({ port: flags.port, firmware: flags.firmware });
  const store = PenStore.open(flags.db ?? defaultStorePath(), new RealClock());
  const details: Record<string, unknown> = {};
  const actor = auditActor(target.device.identity);
  const grants = (): Record<string, unknown> =>
    target.device.grantsUsed.length === 0 ? {} : { grants: target.device.grantsUsed.map((grant) => `${grant.role}: ${grant.command}`) };
  try {
    target.device.keys = new KeyFiles(flags.keysDir ?? defaultKeysDir());
    await auditAuthCounters(store, target.device, target.where, `before ${command}`, actor);
    await action(target, details, store);
    store.audit(null, command, { target: target.where, ...details, ...grants() }, 'ok', { ...actor, role: grantedRole(target.device.grantsUsed) });
  } catch (error) {
    store.audit(null, command, { target: target.where, ...details, ...grants() }, `refused: ${error instanceof Error ? error.message : String(error)}`,
      { ...actor, role: grantedRole(target.device.grantsUsed) });
    throw error;
  } finally {
    try {
      await auditAuthCounters(store, target.device, target.where, `during ${command}`, actor);
    } finally {
      store.close();
      await target.close();
    }
  }
}

export function buildProgram(): Command {
  const program = new Command('pen')
    .description('Controller for the motorized microneedling pen: talks to the pen over serial, TCP or an in-process virtual pen.')
    .showHelpAfterError()
    .exitOverride();
  program.addHelpText('after', `\n${exitCodeHelp}`);
  // Answered in main before parsing (src/cli/version.ts); declared here so that --help lists it.
  program.addOption(new Option('-V, --version', 'print the host version, the protocol version it speaks and the firmware build it carries (add --json for JSON)'));

  program
    .command('run')
    .description('self-test, home, check the fitted cartridge and nosecone against the parts registry (by their ID chips), clear ' +
      'the cartridge and run a treatment, with a live status line; Ctrl-C stops the pen first. A used cartridge, or a nosecone ' +
      'not sterilized since its last use, is refused, naming the part and what to do')
    .requiredOption('--depth <mm>', 'needle depth, 0.50–2.00 mm')
    .requiredOption('--speed <strokes/s>', 'needle speed, 50–150 strokes per second')
    .option('--duration <s>', 'needle-on time, 1–3600 s (default: until Ctrl-C)')
    .option('--cartridge <id>', 'refuse unless this is the fitted cartridge: its ID chip\'s ROM id, 16 hex digits (default: the one fitted)')
    .option('--footswitch', 'run the needle only while the footswitch is pressed (release pauses)')
    .option('--rate <hz>', `supervisory loop rate, 1–${maxLoopRateHz} Hz`, '100')
    .option('--client <ref>', `the client's pseudonymous reference, ${clientRefFormat}; a client treated less than ` +
      `${policy.clientSpacingDays} days ago is refused (without it the session is recorded with no client and spacing is not checked)`)
    .option('--override-spacing <reason>', 'treat the --client sooner than the spacing allows, for this reason (recorded in the audit log)')
    .addOption(portOption()).addOption(firmwareOption()).addOption(dbOption()).addOption(jsonOption())
    .action(async (flags: TargetFlags & {
      depth: string; speed: string; duration?: string; cartridge?: string; footswitch?: boolean; rate: string; client?: string; overrideSpacing?: string;
    }) => {
      // Every value is checked before connecting: a refused command never touches the pen (src/cli/run-options.ts).
      const { depthMm, strokesPerSecond, durationS, cartridgeId, loopRateHz, clientRef, spacingOverride } = parseRunFlags(flags);
      const storePath = flags.db ?? defaultStorePath();
      // So is the client's session spacing (src/control/spacing.ts).
      checkSpacingBeforeConnecting(storePath, clientRef, spacingOverride);
      if (clientRef === null) console.error('pen: warning: no --client given: the session is recorded without a client, and session spacing is not checked');
      const output = consoleOutput(flags.json === true);
      const target = await openTarget({ port: flags.port, firmware: flags.firmware, timeMode: 'real', heartbeat: false });
      try {
        output.line(describeIdentity(target.device.identity, target.where));
        const { code, summary, client } = await runTreatment(target, {
          plan: { depthMm, strokesPerSecond, durationS }, cartridgeId, footswitchControl: flags.footswitch === true,
          loopRateHz, storePath, json: flags.json === true, clientRef, spacingOverride,
        }, output);
        if (flags.json === true) console.log(JSON.stringify({ target: target.where, client, summary, final: await target.device.status() }, null, 2));
        exitCode = code;
      } finally {
        await target.close();
      }
    });

  program
    .command('status')
    .description("print the pen's state, depth, needle, sensors and inputs, home switch included (--watch to follow it); " +
      'while another process holds the pen, attaches to it read-only')
    .option('--watch', 'keep printing, each line time-stamped, until Ctrl-C')
    .option('--interval <ms>', `with --watch, print at most every so many ms, ${intervalRange.minMs}–${intervalRange.maxMs}`, String(intervalRange.defaultMs))
    .addOption(portOption()).addOption(firmwareOption()).addOption(dbOption()).addOption(jsonOption())
    .action(async (flags: StatusFlags) => {
      exitCode = await statusCommand(flags);
    });

  program
    .command('home')
    .description('find the home switch and set 0 mm there')
    .addOption(portOption()).addOption(firmwareOption()).addOption(dbOption()).addOption(jsonOption())
    .action((flags: TargetFlags) => withAudit(flags, 'home', async (target) => {
      await target.device.depth.home();
      const t = await target.device.status();
      console.log(flags.json === true ? JSON.stringify({ target: target.where, ...t }) : `homed ${target.where}: needle at ${t.depthMm.toFixed(3)} mm, state ${t.state}`);
    }));

  program
    .command('stop')
    .description('STOP: motor off, disarm, needle home (acted on by the pen ahead of anything queued); ' +
      'while another process holds the pen, that process sends it on its link')
    .addOption(portOption()).addOption(firmwareOption()).addOption(dbOption()).addOption(jsonOption())
    .action(async (flags: TargetFlags) => {
      // STOP must get through: relayed by the holder of the pen (src/cli/status.ts), and recorded here too.
      const relayed = await relayStop(flags);
      if (relayed !== null) {
        const store = PenStore.open(flags.db ?? defaultStorePath(), new RealClock());
        try {
          store.audit(null, 'stop', { target: relayed.where, relayedThrough: relayed.owner }, 'ok', { operator: operatorName() });
        } finally {
          store.close();
        }
        return;
      }
      await withAudit(flags, 'stop', async (target) => {
        await target.device.stop();
        const t = await target.device.status();
        console.log(flags.json === true ? JSON.stringify({ target: target.where, ...t }) : `stopped ${target.where}: state ${t.state}, needle ${t.needleOn ? 'ON' : 'off'}`);
      });
    });

  program
    .command('faults')
    .description("list recorded faults, newest first, from the store; with --port, first read the pen's latched fault and record it if it is not on record (JSON: an object with onPen and faults)")
    .option('--limit <n>', 'how many', '20')
    .addOption(new Option('-p, --port <port>', "also read this pen's latched fault: serial device path or tcp://HOST:PORT (default: $PEN_PORT, else the store only)").env('PEN_PORT'))
    .addOption(dbOption()).addOption(jsonOption())
    .action((flags: FaultsFlags) => faultsCommand(flags));

  program
    .command('clear-fault')
    .description('show the latched fault (its clear rule, whether its cause persists), clear it when the pen allows and say what comes next; exits 5 with the reason when the cause persists')
    .addOption(portOption()).addOption(firmwareOption()).addOption(dbOption()).addOption(jsonOption())
    .action((flags: TargetFlags) => withAudit(flags, 'clear_fault', (target, details, store) => clearFault(target, store, details, flags.json === true)));

  program
    .command('audit')
    .description('the append-only audit log of commands that changed the pen, newest first, filtered')
    .option('--pen <id>', "the pen's serial number, firmware build id or board name")
    .option('--session <n>', 'treatment session id')
    .option('--command <name>', 'e.g. home, stop, clear_fault, set_depth_calibration, set_sensor_calibration, arm')
    .option('--since <iso>', 'entries at or after this time (ISO 8601, e.g. 2026-11-25 or 2026-11-25T14:30:00Z; no zone: local time)')
    .option('--until <iso>', 'entries before this time (ISO 8601)')
    .option('--limit <n>', 'how many', '50')
    .addOption(dbOption()).addOption(jsonOption())
    .action((flags: AuditFlags) => auditCommand(flags));

  const calibration = program
    .command('calibration')
    .description('show both depth calibrations in force; with one pair of --set-… options, store that calibration in the pen (EEPROM; the in-process virtual pen keeps its EEPROM in the --eeprom file)')
    .option('--set-steps-per-mm <n>', 'step calibration (technician): microsteps per mm of true needle depth (nominal 1600)')
    .option('--set-zero-offset <mm>', 'step calibration (technician): true needle depth at home, in mm (nominal 0)')
    .option('--set-sensor-zero <mV>', 'depth sensor calibration (engineer): output at carriage 0, in mV (nominal 500)')
    .option('--set-sensor-slope <mV/mm>', 'depth sensor calibration (engineer): mV per mm of carriage travel (nominal 1600)')
    .addOption(keysDirOption())
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
      const show = async (target: Target): Promise<DepthCalibration> => {
        const calibration = await target.device.calibration();
        console.log(flags.json === true ? JSON.stringify({ target: target.where, ...calibration }) :
          `calibration of ${target.where} (${calibration.source}, ${calibration.storedCount} stored so far): ${calibration.stepsPerMm.toFixed(2)} steps/mm, ` +
          `zero offset ${calibration.zeroOffsetMm.toFixed(3)} mm; depth sensor ${calibration.sensorZeroMv} mV + ${calibration.sensorMvPerMm} mV/mm`);
        return calibration;
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
      await withAudit(flags, depth !== undefined ? 'set_depth_calibration' : 'set_sensor_calibration', async (target, details) => {
        details['requested'] = depth ?? sensor;
        details['old'] = await target.device.calibration();
        if (depth !== undefined) await target.device.setDepthCalibration(depth);
        if (sensor !== undefined) await target.device.setSensorCalibration(sensor);
        details['new'] = await show(target);  // read back from the pen
      });
    });
  // Their --port, --db, --json, --keys-dir and --eeprom are the calibration command's own, given before or after their name.
  calibration
    .command('history')
    .description('the calibrations on record, oldest first: guided calibrations (accepted, rejected, aborted, with the reason) and ' +
      'restorations of the default (--db, --json as for pen calibration)')
    .option('--pen <serial>', "only this pen's")
    .action((_flags: unknown, command: Command) => calibrationHistory(command.optsWithGlobals()));
  calibration
    .command('restore-default')
    .description('store the nominal step calibration of hardware/pen.json in the pen (technician), recorded as a restoration of the default ' +
      '(--port, --db, --json, --keys-dir, --eeprom as for pen calibration)')
    .option('--technician <name>', 'who restores it, for the record (default: $PEN_OPERATOR, else the OS user)')
    .action((_flags: unknown, command: Command) => restoreDefaultCalibration(command.optsWithGlobals()));

  program
    .command('info')
    .description("connect, exchange protocol versions and print the pen's identity (serial number included), its role checks' counts and its state; " +
      'records what the role checks refused since last recorded in the audit log')
    .addOption(portOption()).addOption(firmwareOption()).addOption(dbOption()).addOption(jsonOption())
    .action(async (flags: TargetFlags) => {
      const target = await openTarget({ port: flags.port, firmware: flags.firmware });
      try {
        const status = await target.device.status();
        const auth = await target.device.authStatus();
        const store = PenStore.open(flags.db ?? defaultStorePath(), new RealClock());
        let calibration;
        try {
          await auditAuthCounters(store, target.device, target.where, 'at info', auditActor(target.device.identity));
          calibration = await penCalibrationDue(target.device, store, store.epochMs());
        } finally {
          store.close();
        }
        if (flags.json === true) {
          console.log(JSON.stringify({ port: target.where, identity: target.device.identity, auth, status, calibration }, null, 2));
        } else {
          console.log(describeIdentity(target.device.identity, target.where));
          console.log(describeAuthStatus(auth));
          console.log(describeTelemetry(status));
          console.log(describeCalibrationDue(calibration));
        }
      } finally {
        await target.close();
      }
    });

  program
    .command('sim')
    .description('run the virtual pen (the real firmware image in avr8js, booting through Optiboot like an Uno), paced to real time, serving its UART on TCP')
    .option('--listen <address>', 'where to serve the UART', 'tcp://127.0.0.1:7777')
    .option('--seed <n>', simOptionHelp.seed)
    .option('--offset-mm <mm>', simOptionHelp.offsetMm)
    .option('--scale-error <fraction>', simOptionHelp.scaleError)
    .option('--backlash-mm <mm>', simOptionHelp.backlashMm)
    .option('--screw-error-mm <mm>', simOptionHelp.screwErrorMm)
    .option('--gauge <address>', simOptionHelp.gauge)
    .option('--fault <name>', simOptionHelp.fault, (name: string, names: string[] | undefined) => [...(names ?? []), name])
    .option('--auto-reset', simOptionHelp.autoReset)
    .option('--blank', simOptionHelp.blank)
    .option('--rig <address>', simOptionHelp.rig)
    .option('--rig-firmware <hex>', simOptionHelp.rigFirmware)
    .option('--control <address>', simOptionHelp.control)
    .addOption(firmwareOption()).addOption(jsonOption())
    .action(async (flags: SimFlags & { listen: string; json?: boolean; autoReset?: boolean }) => {
      let address;
      try {
        address = parseListenAddress(flags.listen);
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
      // Checks --seed, the mechanical errors, --gauge and --control; loads --eeprom and its parts (src/cli/sim.ts).
      const { pen, eeprom, parts, gauge, control } = createSimPen(flags);
      // With --rig, the rig is wired to the pen before it starts, so the pen's run loop steps both from power-on.
      let simRig;
      try {
        simRig = createSimRig(pen, flags);
      } catch (error) {
        eeprom.close();
        parts.close();
        throw error;
      }
      // With --json, a line that says where an endpoint is served also carries it as fields: {"endpoint":"control","address":"tcp://…"}.
      const log: SimLog = (line, served) => {
        console.log(flags.json === true ? JSON.stringify({ event: line, simTimeMs: Math.round(pen.simTimeMs), ...served }) : line);
      };
      pen.start();
      // Stops the pen and says why when the address cannot be used.
      const server = await serveOrExplain(pen, address, log, { autoReset: flags.autoReset === true });
      const penAddress = boundAddress(server, address);
      const board = `${flags.blank === true ? 'bootloader only, no application' : 'Optiboot + application'}${flags.autoReset === true ? ', reset on connect' : ''}`;
      log(`virtual pen listening on ${penAddress} (${board}; EEPROM ${eeprom.path}; Ctrl-C to stop)`, { endpoint: 'pen', address: penAddress });
      const gaugeServer = gauge === null ? null : await serveSimGauge(gauge, log).catch(async (error: unknown) => {
        server.close();
        await pen.stop();
        throw error;
      });
      const rigServer = simRig === null ? null : await serveSimRig(simRig, log).catch(async (error: unknown) => {
        gaugeServer?.close();
        server.close();
        await pen.stop();
        throw error;
      });
      const controlServer = control === null ? null : await serveSimControl(pen, control, log).catch(async (error: unknown) => {
        rigServer?.close();
        gaugeServer?.close();
        server.close();
        await pen.stop();
        throw error;
      });
      await waitForInterrupt();
      controlServer?.close();
      rigServer?.close();
      gaugeServer?.close();
      server.close();
      await pen.stop();
      eeprom.close();
      parts.close();
      log('virtual pen stopped');
    });

  program
    .command('demo')
    .description('the main job on the virtual pen: boot, self-test, home, check the parts (sterilizing the nosecone first if needed), treat at ' +
      '1.0 mm, survive a needle jam, recover, fit a new cartridge and reprocess the nosecone, finish with a second session (npm start)')
    .addOption(firmwareOption()).addOption(dbOption()).addOption(jsonOption())
    .action(async (flags: { firmware?: string; db?: string; json?: boolean }) => {
      const output = consoleOutput(flags.json === true);
      output.line('booting the virtual pen: firmware/build/pen.hex in avr8js, ATmega328P @ 16 MHz, paced to real time ...');
      const target = await openTarget({ firmware: flags.firmware, eeprom: null, timeMode: 'real', heartbeat: false });  // a blank pen every time
      try {
        const result = await runDemo(target, flags.db ?? defaultStorePath(), output);
        if (flags.json === true) console.log(JSON.stringify(result, null, 2));
      } finally {
        await target.close();
      }
    });

  addPortsCommand(program, jsonOption, (code) => { exitCode = code; });  // src/cli/ports.ts
  addDoctorCommand(program, { portOption, firmwareOption, dbOption, jsonOption }, (code) => { exitCode = code; });  // src/cli/doctor.ts
  addFlashCommand(program, { jsonOption, dbOption }, (code) => { exitCode = code; });  // src/cli/flash.ts
  addProvisionCommand(program, { portOption, firmwareOption, dbOption, jsonOption });  // src/cli/provision.ts
  addPartsCommand(program, { dbOption, jsonOption });  // src/cli/parts.ts
  addRecordsCommand(program, { dbOption, jsonOption }, (code) => { exitCode = code; });  // src/cli/records.ts
  addSterilizeCommand(program, { portOption, firmwareOption, dbOption, jsonOption });  // src/cli/sterilize.ts
  addCalibrateCommand(program, { portOption, firmwareOption, dbOption, jsonOption }, (code) => { exitCode = code; });  // src/cli/calibrate.ts
  addTargetOptions(program);  // --eeprom on every command that can open an in-process pen
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  exitCode = ExitCode.ok;
  try {
    const version = versionRequest(argv);  // `pen --version [--json]`
    if (version !== null) {
      console.log(version);
      return ExitCode.ok;
    }
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
