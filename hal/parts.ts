// The fitted parts' ID chips as the pen reports them (get_parts): decoded, with a text per status.
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

function chip(status: number, rom: Uint8Array, lot: number): PartChip {
  const info = partStatusInfo[status];
  return {
    status: info?.name ?? 'unknown',
    statusText: info?.text ?? `unknown part status ${status}`,
    rom: rom.every((byte) => byte === 0) ? '' : Buffer.from(rom).toString('hex'),
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
