// The virtual pen's control channel: plant faults a real bench cannot cause (hardware/rig.json virtualOnly), set by a
// QA process over TCP, one JSON request per line and one JSON reply per line.
import { createServer, type Server } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import rigJson from '../rig.json' with { type: 'json' };
import { pen as description } from '../description.ts';
import { motorLoads, type MotorLoad, type PenPlant, type SensorFault } from './plant.ts';
import type { ListenAddress } from './tcp-server.ts';

/** A sensor fault as the wire names it: 'none' for a healthy sensor (the plant's null). */
export type WireSensorFault = 'open' | 'short' | 'none';

/** The plant settings the channel controls, named as hardware/rig.json's virtualOnly list names them. */
export interface PlantSettings {
  /** A named load, or the load torque in N·m. */
  readonly motorLoad: MotorLoad | number;
  readonly supplyVolts: number;
  /** The handpiece temperature forced onto the NTC, in °C; null: the plant's thermal model (heated by the winding). */
  readonly temperatureC: number | null;
  readonly depthSensorFault: WireSensorFault;
  readonly ntcFault: WireSensorFault;
}
export type PlantSettingName = keyof PlantSettings;

/** What every accepted request answers: the settings now, the temperature the NTC sees and the simulated time. */
export interface PlantReading {
  readonly plant: PlantSettings;
  /** The handpiece temperature the NTC sees now (forced or modeled), in °C. */
  readonly handpieceC: number;
  /** The virtual pen's simulated time since power-on, in ms. */
  readonly simTimeMs: number;
  /** After {"fit":"new-cartridge"}: the new cartridge chip's ROM id, hex. */
  readonly cartridgeRom?: string;
}

/** A healthy plant: what `{"clear":"all"}` restores (the plant's own values at power-on). */
export const healthyPlant: PlantSettings = {
  motorLoad: 'nominal', supplyVolts: 12, temperatureC: null, depthSensorFault: 'none', ntcFault: 'none',
};

const adcFullScaleVolts = description.sensors.adcReferenceMv / 1000;
/** The supply divider's full scale: above it, the ADC reads its maximum anyway. */
const maxSupplyVolts = adcFullScaleVolts * description.sensors.supplyDividerRatio;
/**
 * A handpiece's plausible range, well inside the NTC's readable span (its readings stay between pen.json's
 * ntcShortCounts and ntcOpenCounts from about −48 °C to 184 °C): a broken NTC is ntcFault's job.
 */
const temperatureRangeC = { min: -20, max: 125 } as const;
/** The load torques a motor can meet, N·m: motorLoads.jam already stalls it. */
const maxLoadTorque = motorLoads.jam;
const motorLoadNames = Object.keys(motorLoads) as MotorLoad[];
const sensorFaultNames: readonly WireSensorFault[] = ['open', 'short', 'none'];

/** A request the channel refuses; its message says what was wrong and what is allowed. */
export class ControlRequestError extends Error {}

const shown = (value: unknown): string => (value === undefined ? 'nothing' : JSON.stringify(value));

function sensorFault(name: string, value: unknown): SensorFault {
  if (typeof value !== 'string' || !(sensorFaultNames as readonly string[]).includes(value)) {
    throw new ControlRequestError(`${name} takes one of ${sensorFaultNames.map((n) => `"${n}"`).join(', ')} (got ${shown(value)})`);
  }
  return value === 'none' ? null : (value as 'open' | 'short');
}

const wireFault = (fault: SensorFault): WireSensorFault => fault ?? 'none';

/** A number within min–max unit, else a ControlRequestError: `NAME takes WHAT min–max unit[, or ALSO] (got …)[; NOTE]`. */
function numberWithin(
  name: string, value: unknown, range: { readonly min: number; readonly max: number; readonly unit: string },
  text: { readonly what: string; readonly also?: string; readonly note?: string },
): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < range.min || value > range.max) {
    throw new ControlRequestError(`${name} takes ${text.what} ${range.min}–${range.max} ${range.unit}${text.also === undefined ? '' : `, or ${text.also}`} ` +
      `(got ${shown(value)})${text.note === undefined ? '' : `; ${text.note}`}`);
  }
  return value;
}

interface SettingHandler {
  /** Checks the value (a ControlRequestError naming what is allowed) and sets it in the plant. */
  apply(plant: PenPlant, value: unknown): void;
  read(plant: PenPlant): PlantSettings[PlantSettingName];
}

/** One handler per rig.json virtualOnly name: checked against that list below, so the two cannot drift. */
const handlers: Record<PlantSettingName, SettingHandler> = {
  motorLoad: {
    apply: (plant, value) => {
      if (typeof value === 'string' && Object.hasOwn(motorLoads, value)) {
        plant.setLoad(value as MotorLoad);
        return;
      }
      const what = `one of ${motorLoadNames.map((n) => `"${n}"`).join(', ')}, or a load torque of`;
      plant.setLoad(numberWithin('motorLoad', value, { min: 0, max: maxLoadTorque, unit: 'N·m' }, { what, note: 'jam stalls the motor' }));
    },
    read: (plant) => motorLoadNames.find((name) => motorLoads[name] === plant.load) ?? plant.load,
  },
  supplyVolts: {
    apply: (plant, value) => {
      const { supplyMinMv, supplyMaxMv } = description.limits;
      plant.supplyVolts = numberWithin('supplyVolts', value, { min: 0, max: maxSupplyVolts, unit: 'V, the ADC\'s full scale through the supply divider' },
        { what: 'a supply of', note: `the pen runs within ${supplyMinMv / 1000}–${supplyMaxMv / 1000} V` });
    },
    read: (plant) => plant.supplyVolts,
  },
  temperatureC: {
    apply: (plant, value) => {
      plant.forcedTemperatureC = value === null ? null : numberWithin('temperatureC', value, { ...temperatureRangeC, unit: '°C' }, {
        what: 'a handpiece temperature of', also: 'null for the thermal model',
        note: `the pen faults above ${description.limits.temperatureLimitDeciC / 10} °C, and a broken NTC is ntcFault`,
      });
    },
    read: (plant) => plant.forcedTemperatureC,
  },
  depthSensorFault: {
    apply: (plant, value) => { plant.depthSensorFault = sensorFault('depthSensorFault', value); },
    read: (plant) => wireFault(plant.depthSensorFault),
  },
  ntcFault: {
    apply: (plant, value) => { plant.ntcFault = sensorFault('ntcFault', value); },
    read: (plant) => wireFault(plant.ntcFault),
  },
};

export const plantSettingNames = Object.keys(handlers) as PlantSettingName[];

for (const name of rigJson.virtualOnly) {
  if (!Object.hasOwn(handlers, name)) throw new Error(`hardware/rig.json virtualOnly names ${name}, which hardware/sim/control.ts cannot set`);
}
for (const name of plantSettingNames) {
  if (!rigJson.virtualOnly.includes(name)) throw new Error(`hardware/sim/control.ts sets ${name}, which hardware/rig.json virtualOnly does not name`);
}

/** The simulated pen the channel controls: its plant and its simulated time (a VirtualPen). */
export interface ControlledPen {
  readonly plant: PenPlant;
  readonly simTimeMs: number;
  /** Puts a new cartridge's chip in the holder (the detect line is the rig's to pull and fit around it); its ROM id. */
  fitNewCartridgeChip(): { readonly rom: Uint8Array };
}

const requestKinds = ['set', 'get', 'clear', 'fit'] as const;
const examples = '{"set":"temperatureC","value":62}, {"get":"plant"}, {"clear":"all"}, {"fit":"new-cartridge"}';
const settingNamesText = plantSettingNames.join(', ');

/**
 * The channel's requests, without the socket. The plant is changed when the request is handled: on the pen's own
 * thread, between two of its run slices (as an in-process test changes it), so a change lands at one simulated instant.
 */
export class PlantControl {
  constructor(private readonly pen: ControlledPen) {}

  reading(): PlantReading {
    const { plant } = this.pen;
    const settings = Object.fromEntries(plantSettingNames.map((name) => [name, handlers[name].read(plant)])) as unknown as PlantSettings;
    return { plant: settings, handpieceC: Number(plant.temperatureC.toFixed(3)), simTimeMs: Number(this.pen.simTimeMs.toFixed(3)) };
  }

  /** Handles one parsed request: the reading after it, or a ControlRequestError. */
  handle(request: unknown): PlantReading {
    if (typeof request !== 'object' || request === null || Array.isArray(request)) {
      throw new ControlRequestError(`a request is one JSON object, e.g. ${examples} (got ${shown(request)})`);
    }
    const fields = request as Record<string, unknown>;
    const kinds = requestKinds.filter((kind) => Object.hasOwn(fields, kind));
    const kind = kinds[0];
    if (kinds.length !== 1 || kind === undefined) {
      throw new ControlRequestError(`a request has exactly one of "set", "get", "clear", "fit" (got ${kinds.length === 0 ? 'none' : kinds.join(' and ')}), e.g. ${examples}`);
    }
    const allowed = kind === 'set' ? ['set', 'value', 'id'] : [kind, 'id'];
    const unknown = Object.keys(fields).filter((key) => !allowed.includes(key));
    if (unknown.length > 0) {
      throw new ControlRequestError(`a "${kind}" request takes only ${allowed.map((k) => `"${k}"`).join(', ')} (unknown: ${unknown.map((k) => `"${k}"`).join(', ')})`);
    }
    const target = fields[kind];
    if (kind === 'get') {
      if (target !== 'plant') throw new ControlRequestError(`"get" takes "plant" (got ${shown(target)})`);
      return this.reading();
    }
    if (kind === 'clear') {
      const names = target === 'all' ? plantSettingNames : [this.settingName(target, 'clear', ' or "all"')];
      for (const name of names) handlers[name].apply(this.pen.plant, healthyPlant[name]);
      return this.reading();
    }
    if (kind === 'fit') {
      if (target !== 'new-cartridge') throw new ControlRequestError(`"fit" takes "new-cartridge" (got ${shown(target)})`);
      const { rom } = this.pen.fitNewCartridgeChip();
      return { ...this.reading(), cartridgeRom: Buffer.from(rom).toString('hex') };
    }
    const name = this.settingName(target, 'set', '');
    if (!Object.hasOwn(fields, 'value')) throw new ControlRequestError(`"set":"${name}" needs a "value"`);
    handlers[name].apply(this.pen.plant, fields['value']);
    return this.reading();
  }

  /**
   * One request line's reply line (without its newline): {"ok":true,…reading} or {"ok":false,"error":…}, with the
   * request's "id" if it had one; changed: the request was an accepted set or clear.
   */
  answer(line: string): { readonly reply: string; readonly changed: boolean } {
    let request: unknown;
    try {
      request = JSON.parse(line);
    } catch {
      const error = `not JSON: ${shown(line.slice(0, 80))}; send one JSON object per line, e.g. ${examples}`;
      return { reply: JSON.stringify({ ok: false, error }), changed: false };
    }
    const id = typeof request === 'object' && request !== null && 'id' in request ? { id: request.id } : {};
    try {
      const reading = this.handle(request);
      return { reply: JSON.stringify({ ok: true, ...id, ...reading }), changed: !Object.hasOwn(request as object, 'get') };
    } catch (error) {
      if (!(error instanceof ControlRequestError)) throw error;
      return { reply: JSON.stringify({ ok: false, ...id, error: error.message }), changed: false };
    }
  }

  private settingName(value: unknown, kind: string, also: string): PlantSettingName {
    if (typeof value === 'string' && Object.hasOwn(handlers, value)) return value as PlantSettingName;
    throw new ControlRequestError(`"${kind}" takes a plant setting: ${settingNamesText}${also} (got ${shown(value)})`);
  }
}

/** The longest request line taken; a longer one is answered with an error and skipped to its end. */
const maxLineChars = 4096;

/**
 * Serves the control channel: every client may connect at once; each client's lines are answered in order. log gets
 * one line per accepted change (who changed what), for the simulator's own output.
 */
export function serveControl(pen: ControlledPen, address: ListenAddress, log: (line: string) => void = () => {}): Promise<Server> {
  const control = new PlantControl(pen);
  const server = createServer((socket) => {
    const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    const decoder = new StringDecoder('utf8');  // a character split between two chunks stays whole
    let received = '';
    let skipping = false;
    socket.on('data', (chunk: Buffer) => {
      received += decoder.write(chunk);
      const lines = received.split(/\r?\n/);
      received = lines.pop() ?? '';
      for (const line of lines) {
        if (skipping) {
          skipping = false;
          continue;
        }
        if (line.trim() === '') continue;
        const { reply, changed } = control.answer(line);
        socket.write(`${reply}\n`);
        if (changed) log(`control: ${line.trim()} (from ${peer})`);
      }
      if (received.length > maxLineChars && !skipping) {
        socket.write(`${JSON.stringify({ ok: false, error: `request line longer than ${maxLineChars} characters: skipped to its end` })}\n`);
        skipping = true;
      }
      if (skipping) received = '';
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => resolve(server));
  });
}
