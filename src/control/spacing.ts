// Session spacing: at least clientSpacingDays (config/policy.json, six weeks) between two treatments of one client,
// known by a pseudonymous reference; a clinician may override it with a reason, which is audited.
import { HostRefusedError } from '../../hal/limits.ts';
import { policy } from '../sterilization/config.ts';
import type { ClientTreatment, PenStore } from '../store/store.ts';

/** A client reference: a pseudonym from the clinic's own records, never a name. */
export const clientRefPattern = /^(?=[^\d]*\d)[A-Za-z0-9_-]{4,32}$/;
export const clientRefFormat = '4–32 letters, digits, "-" or "_", with at least one digit (e.g. C-1042): a pseudonym from your client records, never a name';

/** The treatment came too soon after the client's last one, and no override was given (the host refuses: exit 5). */
export class SpacingRefusedError extends HostRefusedError {}

const dayMs = 86_400_000;
const hourMs = 3_600_000;

/** What the spacing rule says about a new session for a client now. */
export interface SpacingVerdict {
  readonly clientRef: string;
  /** The client's latest treatment on record, or null: none. */
  readonly last: ClientTreatment | null;
  readonly minimumDays: number;
  /** Days since the last treatment (fractional), or null. */
  readonly daysSince: number | null;
  /** ISO 8601: the first instant a new session is allowed, or null when there is no earlier one. */
  readonly allowedFrom: string | null;
  /** Whether the rule allows a session now (an override aside). */
  readonly allowed: boolean;
}

/** A span of time as whole days and hours, e.g. "41 days 23 h"; rounded down, or up with roundUp. */
export function describeSpan(ms: number, roundUp = false): string {
  const hours = roundUp ? Math.ceil(ms / hourMs) : Math.floor(ms / hourMs);
  const days = Math.floor(hours / 24);
  const rest = hours % 24;
  if (days === 0) return `${rest} h`;
  return `${days} day${days === 1 ? '' : 's'}${rest === 0 ? '' : ` ${rest} h`}`;
}


const readable = (isoTime: string): string => `${isoTime.slice(0, 16).replace('T', ' ')} UTC`;

/** The rule: a session is allowed when the client's last treatment began at least minimumDays ago. */
export function spacingVerdict(clientRef: string, last: ClientTreatment | null, nowMs: number, minimumDays = policy.clientSpacingDays): SpacingVerdict {
  if (last === null) return { clientRef, last, minimumDays, daysSince: null, allowedFrom: null, allowed: true };
  const treatedMs = Date.parse(last.treatedAt);
  const allowedFromMs = treatedMs + minimumDays * dayMs;
  return {
    clientRef, last, minimumDays, daysSince: (nowMs - treatedMs) / dayMs, allowedFrom: new Date(allowedFromMs).toISOString(), allowed: nowMs >= allowedFromMs,
  };
}

/** The client's verdict from the store's records, at the store's time. */
export function spacingFromStore(store: PenStore, clientRef: string): SpacingVerdict {
  return spacingVerdict(clientRef, store.lastClientTreatment(clientRef), store.epochMs());
}

/** Why a session is refused: when the client was treated, when the next is allowed and how long that is, what to do. */
export function spacingRefusal(verdict: SpacingVerdict, nowMs: number): string {
  const { last, allowedFrom } = verdict;
  if (last === null || allowedFrom === null) return `client ${verdict.clientRef} has no earlier treatment on record`;
  const ago = describeSpan(nowMs - Date.parse(last.treatedAt));
  const left = describeSpan(Date.parse(allowedFrom) - nowMs, true);
  return `client ${verdict.clientRef} was treated ${ago} ago (session ${last.sessionId}, ${readable(last.treatedAt)}` +
    `${last.penSerial === null ? '' : `, pen ${last.penSerial}`}); sessions on one client are at least ${verdict.minimumDays} days apart, ` +
    `so the next is allowed from ${readable(allowedFrom)}, ${left} from now. Wait until then; or, if a clinician has decided otherwise ` +
    '(e.g. to finish a session cut short), run again with --override-spacing "REASON", which is recorded in the audit log';
}

/** One line on the verdict for the session's output. */
export function describeSpacing(verdict: SpacingVerdict, nowMs: number, overrideReason: string | null): string {
  const { last } = verdict;
  if (last === null) return `client ${verdict.clientRef}: no earlier treatment on record`;
  const since = `client ${verdict.clientRef}: last treated ${describeSpan(nowMs - Date.parse(last.treatedAt))} ago (session ${last.sessionId})`;
  if (verdict.allowed) return `${since}; at least ${verdict.minimumDays} days apart: allowed`;
  return `${since}, under the ${verdict.minimumDays} days; spacing overridden (${overrideReason ?? ''}), recorded in the audit log`;
}
