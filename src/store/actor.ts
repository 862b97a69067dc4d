// Who acted on which pen, as every record keeps it: the operator, and the pen's identity.
import { userInfo } from 'node:os';
import type { GrantUse, PenIdentity } from '../../hal/device.ts';
import { messageSpecs, type HostMessageName } from '../../hardware/generated/protocol.ts';  // each service command's role
import type { AuditActor, PenRecordIdentity } from './store.ts';

/** The operator recorded with each audited command: $PEN_OPERATOR when set, else the OS user. */
export function operatorName(): string {
  const explicit = process.env['PEN_OPERATOR']?.trim();
  if (explicit !== undefined && explicit !== '') return explicit;
  try {
    return userInfo().username;
  } catch {
    // A uid with no passwd entry (some containers): say so rather than guess.
    return process.env['USER'] ?? `uid ${String(process.getuid?.() ?? 'unknown')}`;
  }
}

/** The pen's identity as records keep it: board, firmware build and serial number (null while it is not provisioned). */
export function penRecordIdentity(identity: PenIdentity): PenRecordIdentity {
  return { board: identity.boardName, buildId: identity.buildId, serial: identity.serial === '' ? null : identity.serial };
}

/** The actor of a command sent to this pen by this process. */
export function auditActor(identity: PenIdentity): AuditActor {
  return { pen: penRecordIdentity(identity), operator: operatorName() };
}

/** The role a service command is sent in (protocol.json), as audit entries keep it; null for a command anyone may send. */
export function serviceRole(command: HostMessageName): string | null {
  return messageSpecs[command].role;
}

/** The roles whose grants a command used, as audit entries keep them ('engineer', 'reprocessing+technician'); null for none. */
export function grantedRole(grants: readonly GrantUse[]): string | null {
  const roles = [...new Set(grants.map((grant) => grant.role))].sort();
  return roles.length === 0 ? null : roles.join('+');
}
