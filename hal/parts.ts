// The fitted parts' ID chips as the pen reports them (get_parts): decoded, with a text per status; ROM ids and the
// day numbers the chips and the arm command use.
import { pen } from '../hardware/description.ts';
import { HostRefusedError } from './limits.ts';
import {
  PartActivity, partStatusInfo, writeResultInfo, type MessageFields, type PartStatusName, type WriteResultName,
} from '../hardware/generated/protocol.ts';

export const partNames = ['cartridge', 'nosecone'] as const;
export type PartName = (typeof partNames)[number];

export interface PartChip {
  readonly status: PartStatusName;
  readonly statusText: string;
  /** The chip's ROM id in hex, as on the bus (family code first, CRC-8 last); '' when none was read good. */
  readonly rom: string;
  readonly lot: number;
}

export interface CartridgeChip extends PartChip {
  /** Days since 2000-01-01. */
  readonly expiryDay: number;
  /** Its one-way used mark has a bit burnt. */
  readonly used: boolean;
}

export interface NoseconeChip extends PartChip {
  readonly sterilizations: number;
  readonly uses: number;
  /** Not used since its latest sterilization (and sterilized at least once). */
  readonly unusedSinceSterilization: boolean;
}

export interface Parts {
  /** The chips being read now: their fields are still the previous read's. */
  readonly reading: readonly PartName[];
  readonly writing: boolean;
  readonly lastWrite: WriteResultName;
  readonly cartridge: CartridgeChip;
  readonly nosecone: NoseconeChip;
}

/** The reread field of get_parts: a bit per part. */
export function partBits(parts: readonly PartName[]): number {
  return parts.reduce((bits, part) => bits | (1 << partNames.indexOf(part)), 0);
}

/** A ROM id as hex ('' for all zeros: none read good). */
export function romHex(rom: Uint8Array): string {
  return rom.every((byte) => byte === 0) ? '' : Buffer.from(rom).toString('hex');
}

/** A ROM id's 8 bytes from 16 hex digits ("-", ":" and spaces ignored), or a refusal naming the format. */
export function romBytes(text: string): Uint8Array {
  const hex = text.replace(/[-:\s]/g, '');
  if (!/^[0-9a-fA-F]{16}$/.test(hex)) throw new HostRefusedError(`part id "${text}" is not 16 hex digits, an ID chip's ROM id`);
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

const dayMs = 86_400_000;
const day2000Ms = Date.UTC(2000, 0, 1);

/** The day number the chips and the pen use (days since 2000-01-01, UTC) of an instant. */
export function dayNumber(epochMs: number): number {
  return Math.floor((epochMs - day2000Ms) / dayMs);
}

/** A day number as YYYY-MM-DD. */
export function dayDate(day: number): string {
  return new Date(day2000Ms + day * dayMs).toISOString().slice(0, 10);
}

/** The arm command's date: today by the host's clock, refused when the clock cannot be right (the pen refuses it too). */
export function checkArmingDate(epochMs: number): number {
  const day = Number.isFinite(epochMs) ? dayNumber(epochMs) : NaN;
  const earliest = pen.idChips.earliestHostDay;
  if (!Number.isInteger(day) || day < earliest || day > 0xffff) {
    throw new HostRefusedError(`the host's date ${Number.isFinite(epochMs) ? new Date(epochMs).toISOString() : String(epochMs)} cannot be right ` +
      `(allowed ${dayDate(earliest)} to ${dayDate(0xffff)}): set this computer's clock; the pen checks cartridge expiry against it`);
  }
  return day;
}

function chip(status: number, rom: Uint8Array, lot: number): PartChip {
  const info = partStatusInfo[status];
  return {
    status: info?.name ?? 'unknown',
    statusText: info?.text ?? `unknown part status ${status}`,
    rom: romHex(rom),
    lot,
  };
}

export function decodeParts(f: MessageFields['parts']): Parts {
  const reading = partNames.filter((_, index) => (f.activity >> index) & 1);
  return {
    reading,
    writing: ((f.activity >> PartActivity.writing) & 1) !== 0,
    lastWrite: writeResultInfo[f.lastWrite]?.name ?? 'none',
    cartridge: { ...chip(f.cartridgeStatus, f.cartridgeRom, f.cartridgeLot), expiryDay: f.cartridgeExpiryDay, used: f.cartridgeUsedBits !== 0 },
    nosecone: {
      ...chip(f.noseconeStatus, f.noseconeRom, f.noseconeLot), sterilizations: f.noseconeSterilizations, uses: f.noseconeUses,
      unusedSinceSterilization: f.noseconeUnusedSinceSterilization !== 0,
    },
  };
}
