// The virtual pen's control channel over real TCP: each virtual-only plant fault reaches the plant and the firmware
// reacts through the wire; refused requests say what is allowed; clear all brings a healthy plant back.
import { createServer, Socket, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import rigJson from '../../hardware/rig.json' with { type: 'json' };
import { healthyPlant, plantSettingNames, serveControl, type PlantSettingName, type PlantSettings } from '../../hardware/sim/control.ts';
import { motorLoads } from '../../hardware/sim/plant.ts';
import { pen as description } from '../../hardware/description.ts';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import type { FaultName } from '../../hardware/generated/protocol.ts';
import type { PenDevice } from '../../hal/device.ts';
import { SimControl, SimControlError } from '../../hal/sim-control.ts';
import { runningVirtualPen } from './virtual-session.ts';

let pen: VirtualPen | undefined;
let device: PenDevice | undefined;
let server: Server | undefined;
let control: SimControl | undefined;
const sockets: Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await control?.close();
  await new Promise((resolve) => { if (server === undefined) resolve(undefined); else server.close(resolve); });
  await device?.close();
  await pen?.stop();
  [pen, device, server, control] = [undefined, undefined, undefined, undefined];
});

/** The control channel of this pen on a free port, and a client connected to it over TCP. */
async function controlOf(controlled: VirtualPen): Promise<{ readonly control: SimControl; readonly address: string }> {
  server = await serveControl(controlled, { host: '127.0.0.1', port: 0 });
  const bound = server.address();
  const address = `tcp://127.0.0.1:${typeof bound === 'object' && bound !== null ? bound.port : 0}`;
  control = await SimControl.open(address);
  return { control, address };
}

/** A pen running its needle (tests/sim/virtual-session.ts) and the client of its control channel. */
async function runningPenUnderControl(): Promise<{ readonly pen: VirtualPen; readonly device: PenDevice; readonly control: SimControl }> {
  const session = await runningVirtualPen();
  ({ pen, device } = session);
  return { ...session, control: (await controlOf(session.pen)).control };
}

/** A started pen that runs no session, for the channel's own behaviour. */
async function idlePenUnderControl(): Promise<{ readonly pen: VirtualPen; readonly control: SimControl; readonly address: string }> {
  const started = new VirtualPen();
  pen = started;
  started.start();
  return { pen: started, ...(await controlOf(started)) };
}

/** A raw TCP client: sends lines as given, collects reply lines. */
async function rawClient(address: string): Promise<{ send(text: string): void; replies(count: number): Promise<Record<string, unknown>[]> }> {
  const port = Number(/:(\d+)$/.exec(address)?.[1]);
  const socket = new Socket();
  sockets.push(socket);
  let received = '';
  socket.on('data', (chunk: Buffer) => { received += chunk.toString('utf8'); });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.connect(port, '127.0.0.1', resolve);
  });
  return {
    send: (text) => socket.write(text),
    replies: async (count) => {
      const deadline = Date.now() + 2000;
      while (received.split('\n').length - 1 < count) {
        if (Date.now() > deadline) throw new Error(`fewer than ${count} reply lines within 2 s: ${received}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      return received.split('\n').slice(0, count).map((line) => JSON.parse(line) as Record<string, unknown>);
    },
  };
}

describe('the control channel names exactly rig.json\'s virtual-only settings', () => {
  it('has one setting per virtualOnly name, and a healthy value for each', () => {
    expect([...plantSettingNames].sort()).toEqual([...rigJson.virtualOnly].sort());
    expect(Object.keys(healthyPlant).sort()).toEqual([...rigJson.virtualOnly].sort());
  });
});

interface Hazard {
  readonly name: PlantSettingName;
  readonly value: PlantSettings[PlantSettingName];
  readonly fault: FaultName;
  /** What the plant holds once the setting arrived. */
  readonly inPlant: (plant: VirtualPen['plant']) => unknown;
  readonly expected: unknown;
}

const hazards: Hazard[] = [
  { name: 'temperatureC', value: 62, fault: 'over_temperature', inPlant: (plant) => plant.temperatureC, expected: 62 },
  { name: 'motorLoad', value: 'jam', fault: 'motor_overcurrent', inPlant: (plant) => plant.load, expected: motorLoads.jam },
  { name: 'depthSensorFault', value: 'open', fault: 'depth_sensor', inPlant: (plant) => plant.depthSensorFault, expected: 'open' },
  { name: 'depthSensorFault', value: 'short', fault: 'depth_sensor', inPlant: (plant) => plant.depthSensorFault, expected: 'short' },
  { name: 'ntcFault', value: 'open', fault: 'temperature_sensor', inPlant: (plant) => plant.ntcFault, expected: 'open' },
  { name: 'ntcFault', value: 'short', fault: 'temperature_sensor', inPlant: (plant) => plant.ntcFault, expected: 'short' },
  { name: 'supplyVolts', value: 9.5, fault: 'supply_out_of_range', inPlant: (plant) => plant.supplyVolts, expected: 9.5 },
  { name: 'supplyVolts', value: 14.5, fault: 'supply_out_of_range', inPlant: (plant) => plant.supplyVolts, expected: 14.5 },
];

describe('each setting, sent over TCP while the needle runs, faults the pen through the wire', () => {
  for (const hazard of hazards) {
    it(`${hazard.name} ${JSON.stringify(hazard.value)}: ${hazard.fault}, motor off; clear all lets the fault clear`, async () => {
      const { pen: running, device: connected, control: client } = await runningPenUnderControl();
      const faulted = connected.waitFor((t) => t.state === 'fault', 1000, hazard.name).catch((e: unknown) => e);
      const reading = await client.set(hazard.name, hazard.value);
      expect(reading.plant[hazard.name]).toEqual(hazard.value);
      expect(hazard.inPlant(running.plant)).toEqual(hazard.expected);
      expect(await faulted).toMatchObject({ fault: hazard.fault });
      expect(running.plant.motorDrive()).toBe(0);

      expect((await client.clearAll()).plant).toEqual(healthyPlant);
      await running.clock.sleep(100);
      await connected.clearFault();
      expect((await connected.status()).fault).toBe('none');
      expect(running.plant.motorDrive()).toBe(0);
    });
  }
});

describe('reading the plant back', () => {
  it('answers the settings, the temperature the NTC sees and the simulated time, which moves on', async () => {
    const { pen: idle, control: client } = await idlePenUnderControl();
    const first = await client.plant();
    expect(first.plant).toEqual(healthyPlant);
    expect(first.handpieceC).toBeCloseTo(25, 1);
    await idle.clock.sleep(20);
    const later = await client.set('temperatureC', 41.5);
    expect(later.simTimeMs).toBeGreaterThan(first.simTimeMs + 19);
    expect(later).toMatchObject({ plant: { temperatureC: 41.5 }, handpieceC: 41.5 });
    expect((await client.set('motorLoad', 0.02)).plant.motorLoad).toBe(0.02);
    expect((await client.set('motorLoad', motorLoads.heavy)).plant.motorLoad).toBe('heavy');  // a named load's torque reads as its name
    expect((await client.set('temperatureC', null)).plant.temperatureC).toBeNull();
    expect(idle.plant.forcedTemperatureC).toBeNull();
  });

  it('clear all brings every setting back to a healthy plant; clear NAME only that one', async () => {
    const { pen: idle, control: client } = await idlePenUnderControl();
    await client.set('motorLoad', 'jam');
    await client.set('supplyVolts', 9);
    await client.set('temperatureC', 80);
    await client.set('depthSensorFault', 'short');
    await client.set('ntcFault', 'open');
    expect((await client.clear('supplyVolts')).plant).toEqual({
      motorLoad: 'jam', supplyVolts: 12, temperatureC: 80, depthSensorFault: 'short', ntcFault: 'open',
    });
    expect((await client.clearAll()).plant).toEqual(healthyPlant);
    expect(idle.plant).toMatchObject({
      load: motorLoads.nominal, supplyVolts: 12, forcedTemperatureC: null, depthSensorFault: null, ntcFault: null,
    });
  });
});

describe('fitting a new cartridge', () => {
  it('puts a new chip with its own ROM id in the holder, the detect line untouched, and says the id; the pen reads it as unused once refitted', async () => {
    const session = await runningVirtualPen();
    ({ pen, device } = session);
    const { control: client } = await controlOf(session.pen);
    const oldRom = Buffer.from(session.pen.idChips.cartridge.chip?.rom ?? []).toString('hex');
    await session.device.stop();
    const rom = await client.fitNewCartridgeChip();
    expect(rom).toMatch(/^[0-9a-f]{16}$/);
    expect(rom).not.toBe(oldRom);
    expect(Buffer.from(session.pen.idChips.cartridge.chip?.rom ?? []).toString('hex')).toBe(rom);
    expect(session.pen.pinIsHigh('cartridgePresent')).toBe(false);  // still present (active low): the line is the rig's
    session.pen.setInput('cartridgePresent', false);
    await session.pen.clock.sleep(50);
    session.pen.setInput('cartridgePresent', true);
    await session.pen.clock.sleep(description.idChips.settleAfterFitMs + 20);  // the contacts settle, then the pen reads the chip
    const { cartridge } = await session.device.settledParts();
    expect(cartridge).toMatchObject({ rom, used: false });
    expect(await client.request({ fit: 'nosecone' })).toMatchObject({ ok: false, error: '"fit" takes "new-cartridge" (got "nosecone")' });
  });
});

describe('refused requests', () => {
  it('out-of-range and wrongly typed values: the client rejects with the channel\'s words, naming what is allowed', async () => {
    const { pen: idle, control: client } = await idlePenUnderControl();
    await expect(client.set('temperatureC', 300)).rejects.toThrow(
      'temperatureC takes a handpiece temperature of -20–125 °C, or null for the thermal model (got 300); the pen faults above 45 °C, ' +
      'and a broken NTC is ntcFault');
    await expect(client.set('supplyVolts', 48)).rejects.toThrow(
      'supplyVolts takes a supply of 0–20 V, the ADC\'s full scale through the supply divider (got 48); the pen runs within 10.5–13.5 V');
    await expect(client.set('supplyVolts', -1)).rejects.toThrow(/0–20 V.*\(got -1\)/);
    await expect(client.set('motorLoad', 'stuck' as 'jam')).rejects.toThrow(
      'motorLoad takes one of "none", "nominal", "heavy", "jam", or a load torque of 0–0.5 N·m (got "stuck"); jam stalls the motor');
    await expect(client.set('motorLoad', 2)).rejects.toThrow(/0–0\.5 N·m \(got 2\)/);
    await expect(client.set('depthSensorFault', 'broken' as 'open')).rejects.toThrow('depthSensorFault takes one of "open", "short", "none" (got "broken")');
    await expect(client.set('ntcFault', null as unknown as 'open')).rejects.toThrow('ntcFault takes one of "open", "short", "none" (got null)');
    await expect(client.set('temperatureC', '62' as unknown as number)).rejects.toThrow(/\(got "62"\)/);
    await expect(client.set('jam' as PlantSettingName, 1)).rejects.toThrow(
      `"set" takes a plant setting: ${plantSettingNames.join(', ')} (got "jam")`);
    // Nothing refused reached the plant.
    expect((await client.plant()).plant).toEqual(healthyPlant);
    expect(idle.plant.supplyVolts).toBe(12);
    expect(await client.request({ get: 'everything' })).toMatchObject({ ok: false, error: '"get" takes "plant" (got "everything")' });
    expect(await client.request({ clear: 'some' })).toMatchObject({ ok: false, error: expect.stringMatching(/^"clear" takes a plant setting: .* or "all" \(got "some"\)/) as unknown });
    expect(await client.request({ set: 'supplyVolts' })).toMatchObject({ ok: false, error: '"set":"supplyVolts" needs a "value"' });
    expect(await client.request({ set: 'supplyVolts', value: 11, unit: 'V' })).toMatchObject({
      ok: false, error: 'a "set" request takes only "set", "value", "id" (unknown: "unit")',
    });
    expect(await client.request({ set: 'supplyVolts', get: 'plant' })).toMatchObject({ ok: false, error: expect.stringMatching(/exactly one of "set", "get", "clear", "fit" \(got set and get\)/) as unknown });
  });

  it('malformed lines get an error line each, in order, and the channel goes on answering', async () => {
    const { address } = await idlePenUnderControl();
    const raw = await rawClient(address);
    raw.send('hello\n[1,2]\n{}\n\n{"get":"plant","id":7}\r\n');
    const [notJson, array, empty, answered] = await raw.replies(4);
    expect(notJson).toEqual({ ok: false, error: expect.stringMatching(/^not JSON: "hello"; send one JSON object per line, e.g. \{"set":"temperatureC","value":62\}/) as unknown });
    expect(array).toMatchObject({ ok: false, error: expect.stringMatching(/^a request is one JSON object/) as unknown });
    expect(empty).toMatchObject({ ok: false, error: expect.stringMatching(/exactly one of "set", "get", "clear", "fit" \(got none\)/) as unknown });
    expect(answered).toMatchObject({ ok: true, id: 7, plant: healthyPlant });
    raw.send('x'.repeat(5000));
    raw.send('yyy\n{"get":"plant"}\n');
    const [, , , , tooLong, next] = await raw.replies(6);
    expect(tooLong).toMatchObject({ ok: false, error: 'request line longer than 4096 characters: skipped to its end' });
    expect(next).toMatchObject({ ok: true });
  });

  it('serves several clients at once, each in its own order', async () => {
    const { pen: idle, control: first, address } = await idlePenUnderControl();
    const second = await SimControl.open(address);
    try {
      const [a, b] = await Promise.all([first.set('supplyVolts', 11), second.set('ntcFault', 'short')]);
      expect(a.plant.supplyVolts).toBe(11);
      expect(b.plant.ntcFault).toBe('short');
      expect((await second.plant()).plant).toMatchObject({ supplyVolts: 11, ntcFault: 'short' });
      expect(idle.plant.ntcFault).toBe('short');
    } finally {
      await second.close();
    }
  });
});

describe('the client never hangs', () => {
  it('rejects a request that gets no answer within its timeout, and one to an address where nothing listens', async () => {
    // Reads what it is sent and never answers.
    const silent = createServer((socket) => {
      sockets.push(socket);
      socket.resume();
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const bound = silent.address();
    const port = typeof bound === 'object' && bound !== null ? bound.port : 0;
    const client = await SimControl.open(`tcp://127.0.0.1:${port}`, { timeoutMs: 200 });
    const started = performance.now();
    await expect(client.plant()).rejects.toThrow(/no answer from the control channel on tcp:\/\/127\.0\.0\.1:\d+ within 200 ms/);
    expect(performance.now() - started).toBeLessThan(1500);
    await client.close();
    await new Promise((resolve) => silent.close(resolve));
    await expect(SimControl.open(`tcp://127.0.0.1:${port}`)).rejects.toThrow(SimControlError);
    await expect(SimControl.open('/dev/ttyUSB0')).rejects.toThrow('the control channel is on TCP: give tcp://HOST:PORT (got "/dev/ttyUSB0")');
  });
});
