// The treatment session on virtual time against the virtual pen: the workflow, every refusal, pause/resume,
// rate-limited depth changes, faults stored with their context.
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { PenDevice } from '../../hal/device.ts';
import { PenStore } from '../../src/store/store.ts';
import { SessionRefusedError, TreatmentSession, type SessionOptions } from '../../src/control/session.ts';
import { confirmPenSafe, runDemo } from '../../src/cli/demo.ts';
import { sterilizeFitted } from '../../src/cli/sterilize.ts';
import { SterilizationRegistry } from '../../src/sterilization/registry.ts';
import { testKeys } from '../../hal/auth.ts';
import { recordSterileNosecone } from './registered-parts.ts';
import { armingDateMs } from './virtual-session.ts';
import { pen as description } from '../../hardware/description.ts';
import { PROTOCOL_VERSION } from '../../hardware/generated/protocol.ts';

let pen: VirtualPen;
let device: PenDevice;
let store: PenStore;
let session: TreatmentSession;

async function connectedSession(options: Partial<SessionOptions> = {}): Promise<TreatmentSession> {
  pen = new VirtualPen({ seed: 3 });
  pen.start();
  // The session's loop sends the heartbeats: a stalled loop must starve the pen of them.
  device = await PenDevice.connect(pen.openPort(), { clock: pen.clock, heartbeat: false });
  store = PenStore.open(':memory:', pen.clock);
  session = new TreatmentSession(device, { clock: pen.clock, store, target: 'virtual pen', ...options });
  return session;
}

async function readySession(options: Partial<SessionOptions> = {}): Promise<TreatmentSession> {
  const session = await connectedSession(options);
  await session.selfTest();
  await session.home();
  await recordSterileNosecone(device, store);
  await session.prepare();
  return session;
}

/** Reprocesses the fitted nosecone as `pen sterilize` does: its tally burnt through the reprocessing role (the pen given a SIM- serial for the test keys), the cycle recorded. */
async function recordSterilization(): Promise<void> {
  await device.waitFor((t) => !t.moving, 2000, 'the stepper still');  // the pen answers service commands only then
  if (device.identity.serial === '') await device.provision('SIM-SESSION', testKeys);
  const { nosecone } = await device.settledParts();
  await sterilizeFitted(device, store, {
    partIds: [nosecone.rom], cycle: '134C-3min-prevac', sterilizerId: 'TEST-AC', loadNumber: 2, chemicalIndicator: 'pass', biologicalIndicator: 'pending', operator: 'test',
  });
}

afterEach(async () => {
  session.close();
  await device.close();
  await pen.stop();
  store.close();
});

describe('the workflow', () => {
  it('runs a full session: self-test, home, treatment for its duration, pen safe at the end, all recorded', { tags: ['REQ-RECORDS-DURABLE'] }, async () => {
    const session = await readySession();
    const phases: string[] = [];
    session.onEvent((event) => { if (event.kind === 'phase') phases.push(event.phase); });
    const summary = await session.treat({ depthMm: 1.0, strokesPerSecond: 100, durationS: 2 });
    expect(summary).toMatchObject({ outcome: 'completed', depthMm: 1.0, strokesPerSecond: 100, faults: [] });
    expect(summary.needleSeconds).toBeGreaterThanOrEqual(2);
    expect(summary.needleSeconds).toBeLessThan(2.05);
    expect(summary.strokes).toBeGreaterThan(150);
    expect(phases).toEqual(['treating', 'ended']);
    expect(pen.plant.motorDrive()).toBe(0);
    await pen.clock.sleep(400);
    expect(pen.plant.carriageMm).toBeLessThanOrEqual(1 / 1600);
    expect(store.sessionOutcome(summary.sessionId)).toBe('completed');
    const commands = store.auditLog().map((entry) => entry.command).reverse();
    expect(commands).toEqual(['home', 'clear_cartridge', 'move_to', 'arm', 'start_needle', 'stop']);
    expect(summary.loop.ticks).toBeGreaterThan(190);
  });

  it('pauses and resumes from the footswitch, counting only needle time', { tags: ['REQ-FOOTSWITCH'] }, async () => {
    const session = await readySession({ footswitchControl: true });
    pen.setInput('footswitch', true);
    await pen.clock.sleep(60);
    const done = session.treat({ depthMm: 0.8, strokesPerSecond: 80, durationS: 1.5 });
    await pen.clock.sleep(700);
    pen.setInput('footswitch', false);
    await pen.clock.sleep(300);
    expect(session.phase).toBe('paused');
    expect(pen.plant.motorDrive()).toBe(0);
    await pen.clock.sleep(500);
    pen.setInput('footswitch', true);
    const summary = await done;
    expect(summary.outcome).toBe('completed');
    expect(summary.needleSeconds).toBeGreaterThanOrEqual(1.5);
    const reasons = store.auditLog().map((entry) => `${entry.command}:${JSON.stringify(entry.arguments['reason'] ?? '')}`);
    expect(reasons).toContain('stop_needle:"pause"');
    expect(reasons).toContain('start_needle:"resume"');
  });

  it('changes depth during treatment no faster than the depth rate', async () => {
    const session = await readySession({ depthRateMmPerSecond: 0.5 });
    const done = session.treat({ depthMm: 0.6, strokesPerSecond: 100, durationS: 3 });
    await pen.clock.sleep(500);
    const startMs = pen.clock.nowMs();
    session.setDepth(1.6);
    const depths: { atMs: number; mm: number }[] = [];
    for (let i = 0; i < 25; i++) {
      await pen.clock.sleep(100);
      depths.push({ atMs: pen.clock.nowMs() - startMs, mm: pen.plant.trueDepthMm });
    }
    for (const sample of depths) expect(sample.mm).toBeLessThanOrEqual(0.6 + 0.5 * (sample.atMs / 1000) + 0.03);
    expect(depths.at(-1)?.mm).toBeCloseTo(1.6, 2);
    expect((await done).outcome).toBe('completed');
  });
});

describe('every refusal names its cause', () => {
  it('before homing, without a cartridge, and outside the window or range', { tags: ['REQ-HOST-REFUSAL', 'REQ-DEPTH-WINDOW', 'REQ-RATE-LIMITS'] }, async () => {
    const session = await connectedSession();
    const plan = { depthMm: 1.0, strokesPerSecond: 100, durationS: 1 };
    await expect(session.treat(plan)).rejects.toThrow(new SessionRefusedError('not homed'));
    await expect(session.prepare()).rejects.toThrow('not homed');
    await session.home();
    await recordSterileNosecone(device, store);
    await expect(session.treat(plan)).rejects.toThrow('cartridge not cleared for use: prepare the session first');
    pen.setInput('cartridgePresent', false);
    await pen.clock.sleep(5);
    await expect(session.prepare()).rejects.toThrow('cartridge missing');
    await expect(session.treat(plan)).rejects.toThrow('cartridge missing');
    pen.setInput('cartridgePresent', true);
    await session.prepare();
    await expect(session.treat({ ...plan, depthMm: 2.3 })).rejects.toThrow('depth 2.30 mm is outside 0.50–2.00 mm');
    await expect(session.treat({ ...plan, depthMm: 0.4 })).rejects.toThrow('depth 0.40 mm is outside 0.50–2.00 mm');
    await expect(session.treat({ ...plan, strokesPerSecond: 170 })).rejects.toThrow('speed 170 strokes/s is outside 50–150 strokes/s');
    await expect(session.treat({ ...plan, durationS: -1 })).rejects.toThrow('duration -1 s is outside 0–3600 s');
    expect(() => { session.pause(); }).toThrow('cannot pause: the session is ready');
    expect(() => { session.setDepth(1.2); }).toThrow('no treatment is running');
    expect(pen.plant.motorDrive()).toBe(0);
    expect(pen.plant.deepestCarriageMm).toBeLessThan(0.01);
  });

  it('refuses a second treatment while one runs, and refuses self-test with a fault latched', { tags: ['REQ-HOST-REFUSAL'] }, async () => {
    const session = await readySession();
    const done = session.treat({ depthMm: 1.0, strokesPerSecond: 100, durationS: 1 });
    await pen.clock.sleep(100);
    await expect(session.treat({ depthMm: 1.0, strokesPerSecond: 100, durationS: 1 })).rejects.toThrow('a treatment is already running');
    pen.setInput('estop', true);
    const summary = await done;
    expect(summary.outcome).toBe('faulted');
    await expect(session.selfTest()).rejects.toThrow(/self-test failed: fault estop latched.*; e-stop tripped/);
  });
});

describe('the fitted parts', () => {
  const plan = { depthMm: 1.0, strokesPerSecond: 100, durationS: 0.5 };

  it('records both part ids with the session, and the registry counts it as a use of each', { tags: ['REQ-RECORDS-DURABLE', 'REQ-CARTRIDGE-SINGLE-USE'] }, async () => {
    const session = await readySession();
    const { cartridge, nosecone } = await device.settledParts();
    const summary = await session.treat(plan);
    expect(summary.outcome).toBe('completed');
    const registry = new SterilizationRegistry(store);
    for (const id of [cartridge.rom, nosecone.rom]) expect(store.parts.uses(id).map((use) => use.sessionId)).toEqual([summary.sessionId]);
    expect(registry.status(cartridge.rom)).toMatchObject({ condition: 'used', ready: false });
    expect(registry.status(nosecone.rom)).toMatchObject({ condition: 'used_since_sterilized', ready: false });
    const cleared = store.auditLog().find((entry) => entry.command === 'clear_cartridge');
    expect(cleared?.arguments).toMatchObject({ cartridgeRom: cartridge.rom, noseconeRom: nosecone.rom });
    // The pen burnt both marks as the needle first started.
    expect(await device.settledParts()).toMatchObject({ cartridge: { used: true }, nosecone: { uses: 1, unusedSinceSterilization: false } });
  });

  it('refuses on the host, naming each part, its id, why and what to do: a used cartridge, then a used nosecone', { tags: ['REQ-CARTRIDGE-SINGLE-USE', 'REQ-NOSECONE-STERILE', 'REQ-HOST-REFUSAL'] }, async () => {
    const session = await readySession();
    const { cartridge, nosecone } = await device.settledParts();
    const { sessionId } = await session.treat(plan);
    const auditedBefore = store.auditLog().length;
    const usedNosecone = new RegExp(`nosecone ${nosecone.rom}: used in session ${sessionId} \\(.*\\) since its last cycle .*: reprocess it ` +
      `\\(pen sterilize --part ${nosecone.rom} --cycle NAME --sterilizer ID --load N --indicator pass --operator NAME\\)`);
    const refusal = session.prepare();
    await expect(refusal).rejects.toThrow(SessionRefusedError);
    await expect(refusal).rejects.toThrow(new RegExp(`^cartridge ${cartridge.rom}: used in session ${sessionId} \\(.*\\): cartridges are single-use; fit a new one; `));
    await expect(refusal).rejects.toThrow(usedNosecone);
    await pen.fitNewCartridge();
    await session.recover();  // the pen latched cartridge_removed as the old one came out
    const onlyNosecone = session.prepare();
    await expect(onlyNosecone).rejects.toThrow(new RegExp(`^${usedNosecone.source}$`));
    // Nothing reached the pen: no clearance asked, none given.
    expect(store.auditLog().slice(0, store.auditLog().length - auditedBefore).map((entry) => entry.command)).not.toContain('clear_cartridge');
    expect(device.telemetry?.cartridgeCleared).toBe(false);
    await expect(session.treat(plan)).rejects.toThrow('cartridge not cleared for use: prepare the session first');
    await recordSterilization();
    const again = await session.prepare();
    expect(again.nosecone.status).toMatchObject({ id: nosecone.rom, condition: 'ready' });
    expect(again.cartridge.status.id).not.toBe(cartridge.rom);
    expect((await session.treat(plan)).outcome).toBe('completed');
  });

  it('refuses a cartridge other than the one asked for, and a chip that does not read', { tags: ['REQ-PART-CHIP-INTEGRITY'] }, async () => {
    const session = await connectedSession();
    await session.home();
    await recordSterileNosecone(device, store);
    const { cartridge } = await device.settledParts();
    await expect(session.prepare('2d0000000000beef')).rejects.toThrow(`the fitted cartridge is ${cartridge.rom}, not 2d0000000000beef`);
    await expect(session.prepare('12345')).rejects.toThrow('part id "12345" is not 16 hex digits');
    pen.idChips.nosecone.fit(null);
    await device.parts(['nosecone']);
    await expect(session.prepare()).rejects.toThrow(/^the nosecone's ID chip does not read good: .* \(absent\): check the nosecone is seated/);
  });
});

describe('faults during treatment', () => {
  it('a pen fault ends the treatment safely and is stored with its context', { tags: ['REQ-RECORDS-DURABLE', 'REQ-FAULT-LATCH'] }, async () => {
    const session = await readySession();
    const done = session.treat({ depthMm: 1.2, strokesPerSecond: 120, durationS: 5 });
    await pen.clock.sleep(1000);
    pen.plant.setLoad('jam');
    const summary = await done;
    expect(summary).toMatchObject({ outcome: 'faulted', faults: ['pen:motor_overcurrent'] });
    expect(summary.reason).toMatch(/pen fault motor_overcurrent/);
    expect(pen.plant.motorDrive()).toBe(0);
    const [fault] = store.faults();
    expect(fault).toMatchObject({ source: 'pen', code: 'motor_overcurrent', sessionId: summary.sessionId });
    expect(fault?.context['depthMm']).toBeCloseTo(1.2, 2);
    expect(session.phase).toBe('faulted');
    // Recovery: the jam cleared, the fault clears, and a new treatment may start after preparing again.
    pen.plant.setLoad('nominal');
    await session.recover();
    expect(session.phase).toBe('homed');
    // A new cartridge for the new treatment, and the nosecone reprocessed: the jammed session used both.
    await pen.fitNewCartridge();
    await session.recover();  // cartridge_removed, as the jammed one came out
    await recordSterilization();
    await session.prepare();
    expect((await session.treat({ depthMm: 1.0, strokesPerSecond: 100, durationS: 0.5 })).outcome).toBe('completed');
  });

  it('a lost link ends the treatment with the reason, and the pen goes safe on its own', { tags: ['REQ-LINK-LOSS', 'REQ-HEARTBEAT'] }, async () => {
    const session = await readySession();
    const done = session.treat({ depthMm: 1.0, strokesPerSecond: 100, durationS: 5 });
    await pen.clock.sleep(1000);
    pen.setLinkFaults({ dropProbability: 1 });
    const summary = await done;
    expect(summary).toMatchObject({ outcome: 'faulted', faults: ['host:link_lost'] });
    expect(summary.reason).toMatch(/link lost/);
    await pen.clock.sleep(300);
    expect(pen.plant.motorDrive()).toBe(0);
    expect(store.faults()[0]).toMatchObject({ source: 'host', code: 'link_lost' });
  });

  it('a host plausibility check stops the pen before the firmware would', { tags: ['REQ-HOST-SUPERVISION'] }, async () => {
    const session = await readySession();
    pen.plant.setLoad('heavy');
    const done = session.treat({ depthMm: 1.0, strokesPerSecond: 150, durationS: 5 });
    // Counted from the needle's start, which waits while the pen burns the parts' marks.
    await device.waitFor((t) => t.needleOn, 3000, 'the needle running');
    await pen.clock.sleep(2000);
    // A sagging supply, still inside its range: the motor cannot hold 150 strokes/s any more.
    pen.plant.supplyVolts = 10.6;
    const summary = await done;
    expect(summary).toMatchObject({ outcome: 'faulted', faults: ['host:speed_mismatch'] });
    expect(summary.reason).toMatch(/host check speed_mismatch: needle at 1[0-4]\d\.\d strokes\/s, commanded 150/);
    expect(store.faults()[0]).toMatchObject({ source: 'host', code: 'speed_mismatch' });
    expect(pen.plant.motorDrive()).toBe(0);
  });
});

describe('the self-test checks the firmware', () => {
  /** Self-tests the pen through a second session on the same device (closed after), with these options. */
  async function selfTestWith(options: Partial<SessionOptions>): Promise<unknown> {
    const other = new TreatmentSession(device, { clock: pen.clock, store, target: 'virtual pen', ...options });
    try {
      return await other.selfTest();
    } finally {
      other.close();
    }
  }

  it('passes for the firmware this host carries, naming protocol, board, firmware and build', { tags: ['REQ-IDENTITY'] }, async () => {
    const session = await connectedSession();
    const { buildId } = device.identity;
    const firmware = description.board.firmwareVersion.join('.');
    expect((await session.selfTest())[0]).toEqual({
      name: 'protocol', ok: true, detail: `version ${PROTOCOL_VERSION}, ${description.board.name} firmware ${firmware} build ${buildId}`,
    });
    expect(await selfTestWith({ expectedBuildId: buildId.toUpperCase() })).toHaveLength(6);
  });

  it('fails for another build, another firmware version, board or protocol version, naming the mismatch', { tags: ['REQ-IDENTITY'] }, async () => {
    await connectedSession();
    const { buildId } = device.identity;
    await expect(selfTestWith({ expectedBuildId: '0badc0de' }))
      .rejects.toThrow(new SessionRefusedError(`self-test failed: protocol the pen runs build ${buildId}, expected 0badc0de`));
    const identity = device.identity;
    const pretend = (changes: Partial<typeof identity>): void => {
      Object.defineProperty(device, 'identity', { value: { ...identity, ...changes }, configurable: true });
    };
    pretend({ firmwareVersion: '0.0.9' });
    await expect(selfTestWith({})).rejects.toThrow(/^self-test failed: protocol the pen runs firmware 0\.0\.9, this host carries 0\.1\.0$/);
    pretend({ boardName: 'pen-r0' });
    await expect(selfTestWith({})).rejects.toThrow(/^self-test failed: protocol the pen is a pen-r0, this host drives a pen-r1a$/);
    pretend({ protocolVersion: PROTOCOL_VERSION + 1 });
    await expect(selfTestWith({})).rejects.toThrow(
      `self-test failed: protocol the pen speaks protocol version ${PROTOCOL_VERSION + 1}, this host ${PROTOCOL_VERSION}`,
    );
    expect(pen.plant.motorDrive()).toBe(0);
  });
});

describe('the demo (npm start)', () => {
  it('reports what the pen\'s telemetry says after the jam and the second pass, the pen safe both times', { tags: ['REQ-JAM'] }, async () => {
    await connectedSession();  // the test's own pen, device and store; the demo runs its own session on them
    const lines: string[] = [];
    const output = { live: (): void => {}, line: (text: string): void => { lines.push(text); } };
    const target = { device, where: 'the in-process virtual pen', virtualPen: pen, close: (): Promise<void> => Promise.resolve() };
    const result = await runDemo(target, ':memory:', output);
    expect(result.passes.map((pass) => pass.outcome)).toEqual(['faulted', 'completed']);
    const safe = /telemetry: needle off, motor \d+ mA, depth -?0\.00\d mm \(sensor -?0\.0\d\d mm\)/;
    expect(lines.find((line) => line.startsWith('4. '))).toMatch(/^4\. jam: the pen went safe \(faulted: pen fault motor_overcurrent/);
    expect(lines.find((line) => line.startsWith('4. '))).toMatch(safe);
    expect(lines.find((line) => line.startsWith('7. '))).toMatch(/^7\. completed: /);
    expect(lines.find((line) => line.startsWith('7. '))).toMatch(safe);
    // Both sessions used fitted parts the registry accepted, and the nosecone was reprocessed between them.
    const text = lines.join('\n');
    expect(text).toMatch(/^3\. fitted parts:\n2d[0-9a-f]{14} {2}cartridge {2}ready .*\n.*\n2d[0-9a-f]{14} {2}nosecone {3}ready /m);
    expect(text).toMatch(/nosecone 2d[0-9a-f]{14} is not ready \(no sterilization cycle on record: sterilize it before use\): sterilizing it first/);
    expect(text).toMatch(/^5\. .*\n2d[0-9a-f]{14} {2}cartridge {2}used .*\n {4}NOT READY: used in session 1 .*\n2d[0-9a-f]{14} {2}nosecone {3}used since sterilized/m);
    expect(text).toMatch(/the technician fits a new cartridge, 2d[0-9a-f]{14}, and reprocesses the nosecone:\n {3}sterilized nosecone 2d[0-9a-f]{14} on the virtual pen: cycle 2, 134C-3min-prevac .* by demo\n {5}chip: sterilization tally 2 → 3, burnt through the reprocessing role/);
    expect(text).toMatch(/^6\. fitted parts:\n2d[0-9a-f]{14} {2}cartridge {2}ready .*\n.*\n2d[0-9a-f]{14} {2}nosecone {3}ready /m);
    expect(pen.plant.motorDrive()).toBe(0);
  });

  it('fails loudly when telemetry says the motor is on, or the needle is not home', async () => {
    await readySession();
    await device.depth.moveTo(1.0);
    await device.arm(armingDateMs);
    await device.needle.start(100);
    await pen.clock.sleep(300);
    await expect(confirmPenSafe(device, 'check')).rejects.toThrow(/^check: the needle motor is NOT off; telemetry: needle ON at \d+\.\d strokes\/s/);
    await device.needle.stop();
    await expect(confirmPenSafe(device, 'check')).rejects.toThrow(/^check: the needle is NOT home; telemetry: needle off, .*depth 1\.000 mm/);
    await device.stop();
    expect(await confirmPenSafe(device, 'check')).toMatch(/^telemetry: needle off, motor \d+ mA, depth -?0\.00\d mm/);
  });
});
