// The HIL suite (`npm run hil`): one suite for the virtual bench and a real one. johnny-five drives the rig board over
// Firmata (hal/rig.ts); the rig presses the pen's switches and watches its motor, tach and stepper lines, and every
// failsafe is timed as the rig sees it, from the stimulus to the motor driver's enable line falling. Each test carries
// the requirement ids it verifies (hardware/requirements.json) and starts from a known state (tests/hil/bench.ts).
//
// The tests run in this order on purpose: a real bench's pen and parts carry over from test to test. The footswitch
// test goes first among the needle runs (the host's session refuses a cartridge whose chip already reads used), and
// the cartridge is pulled last (a pulled and refitted cartridge reads used from then on).
//
// Bounds, as the rig can see them: the firmware turns the motor off within microseconds of an e-stop or cartridge edge
// (in their interrupts) and of a STOP byte; the rig's view adds the host's write reaching the rig (3 bytes at 57 600 baud),
// the rig's loop noticing motorEnable fall and its report coming back, and the host's event loop: a few ms. So the
// bound asserted for them is 50 ms, far above that chain and far below a person's notice; a failsafe that went through
// the host's loop, or did not act, lands far beyond it. The others add their own detection times (see each test).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { pen as description } from '../../hardware/description.ts';
import { PROTOCOL_VERSION } from '../../hardware/generated/protocol.ts';
import { HostRefusedError, PenRefusedError } from '../../hal/device.ts';
import type { PlantSettingName, PlantSettings } from '../../hal/sim-control.ts';
import { TreatmentSession } from '../../src/control/session.ts';
import { PenStore } from '../../src/store/store.ts';
import { refusal } from '../refusal.ts';
import { recordSterileNosecone } from '../sim/registered-parts.ts';
import {
  armingDate, benchRecord, bringToKnownState, figure, identity, motorOffText, notApplicable, openBench, runNeedle, sterilizedNosecone, tachHz,
  timeToMotorOff, type Bench,
} from './bench.ts';

const interruptFailsafeBoundMs = 50;
/** The footswitch pauses through the host session: telemetry period + a loop tick + the stop's round trip, with margin. */
const footswitchBoundMs = 250;
const { heartbeatTimeoutMs } = description.timing;
/** The firmware's speed tolerance, plus what the rig's count adds: ±10 ms of report timing at each end of 2 s. */
const speedWindowMs = 2000;
const speedBoundPercent = description.needleDrive.speedTolerancePercent + (2 * 10 / speedWindowMs) * 100;
const depthAccuracyMm = description.tolerances.depthAccuracyUm / 1000;
/** Plant faults are detected within 500 ms (tests/sim/safety.test.ts, simulated time); the rig adds its own chain. */
const plantFaultBoundMs = 500 + interruptFailsafeBoundMs;

let bench: Bench;
const benchOrThrow = (): Bench => bench;

describe(`the HIL suite on ${process.env['PEN_PORT'] === undefined ? 'the virtual bench' : `the bench on ${process.env['PEN_PORT']}`}`, () => {
  beforeAll(async () => {
    bench = await openBench();
  }, 60_000);
  afterAll(async () => {
    await benchOrThrow().close();
  });
  beforeEach(async () => {
    await bringToKnownState(benchOrThrow());
  }, 30_000);

  describe('identity', () => {
    it('the pen names itself: serial, firmware build, protocol version and calibration', { tags: ['REQ-IDENTITY'] }, async (context) => {
      const { device } = bench;
      const pen = await device.readIdentity();
      const calibration = await device.calibration();
      expect(pen.protocolVersion).toBe(PROTOCOL_VERSION);
      expect(pen.serial).not.toBe('');
      expect(pen.buildId).toMatch(/^[0-9a-f]{8}$/);
      expect(calibration.source).not.toBe('invalid');
      await identity(context, 'bench', benchRecord(bench));
      await identity(context, 'pen', { ...pen, calibration: { ...calibration } });
      await figure(context, `pen ${pen.serial}: ${pen.boardName} firmware ${pen.firmwareVersion} build ${pen.buildId}, protocol ${pen.protocolVersion}, calibration ${calibration.source}`);
    });

    it('the rig identifies itself over Firmata, and its outputs reach the pen\'s inputs', { tags: ['REQ-IDENTITY'] }, async (context) => {
      const { rig, device, gauge } = bench;
      const rigIdentity = rig.identity();
      expect(rigIdentity.protocolVersion).toMatch(/^2\.\d+$/);
      expect(rigIdentity.firmwareName).not.toBe('unknown');
      await identity(context, 'rig', { ...rigIdentity, firmwareFile: bench.addresses.rigFirmware });
      if (gauge !== null) await identity(context, 'gauge', { description: gauge.description, readingAtHomeMm: await gauge.read() });
      await figure(context, `rig: ${rigIdentity.firmwareName} ${rigIdentity.firmwareVersion}, Firmata ${rigIdentity.protocolVersion}, on ${rigIdentity.port}`);
      const inputs = async (): Promise<{ estop: boolean; cartridge: boolean; footswitch: boolean }> => {
        await bench.clock.sleep(30);
        const t = await device.status();
        return { estop: t.estopTripped, cartridge: t.cartridgePresent, footswitch: t.footswitchPressed };
      };
      expect(await inputs()).toEqual({ estop: false, cartridge: true, footswitch: false });
      rig.pressEstop();
      rig.pullCartridge();
      rig.pressFootswitch();
      expect(await inputs()).toEqual({ estop: true, cartridge: false, footswitch: true });
      rig.releaseEstop();
      rig.fitCartridge();
      rig.releaseFootswitch();
      expect(await inputs()).toEqual({ estop: false, cartridge: true, footswitch: false });
    });
  });

  describe('homing and depth', () => {
    it('homes: the rig sees the stepper step deeper on the way out and shallower on the way home, and the pen reports homed', { tags: ['REQ-HOMING'] }, async () => {
      const { device, rig } = bench;
      const out = await rig.stepperDuring(() => device.depth.moveTo(1.0));
      expect(out.stepEdges).toBeGreaterThan(0);
      expect(out.deeperSeen).toBe(true);
      const home = await rig.stepperDuring(() => device.depth.home());
      expect(home.stepEdges).toBeGreaterThan(0);
      expect(home.shallowerSeen).toBe(true);
      expect(await device.status()).toMatchObject({ homed: true, state: 'idle', depthMm: 0 });
    });

    it(`the gauge reads each depth 0.50–2.00 mm within the stated accuracy (±${depthAccuracyMm} mm)`, { tags: ['REQ-DEPTH-ACCURACY'] }, async (context) => {
      const { device, gauge } = bench;
      if (gauge === null) return notApplicable(context, 'no dial gauge on this bench (set GAUGE_PORT)');
      const errorsUm: string[] = [];
      for (const depthMm of [0.5, 1.0, 1.5, 2.0]) {
        await device.depth.moveTo(depthMm);
        await bench.clock.sleep(100);
        const readMm = await gauge.read();
        errorsUm.push(`${depthMm.toFixed(2)} mm: ${((readMm - depthMm) * 1000).toFixed(0)} µm`);
        expect(Math.abs(readMm - depthMm), `gauge ${readMm} mm at ${depthMm} mm`).toBeLessThanOrEqual(depthAccuracyMm);
      }
      await figure(context, `depth error by the gauge (gauge − commanded): ${errorsUm.join(', ')}`);
    });

    it('the depth window: the host refuses 0.49 and 2.01 mm; sent raw, the firmware refuses 0, 499, 2001 and 65535 µm and the stepper never steps; 500 and 2000 µm move', { tags: ['REQ-DEPTH-WINDOW'] }, async () => {
      const { device, rig } = bench;
      for (const depthMm of [0.49, 2.01]) await expect(device.depth.moveTo(depthMm)).rejects.toThrow(HostRefusedError);
      const refused = await rig.stepperDuring(async () => {
        for (const depthUm of [0, 499, 2001, 65535]) expect(await refusal(device.command('move_to', { depthUm })), `${depthUm} µm`).toBe('out_of_range');
      });
      expect(refused.stepEdges).toBe(0);
      expect((await device.status()).depthMm).toBe(0);
      for (const depthUm of [500, 2000]) {
        const moved = await rig.stepperDuring(() => device.depth.moveTo(depthUm / 1000));
        expect(moved.stepEdges, `${depthUm} µm`).toBeGreaterThan(0);
        expect((await device.status()).depthMm).toBeCloseTo(depthUm / 1000, 3);
      }
    });
  });

  describe('refusals', () => {
    it('without a grant the firmware refuses the technician\'s calibration write (role_required) and the calibration stays as it was', { tags: ['REQ-ROLES'] }, async () => {
      const { device } = bench;
      const before = await device.calibration();
      const fields = { stepsPerMmX100: Math.round(before.stepsPerMm * 100) + 1, zeroOffsetUm: Math.round(before.zeroOffsetMm * 1000) };
      expect(await refusal(device.command('set_depth_calibration', fields))).toBe('role_required');
      expect(await device.calibration()).toEqual(before);
    });

    it('the needle does not start unarmed: start_needle sent raw is refused and the rig sees the motor driver stay off', { tags: ['REQ-CARTRIDGE-INTERLOCK'] }, async () => {
      const { device, rig } = bench;
      expect(await refusal(device.command('start_needle', { strokesPerSecond: 100 }))).toBe('not_allowed_in_state');
      await bench.clock.sleep(100);
      expect(rig.motorEnabled()).toBe(false);
    });
  });

  describe('the footswitch', () => {
    it('released: the session pauses the needle, as the rig sees it, within telemetry and loop time', { tags: ['REQ-FOOTSWITCH'] }, async (context) => {
      const { device, rig, clock } = bench;
      // The session's loop sends the heartbeats, as `pen run --footswitch` does.
      device.setHeartbeat(false);
      const store = PenStore.open(':memory:', clock);
      const session = new TreatmentSession(device, { clock, store, target: bench.addresses.description, footswitchControl: true });
      try {
        await session.selfTest();
        await session.home();
        await sterilizedNosecone(bench);
        await recordSterileNosecone(device, store);
        await session.prepare();
        rig.pressFootswitch();
        const done = session.treat({ depthMm: 1.0, strokesPerSecond: 100, durationS: null });
        await Promise.race([
          rig.waitFor(() => rig.motorEnabled(), 3000, 'motorEnable high (the session treating)'),
          done.then((summary) => { throw new Error(`the treatment ended before the needle ran: ${summary.outcome}: ${summary.reason}`); }),
        ]);
        const timing = await timeToMotorOff(bench, () => {
          expect(session.phase).toBe('treating');
          rig.releaseFootswitch();
        }, 1000, 500);
        await figure(context, motorOffText('footswitch released', timing));
        expect(timing.enableOffMs).toBeLessThan(footswitchBoundMs);
        expect(session.phase).toBe('paused');
        await session.stop('test over');
        expect((await done).outcome).toBe('stopped');
      } finally {
        session.close();
        store.close();
      }
    });
  });

  describe('needle speed, counted by the rig on the tach line', () => {
    for (const strokesPerSecond of [50, 100, 150]) {
      it(`${strokesPerSecond} strokes/s: the tach reads within ±${speedBoundPercent.toFixed(1)} % (the firmware's ${description.needleDrive.speedTolerancePercent} % and the rig's count)`, { tags: ['REQ-RATE-ACCURACY'] }, async (context) => {
        await runNeedle(bench, strokesPerSecond);
        await bench.clock.sleep(description.needleDrive.atSpeedTimeoutMs);
        const { hz, rate } = await tachHz(bench, speedWindowMs);
        const penSays = (await bench.device.status()).strokesPerSecond;
        const errorPercent = (hz / strokesPerSecond - 1) * 100;
        await figure(context, `${strokesPerSecond} strokes/s: tach ${hz.toFixed(2)} Hz over ${speedWindowMs / 1000} s, the pen measuring ${penSays.toFixed(1)} (${errorPercent >= 0 ? '+' : ''}${errorPercent.toFixed(2)} %` +
          `${rate === 1 ? '' : `; simulated time, the bench at ${rate.toFixed(2)}× real time`})`);
        expect(Math.abs(errorPercent)).toBeLessThanOrEqual(speedBoundPercent);
      });
    }

    it('outside 50–150 strokes/s: the host refuses 49 and 151; sent raw, the firmware refuses 0, 49, 151 and 65535 and the motor stays off', { tags: ['REQ-RATE-LIMITS'] }, async () => {
      const { device, rig } = bench;
      await runNeedle(bench, 100);
      await device.needle.stop();
      await rig.waitFor(() => !rig.motorEnabled(), 1000, 'motorEnable low after the stop');
      for (const strokesPerSecond of [49, 151]) await expect(device.needle.start(strokesPerSecond)).rejects.toThrow(HostRefusedError);
      for (const strokesPerSecond of [0, 49, 151, 65535]) {
        expect(await refusal(device.command('start_needle', { strokesPerSecond })), `${strokesPerSecond}`).toBe('out_of_range');
      }
      await bench.clock.sleep(100);
      expect(rig.motorEnabled()).toBe(false);
    });
  });

  describe('failsafes, timed by the rig from stimulus to motor off', () => {
    it(`STOP: the motor is off within ${interruptFailsafeBoundMs} ms and the pen is idle, no fault`, { tags: ['REQ-STOP'] }, async (context) => {
      const { device } = bench;
      await runNeedle(bench, 100);
      const timing = await timeToMotorOff(bench, () => { void device.stop(); });
      await figure(context, motorOffText('STOP', timing));
      expect(timing.enableOffMs).toBeLessThan(interruptFailsafeBoundMs);
      expect(await device.status()).toMatchObject({ fault: 'none', needleOn: false });
    });

    it(`heartbeat lost: the pen stops the motor ${heartbeatTimeoutMs} ms after the host falls silent, and latches heartbeat_lost`, { tags: ['REQ-HEARTBEAT'] }, async (context) => {
      const { device } = bench;
      await runNeedle(bench, 100);
      const timing = await timeToMotorOff(bench, () => device.setHeartbeat(false), 2000);
      await figure(context, motorOffText('heartbeat stopped', timing));
      // Silence counts from the last heartbeat, sent at most one period (timeout / 5) before the stimulus.
      expect(timing.enableOffMs).toBeGreaterThan(heartbeatTimeoutMs * 0.8 - interruptFailsafeBoundMs);
      expect(timing.enableOffMs).toBeLessThan(heartbeatTimeoutMs + interruptFailsafeBoundMs);
      expect(await device.status()).toMatchObject({ state: 'fault', fault: 'heartbeat_lost', needleOn: false });
    });

    it(`e-stop: the motor is off within ${interruptFailsafeBoundMs} ms; the fault stays latched after release and refuses arming until cleared`, { tags: ['REQ-ESTOP', 'REQ-FAULT-LATCH'] }, async (context) => {
      const { device, rig } = bench;
      await runNeedle(bench, 100);
      const timing = await timeToMotorOff(bench, () => {
        expect(rig.motorPwmDuty()).toBeGreaterThan(0.05);
        rig.pressEstop();
      });
      await figure(context, motorOffText('e-stop', timing));
      expect(timing.enableOffMs).toBeLessThan(interruptFailsafeBoundMs);
      expect(timing.dutyFallMs).not.toBeNull();
      await device.waitFor((t) => t.fault === 'estop', 1000, 'the e-stop fault');
      expect(await refusal(device.clearFault())).toBe('fault_cause_present');
      rig.releaseEstop();
      await bench.clock.sleep(50);
      expect(await device.status()).toMatchObject({ state: 'fault', fault: 'estop', needleOn: false });
      expect(await refusal(device.command('start_needle', { strokesPerSecond: 100 }))).toBe('not_allowed_in_fault');
      await device.clearFault();
      expect((await device.status()).fault).toBe('none');
    });
  });

  describe('plant faults only the virtual bench can cause (pen sim --control)', () => {
    // causeStays: the pen can still sense the cause with the motor off, so clearing the fault is refused until it goes
    // (a jam shows only as current while the motor runs).
    const plantFaults: readonly { name: string; tag: string; fault: string; causeStays: boolean; set: { [K in PlantSettingName]?: PlantSettings[K] } }[] = [
      { name: 'needle jammed', tag: 'REQ-JAM', fault: 'motor_overcurrent', causeStays: false, set: { motorLoad: 'jam' } },
      { name: 'handpiece at 60 °C', tag: 'REQ-OVERTEMP', fault: 'over_temperature', causeStays: true, set: { temperatureC: 60 } },
      { name: 'depth sensor open', tag: 'REQ-SENSOR-PLAUSIBILITY', fault: 'depth_sensor', causeStays: true, set: { depthSensorFault: 'open' } },
      { name: 'supply sagging to 9 V', tag: 'REQ-SUPPLY', fault: 'supply_out_of_range', causeStays: true, set: { supplyVolts: 9 } },
    ];
    for (const plantFault of plantFaults) {
      it(`${plantFault.name}: the motor is off within ${plantFaultBoundMs} ms, ${plantFault.fault} latched, arming refused until cleared`, { tags: [plantFault.tag, 'REQ-FAULT-LATCH'] }, async (context) => {
        const { device, control } = bench;
        if (control === null) return notApplicable(context, `${plantFault.name} needs the virtual pen's plant (pen sim --control); a real bench cannot cause it safely`);
        await runNeedle(bench, 100);
        const [name, value] = Object.entries(plantFault.set)[0] as [PlantSettingName, PlantSettings[PlantSettingName]];
        const timing = await timeToMotorOff(bench, () => { void control.set(name, value); }, 2000);
        await figure(context, motorOffText(plantFault.name, timing));
        expect(timing.enableOffMs).toBeLessThan(plantFaultBoundMs);
        const t = await device.waitFor((status) => status.state === 'fault', 1000, plantFault.fault);
        expect(t).toMatchObject({ fault: plantFault.fault, needleOn: false });
        expect(await refusal(device.arm(armingDate(bench)))).toBe('not_allowed_in_fault');
        if (plantFault.causeStays) expect(await refusal(device.clearFault())).toBe('fault_cause_present');
        await control.clearAll();
      });
    }
  });

  describe('the cartridge, pulled last', () => {
    it(`pulled while the needle runs: the motor is off within ${interruptFailsafeBoundMs} ms and the pen faults`, { tags: ['REQ-CARTRIDGE-INTERLOCK'] }, async (context) => {
      const { device, rig } = bench;
      await runNeedle(bench, 100);
      const timing = await timeToMotorOff(bench, () => rig.pullCartridge());
      await figure(context, motorOffText('cartridge pulled', timing));
      expect(timing.enableOffMs).toBeLessThan(interruptFailsafeBoundMs);
      expect(timing.dutyFallMs).not.toBeNull();
      const t = await device.waitFor((status) => status.state === 'fault', 1000, 'the cartridge fault');
      expect(t).toMatchObject({ fault: 'cartridge_removed', needleOn: false });
      rig.fitCartridge();
    });

    it('refitted, the used cartridge is refused arming (cartridge_used, naming its id)', { tags: ['REQ-CARTRIDGE-SINGLE-USE'] }, async () => {
      const { device } = bench;
      const { cartridge } = await device.settledParts();
      expect(cartridge.used).toBe(true);
      await device.clearCartridge(cartridge.rom);
      const error = await device.arm(armingDate(bench)).then(() => null, (e: unknown) => e);
      expect(error).toBeInstanceOf(PenRefusedError);
      expect((error as PenRefusedError).code).toBe('cartridge_used');
      expect((error as PenRefusedError).refusedPart).toEqual({ part: 'cartridge', rom: cartridge.rom });
    });

    it('a new cartridge with the nosecone the last session used: arming is refused (nosecone_not_sterilized) until the nosecone is reprocessed', { tags: ['REQ-NOSECONE-STERILE'] }, async (context) => {
      const { device, rig, control } = bench;
      if (control === null) return notApplicable(context, 'fitting a new cartridge needs a person on a real bench (the rig only pulls the detect line)');
      rig.pullCartridge();
      await bench.clock.sleep(100);
      const rom = await control.fitNewCartridgeChip();
      rig.fitCartridge();
      await bench.clock.sleep(300);  // the contacts settle, then the pen reads the new chip
      const { cartridge, nosecone } = await device.settledParts();
      expect(cartridge).toMatchObject({ rom, used: false });
      expect(nosecone.sterilizations).toBeLessThanOrEqual(nosecone.uses);
      await device.depth.moveTo(1.0);
      await device.clearCartridge(rom);
      const error = await device.arm(armingDate(bench)).then(() => null, (e: unknown) => e);
      expect(error).toBeInstanceOf(PenRefusedError);
      expect((error as PenRefusedError).code).toBe('nosecone_not_sterilized');
      expect((error as PenRefusedError).refusedPart).toEqual({ part: 'nosecone', rom: nosecone.rom });
      await sterilizedNosecone(bench);
      await device.arm(armingDate(bench));
      expect((await device.status()).state).toBe('armed');
      await device.disarm();
    });
  });
});
