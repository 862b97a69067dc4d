// `pen provision`: gives a pen its serial number and role keys (src/provision/), recorded in the audit log; and what
// other commands share about roles: the --keys-dir option and the text for the pen's auth status.
import { Option, type Command } from 'commander';
import { RealClock } from '../../hardware/clock.ts';
import { isVirtualSerial } from '../../hal/auth.ts';
import type { AuthStatus } from '../../hal/device.ts';
import { defaultStorePath, PenStore } from '../store/store.ts';
import { auditActor, serviceRole } from '../store/actor.ts';
import { defaultKeysDir, KeyFiles } from '../provision/keys.ts';
import { provisionPen, provisionProblem, type ProvisionResult } from '../provision/provision.ts';
import { auditAuthCounters } from '../provision/auth-audit.ts';
import { UsageError } from './format.ts';
import { openTarget } from './target.ts';

export const keysDirOption = (): Option =>
  new Option('--keys-dir <dir>', 'where role key files are kept: <dir>/<serial>/<role>.key, 64 hex digits, mode 0600 ' +
    '(default: $PEN_KEYS_DIR, else $XDG_CONFIG_HOME/pen/keys, else ~/.config/pen/keys)');

/** One line: provisioned or not, what the role checks counted, any lockout. */
export function describeAuthStatus(status: AuthStatus): string {
  const provisioned = status.provisioned ? 'provisioned' : 'NOT PROVISIONED (service commands refused: pen provision --serial SN)';
  const lockout = status.lockoutMs > 0 ? `; challenges LOCKED OUT for ${(status.lockoutMs / 1000).toFixed(1)} s after wrong answers` : '';
  return `  roles: ${provisioned}; the pen counted ${status.refusals} refusal(s) by its role checks, ${status.wrongAnswers} wrong answer(s)${lockout}; boot ${status.bootCount}`;
}

function describeProvision(result: ProvisionResult, where: string): string {
  const lines = [
    `provisioned the pen on ${where} as ${result.serial} (it was ${result.previousSerial === null ? 'not provisioned' : result.previousSerial})`,
    isVirtualSerial(result.serial)
      ? `  keys: the virtual pen's published test keys (${result.keys}): for virtual pens only`
      : `  keys: ${result.keys}/{reprocessing,technician,engineer}.key (mode 0600; keep them safe: they are the only copies)`,
  ];
  if (result.replacedKeys !== null) lines.push(`  the keys ${result.serial} had before are kept in ${result.replacedKeys}`);
  return lines.join('\n');
}

interface ProvisionFlags {
  readonly serial: string;
  readonly port?: string;
  readonly firmware?: string;
  readonly keysDir?: string;
  readonly testKeys?: boolean;
  readonly json?: boolean;
  readonly db?: string;
}

export interface ProvisionCommandOptions {
  readonly portOption: () => Option;
  readonly firmwareOption: () => Option;
  readonly dbOption: () => Option;
  readonly jsonOption: () => Option;
}

/** Registers `pen provision`. */
export function addProvisionCommand(program: Command, options: ProvisionCommandOptions): void {
  program
    .command('provision')
    .description('give the pen a serial number and a fresh random key per role (reprocessing, technician, engineer): the key files are written ' +
      '(mode 0600) before the pen stores the keys; a provisioned pen needs its engineer key to be provisioned again. Serials starting with ' +
      'SIM- mark a virtual pen, which gets the published test keys instead')
    .requiredOption('--serial <sn>', "the pen's serial number: 1–16 letters, digits, '.', '_' or '-', starting with a letter or digit")
    .option('--test-keys', "the pen on --port is a virtual pen (pen sim): give it the published test keys (serials SIM-… only)")
    .addOption(keysDirOption())
    .addOption(options.portOption()).addOption(options.firmwareOption()).addOption(options.dbOption()).addOption(options.jsonOption())
    .action(async (flags: ProvisionFlags) => {
      // Checked before connecting: a refused serial never reaches the pen.
      const problem = provisionProblem(flags.serial, flags.testKeys === true, flags.port === undefined || flags.port === '' ? null : flags.port);
      if (problem !== null) throw new UsageError(problem);
      const keys = new KeyFiles(flags.keysDir ?? defaultKeysDir());
      const target = await openTarget({ port: flags.port, firmware: flags.firmware });
      const store = PenStore.open(flags.db ?? defaultStorePath(), new RealClock());
      const before = auditActor(target.device.identity);
      const details = { target: target.where, serial: flags.serial, previousSerial: target.device.identity.serial === '' ? null : target.device.identity.serial };
      const grants = (): Record<string, unknown> =>
        target.device.grantsUsed.length === 0 ? {} : { grants: target.device.grantsUsed.map((grant) => `${grant.role}: ${grant.command}`) };
      try {
        await auditAuthCounters(store, target.device, target.where, 'before provision', before);
        const result = await provisionPen(target.device, { serial: flags.serial, keys, testKeys: isVirtualSerial(flags.serial) });
        store.audit(null, 'provision', { ...details, keys: result.keys, replacedKeys: result.replacedKeys, ...grants() }, 'ok', { ...auditActor(result.identity), role: serviceRole('provision') });
        console.log(flags.json === true ? JSON.stringify({ target: target.where, ...result }, null, 2) : describeProvision(result, target.where));
      } catch (error) {
        store.audit(null, 'provision', { ...details, ...grants() }, `refused: ${error instanceof Error ? error.message : String(error)}`,
          { ...before, role: serviceRole('provision') });
        throw error;
      } finally {
        try {
          await auditAuthCounters(store, target.device, target.where, 'during provision', auditActor(target.device.identity));
        } finally {
          store.close();
          await target.close();
        }
      }
    });
}
