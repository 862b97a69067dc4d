// The pen description (hardware/pen.json) and the protocol description, typed, with derived mechanics.
import penJson from './pen.json' with { type: 'json' };
import protocolJson from './protocol.json' with { type: 'json' };
import faultsJson from './faults.json' with { type: 'json' };

export type PinName = keyof typeof penJson.pins;
export interface PinSpec {
  readonly port: 'B' | 'C' | 'D';
  readonly bit: number;
  /** open_drain: pulled low by DDR, released to the board's pull-up (the ID chips' 1-Wire buses). */
  readonly direction: 'input' | 'output' | 'open_drain';
  readonly activeLow: boolean;
  readonly purpose: string;
}

export const pen = penJson;
export const protocolDescription = protocolJson;
export const faultDescription = faultsJson;

export const pins = penJson.pins as Record<PinName, PinSpec>;

/** Microsteps per millimetre of needle travel, from the nominal mechanics. */
export const stepsPerMm =
  (penJson.mechanics.fullStepsPerRev * penJson.mechanics.microsteps) / penJson.mechanics.leadScrewPitchMm;

export const depthWindowMm = penJson.depthWindowMm;
