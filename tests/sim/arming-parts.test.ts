// Arming against the parts' ID chips, through the wire, as a hostile host would try it: every arm refusal with its own
// code, part and ROM id; clear_cartridge against ids one bit off; a session's one-way marks (parts_busy, then the
// motor), re-arming in the same fitting, a cartridge put back, a nosecone that needs reprocessing; a mark that fails;
// an MCU reset at instants across the whole burn; every host message id with hostile payloads; STOP and the e-stop in
// the middle of a burn. A watch on the motor driver's pins (every write, to the cycle) fails a test whose motor is on
// outside RUNNING.
import { afterEach, describe, expect, it } from 'vitest';
import { portBConfig, portCConfig, portDConfig, type CPU } from 'avr8js';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { seededRandom } from '../../hardware/sim/plant.ts';
import { IdChip } from '../../hardware/sim/id-chip.ts';
import { pen as description, pins } from '../../hardware/description.ts';
import { PenDevice, PenRefusedError } from '../../hal/device.ts';
import { dayNumber, type Parts } from '../../hal/parts.ts';
import { decodeMessage, encodeMessage, type Message } from '../../hal/link/codec.ts';
import {
  ErrorCode, Fault, FRAME_MAX_BYTES, FRAME_MIN_BYTES, FRAME_STOP, FrameKind, PartStatus, PenState, PROTOCOL_VERSION, Role, WriteResult, messageSpecs,
  type HostMessageName, type MessageFields,
} from '../../hardware/generated/protocol.ts';
import { RawClient } from './raw-client.ts';
import { armingDateMs, homedVirtualPen } from './virtual-session.ts';

const layout = description.idChips.layout;
const cycleLimit = description.idChips.noseconeCycleLimit;
const earliestDay = description.idChips.earliestHostDay;
const dayMs = 86_400_000;
/** Noon UTC of a day number (days since 2000-01-01), for the HAL's arm(dateMs). */
const dateOfDay = (day: number): number => Date.UTC(2000, 0, 1) + day * dayMs + dayMs / 2;
const armingDay = dayNumber(armingDateMs);
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
/** The fresh cartridges' expiry: 2030-01-01. */
const expiryDay = 10958;
const fieldBytes = { u8: 1, u16: 2, u32: 4, i16: 2, i32: 4, char8: 8, char16: 16, bytes8: 8, bytes16: 16, bytes32: 32 } as const;

let pen: VirtualPen | null = null;
let device: PenDevice | null = null;
afterEach(async () => {
  await device?.close();
  device = null;
  await pen?.stop();
  pen = null;
});

function thePen(): VirtualPen {
  if (pen === null) throw new Error('no pen');
  return pen;
}

function theDevice(): PenDevice {
  if (device === null) throw new Error('no device');
  return device;
}

/**
 * Watches the motor driver on every write to its pins' PORT and DDR registers and to the firmware's state variable, on
 * each MCU the pen runs (attach() after a reset): whenever such a write leaves the driver on (drive above 0) in a state
 * other than RUNNING, the state must be RUNNING 2000 cycles (125 µs) later, the time start_needle takes from turning the
 * driver on to entering RUNNING. So the motor never comes on, nor stays on, outside RUNNING.
 */
class MotorWatch {
  readonly violations: string[] = [];
  /** Times the driver came on (drive above 0). */
  onEdges = 0;
  private cpu: CPU | null = null;
  private wasOn = false;
  private readonly stateAddress: number;

  constructor(private readonly pen: VirtualPen) {
    this.stateAddress = pen.ramAddress('state');
    this.attach();
  }

  get state(): number {
    return this.pen.mcu.data[this.stateAddress] ?? 0;
  }

  private get on(): boolean {
    return this.pen.plant.motorDrive() > 0;
  }

  /** Hooks the MCU now running (a reset builds a new one); idempotent. */
  attach(): void {
    const cpu = this.pen.mcu;
    if (cpu === this.cpu) return;
    this.cpu = cpu;
    this.wasOn = this.on;
    const port = { B: portBConfig, C: portCConfig, D: portDConfig }[pins.motorEnable.port];
    for (const address of [port.PORT, port.DDR, this.stateAddress]) {
      const original = cpu.writeHooks[address];
      cpu.writeHooks[address] = (value, oldValue, hooked, mask) => {
        if (original?.(value, oldValue, hooked, mask) !== true) cpu.data[hooked] = value;
        this.check(cpu);
        return true;
      };
    }
  }

  /** The MCU hooked is the one running (no reset went by unwatched), and nothing was seen amiss. */
  expectClean(): void {
    expect(this.cpu === this.pen.mcu, 'an MCU reset went by without the motor watch attached').toBe(true);
    expect(this.violations).toEqual([]);
  }

  private check(cpu: CPU): void {
    if (cpu !== this.pen.mcu) return;
    const on = this.on;
    if (on && !this.wasOn) this.onEdges++;
    this.wasOn = on;
    if (on && this.state !== PenState.running) {
      const at = this.pen.simTimeMs;
      cpu.addClockEvent(() => {
        if (cpu !== this.pen.mcu) return;
        if (this.state !== PenState.running) this.violations.push(`motor on at ${at.toFixed(3)} ms in state ${this.state}, still not RUNNING 125 µs later`);
      }, 2000);
    }
  }
}

/** The error a command was refused with (fails unless it was a PenRefusedError). */
async function refusedWith(attempt: Promise<unknown>): Promise<PenRefusedError> {
  const error = await attempt.then(() => null, (e: unknown) => e);
  expect(error).toBeInstanceOf(PenRefusedError);
  return error as PenRefusedError;
}

/** The parts once the pen has read them (after a fitting, a reset or a reread), none unknown. */
async function settled(): Promise<Parts> {
  const p = thePen();
  await p.clock.sleep(5);
  for (let tries = 0; ; tries++) {
    const parts = await theDevice().settledParts();
    if (parts.cartridge.status !== 'unknown' && parts.nosecone.status !== 'unknown') return parts;
    if (tries > 100) throw new Error(`the parts stay unknown: ${JSON.stringify(parts)}`);
    await p.clock.sleep(20);
  }
}

/** Pulls the cartridge (switch open, chip gone) and fits chip; the parts as read then. */
async function refitCartridge(chip: IdChip | null): Promise<Parts> {
  const p = thePen();
  p.setInput('cartridgePresent', false);
  p.idChips.cartridge.fit(null);
  await p.clock.sleep(50);
  p.idChips.cartridge.fit(chip);
  p.setInput('cartridgePresent', true);
  return settled();
}

/** Swaps the nosecone's chip (it has no switch) and has it read. */
async function refitNosecone(chip: IdChip | null): Promise<Parts> {
  thePen().idChips.nosecone.fit(chip);
  await theDevice().parts(['nosecone']);
  return settled();
}

const cartridgeChip = (serial: bigint, options: { date?: number; used?: boolean } = {}): IdChip =>
  IdChip.part({ kind: 'cartridge', lot: 0x00c0ffee, date: options.date ?? expiryDay, used: options.used ?? false }, serial);
const noseconeChip = (serial: bigint, sterilizations = 1, uses = 0): IdChip =>
  IdChip.part({ kind: 'nosecone', lot: 0x000a1b2c, date: 8766, sterilizations, uses }, serial);

/** A provisioned pen connected through the HAL, homed, at 0.5 mm (inside the window), its parts read; the motor watched. */
async function readyPen(seed: number): Promise<{ p: VirtualPen; d: PenDevice; watch: MotorWatch; parts: Parts }> {
  const session = await homedVirtualPen(seed);
  pen = session.pen;
  device = session.device;
  const watch = new MotorWatch(pen);
  await device.depth.moveTo(0.5);
  const parts = await settled();
  expect([parts.cartridge.status, parts.nosecone.status]).toEqual(['ok', 'ok']);
  return { p: pen, d: device, watch, parts };
}

/** Idle, motor off (pins and telemetry), nothing seen amiss by the watch. */
async function expectIdleMotorOff(watch: MotorWatch): Promise<void> {
  const telemetry = await theDevice().status();
  expect(telemetry).toMatchObject({ state: 'idle', needleOn: false });
  expect(thePen().plant.motorDrive()).toBe(0);
  watch.expectClean();
}

/** The refusal of arm for a part, checked against what get_parts says of that part. */
async function expectArmRefused(day: number, code: string, part: 'cartridge' | 'nosecone', detail: number, watch: MotorWatch): Promise<void> {
  const d = theDevice();
  const parts = await d.settledParts();
  const error = await refusedWith(d.arm(dateOfDay(day)));
  expect({ code: error.code, detail: error.detail, refusedPart: error.refusedPart }).toEqual({ code, detail, refusedPart: { part, rom: parts[part].rom } });
  await expectIdleMotorOff(watch);
}

async function armsAndDisarms(day: number, watch: MotorWatch): Promise<void> {
  const d = theDevice();
  await d.arm(dateOfDay(day));
  expect(d.telemetry?.state).toBe('armed');
  await d.disarm();
  await expectIdleMotorOff(watch);
}

/** A homed pen whose port a raw host took over from the HAL (as a hostile host would talk), the needle at 0.5 mm. */
async function rawHostAt500um(seed: number): Promise<{ p: VirtualPen; host: RawHost; watch: MotorWatch; parts: MessageFields['parts'] }> {
  const homed = await homedVirtualPen(seed);
  pen = homed.pen;
  await homed.device.close();
  const p = pen;
  const host = await RawHost.connect(p);
  const watch = new MotorWatch(p);
  expect(await host.code('move_to', { depthUm: 500 })).toBe('ok');
  await host.wait(300);
  return { p, host, watch, parts: await host.settledParts() };
}

describe('arming refused for each part, with its own code, the part and its ROM id', () => {
  it('refuses a cartridge chip absent with the switch closed (cartridge_unreadable, absent), a used one (cartridge_used), one past its expiry (arms on the expiry day, cartridge_expired the day after)', { tags: ['REQ-CARTRIDGE-SINGLE-USE', 'REQ-CARTRIDGE-EXPIRY', 'REQ-PART-CHIP-INTEGRITY'] }, async () => {
    const { p, d, watch, parts } = await readyPen(21);
    // Absent: cleared while read good, then the chip gone with the switch still closed, and read again.
    await d.clearCartridge(parts.cartridge.rom);
    p.idChips.cartridge.fit(null);
    await d.parts(['cartridge']);
    const absent = await settled();
    expect(absent.cartridge).toMatchObject({ status: 'absent', rom: '' });
    expect((await d.status()).cartridgeCleared).toBe(true);
    await expectArmRefused(armingDay, 'cartridge_unreadable', 'cartridge', PartStatus.absent, watch);

    // A cartridge whose used mark is burnt (all eight bits of its byte).
    const used = cartridgeChip(0x7101n, { used: true });
    const withUsed = await refitCartridge(used);
    expect(withUsed.cartridge).toMatchObject({ status: 'ok', rom: hex(used.rom), used: true });
    await d.clearCartridge(withUsed.cartridge.rom);
    await expectArmRefused(armingDay, 'cartridge_used', 'cartridge', 8, watch);

    // Expiring on armingDay + 3: that day arms, the next is refused with the expiry as detail.
    const expiring = cartridgeChip(0x7102n, { date: armingDay + 3 });
    const withExpiring = await refitCartridge(expiring);
    expect(withExpiring.cartridge).toMatchObject({ status: 'ok', rom: hex(expiring.rom), expiryDay: armingDay + 3, used: false });
    await d.clearCartridge(withExpiring.cartridge.rom);
    await armsAndDisarms(armingDay + 3, watch);
    await expectArmRefused(armingDay + 4, 'cartridge_expired', 'cartridge', armingDay + 3, watch);
    // Nothing was burnt by arming.
    expect([expiring.stats.copies, p.idChips.nosecone.chip?.stats.copies]).toEqual([0, 0]);
    expect(watch.onEdges).toBe(0);
  });

  it('refuses a nosecone never sterilized, used since its latest sterilization, at 200 cycles (199 arms), and its chip absent', { tags: ['REQ-NOSECONE-STERILE', 'REQ-NOSECONE-CYCLE-LIMIT', 'REQ-PART-CHIP-INTEGRITY'] }, async () => {
    const { p, d, watch, parts } = await readyPen(22);
    await d.clearCartridge(parts.cartridge.rom);

    const never = noseconeChip(0x7201n, 0, 0);
    expect((await refitNosecone(never)).nosecone).toMatchObject({ status: 'ok', rom: hex(never.rom), sterilizations: 0, unusedSinceSterilization: false });
    await expectArmRefused(armingDay, 'nosecone_not_sterilized', 'nosecone', 0, watch);

    const usedSince = noseconeChip(0x7202n, 3, 3);
    expect((await refitNosecone(usedSince)).nosecone).toMatchObject({ status: 'ok', sterilizations: 3, uses: 3, unusedSinceSterilization: false });
    await expectArmRefused(armingDay, 'nosecone_not_sterilized', 'nosecone', 3, watch);

    const atLimit = noseconeChip(0x7203n, cycleLimit, cycleLimit - 1);
    expect((await refitNosecone(atLimit)).nosecone).toMatchObject({ status: 'ok', sterilizations: cycleLimit, unusedSinceSterilization: true });
    await expectArmRefused(armingDay, 'nosecone_at_limit', 'nosecone', cycleLimit, watch);

    const underLimit = noseconeChip(0x7204n, cycleLimit - 1, cycleLimit - 2);
    expect((await refitNosecone(underLimit)).nosecone).toMatchObject({ status: 'ok', sterilizations: cycleLimit - 1, unusedSinceSterilization: true });
    await armsAndDisarms(armingDay, watch);

    const absent = await refitNosecone(null);
    expect(absent.nosecone).toMatchObject({ status: 'absent', rom: '' });
    await expectArmRefused(armingDay, 'nosecone_unreadable', 'nosecone', PartStatus.absent, watch);
    expect([never, usedSince, atLimit, underLimit].map((chip) => chip.stats.copies)).toEqual([0, 0, 0, 0]);
    expect(p.idChips.cartridge.chip?.stats.copies).toBe(0);
    expect(watch.onEdges).toBe(0);
  });

  it('takes the host date through raw frames at its integer extremes: 0 and 9496 out_of_range, 9497 arms, 65535 expired', { tags: ['REQ-CARTRIDGE-EXPIRY'] }, async () => {
    const { p, host, watch, parts } = await rawHostAt500um(23);
    const rom = parts.cartridgeRom;
    expect(parts.cartridgeStatus).toBe(PartStatus.ok);
    expect(await host.code('clear_cartridge', { cartridgeRom: rom })).toBe('ok');

    for (const todayDay of [0, earliestDay - 1]) {
      // The host's date, not a part's: a plain error, naming no part.
      expect(await host.send('arm', { todayDay })).toMatchObject({ name: 'error', fields: { code: ErrorCode.out_of_range, detail: todayDay } });
      expect((await host.telemetry()).state).toBe(PenState.idle);
    }
    expect(await host.code('arm', { todayDay: earliestDay })).toBe('ok');
    expect((await host.telemetry()).state).toBe(PenState.armed);
    expect(await host.code('disarm', {})).toBe('ok');
    const expired = await host.send('arm', { todayDay: 0xffff });
    expect(expired).toMatchObject({ name: 'part_refused', fields: { code: ErrorCode.cartridge_expired, part: 0, detail: expiryDay } });
    expect(hex(expired.name === 'part_refused' ? expired.fields.rom : new Uint8Array())).toBe(hex(rom));
    const telemetry = await host.telemetry();
    expect(telemetry.state).toBe(PenState.idle);
    expect(p.plant.motorDrive()).toBe(0);
    expect(watch.onEdges).toBe(0);
    watch.expectClean();
  });
});

describe('clear_cartridge', () => {
  it('accepts the fitted id only: every one-bit-off id, all zeros and all 0xFF are part_mismatch naming the fitted id; a chip gone is cartridge_unreadable', { tags: ['REQ-CARTRIDGE-INTERLOCK'] }, async () => {
    const { p, d, watch, parts } = await readyPen(24);
    const fitted = parts.cartridge.rom;
    const bytes = Buffer.from(fitted, 'hex');
    const wrongIds = [
      ...Array.from({ length: 64 }, (_, bit) => {
        const id = Uint8Array.from(bytes);
        id[bit >> 3] = (id[bit >> 3] ?? 0) ^ (1 << (bit & 7));
        return hex(id);
      }),
      '0000000000000000',
      'ffffffffffffffff',
    ];
    for (const id of wrongIds) {
      const error = await refusedWith(d.clearCartridge(id));
      expect({ id, code: error.code, detail: error.detail, refusedPart: error.refusedPart }).toEqual({
        id, code: 'part_mismatch', detail: 0, refusedPart: { part: 'cartridge', rom: fitted },
      });
    }
    expect((await d.status()).cartridgeCleared).toBe(false);
    // Not cleared: arm says so before anything about the parts.
    expect((await refusedWith(d.arm(armingDateMs))).code).toBe('cartridge_not_cleared');

    await d.clearCartridge(fitted);
    expect((await d.status()).cartridgeCleared).toBe(true);

    // A cartridge whose chip is gone (switch still closed): refused whatever id is named, the fitted one included.
    p.idChips.cartridge.fit(null);
    await d.parts(['cartridge']);
    expect((await settled()).cartridge).toMatchObject({ status: 'absent', rom: '' });
    for (const id of [fitted, '0000000000000000', 'ffffffffffffffff']) {
      const error = await refusedWith(d.clearCartridge(id));
      expect({ code: error.code, detail: error.detail, refusedPart: error.refusedPart }).toEqual({
        code: 'cartridge_unreadable', detail: PartStatus.absent, refusedPart: { part: 'cartridge', rom: '' },
      });
    }
    await expectIdleMotorOff(watch);
  });
});

/** Sends start_needle until it is accepted (returns the refusals before), polling every pollMs. */
async function startUntilRunning(d: PenDevice, pollMs = 5, limitMs = 3000): Promise<PenRefusedError[]> {
  const p = thePen();
  const refusals: PenRefusedError[] = [];
  const deadline = p.clock.nowMs() + limitMs;
  for (;;) {
    const error = await d.command('start_needle', { strokesPerSecond: 100 }).then(() => null, (e: unknown) => e);
    if (error === null) return refusals;
    if (!(error instanceof PenRefusedError)) throw error instanceof Error ? error : new Error('start_needle failed without an Error');
    refusals.push(error);
    if (error.code !== 'parts_busy' || p.clock.nowMs() > deadline) return refusals;
    await p.clock.sleep(pollMs);
  }
}

describe("a session's one-way marks", () => {
  it('burn at the first start (parts_busy until both are read back), then the motor runs; re-arming in the fitting burns nothing; the same cartridge put back is used; a new one waits for the nosecone\'s reprocessing', { tags: ['REQ-CARTRIDGE-SINGLE-USE', 'REQ-NOSECONE-STERILE'] }, async () => {
    const { p, d, watch, parts } = await readyPen(31);
    const cartridge = p.idChips.cartridge.chip, nosecone = p.idChips.nosecone.chip;
    if (cartridge === null || nosecone === null) throw new Error('no chips');
    await d.clearCartridge(parts.cartridge.rom);
    await d.arm(armingDateMs);

    const started = p.simTimeMs;
    const refusals = await startUntilRunning(d);
    const marksMs = p.simTimeMs - started;
    expect(refusals.length).toBeGreaterThan(0);
    for (const refusal of refusals) expect(refusal).toMatchObject({ code: 'parts_busy', refusedPart: { part: 'cartridge', rom: parts.cartridge.rom } });
    // The motor came on only with the accepted start, after both marks were burnt and read back.
    expect([cartridge.stats.copies, nosecone.stats.copies]).toEqual([1, 1]);
    await p.clock.sleep(300);
    expect(d.telemetry).toMatchObject({ state: 'running', needleOn: true });
    expect(p.plant.motorDrive()).toBeGreaterThan(0);
    expect(watch.onEdges).toBe(1);
    console.log(`a session's marks: first start_needle to the start accepted in ${marksMs.toFixed(1)} ms of simulated time (polled every 5 ms)`);

    const after = await d.settledParts();
    expect(after.lastWrite).toBe('ok');
    expect(after.cartridge).toMatchObject({ status: 'ok', rom: parts.cartridge.rom, used: true });
    expect(after.nosecone).toMatchObject({ status: 'ok', rom: parts.nosecone.rom, sterilizations: 1, uses: 1, unusedSinceSterilization: false });
    expect(cartridge.memory[layout.markPageAddress]).toBe(0xfe);
    expect(nosecone.memory[layout.useMarkPageAddress]).toBe(0xfe);

    // stop, disarm, re-arm and start again in the same fitting: accepted at once, nothing burnt.
    await d.needle.stop();
    expect((await d.status()).state).toBe('armed');
    await d.disarm();
    await d.arm(armingDateMs);
    expect(await startUntilRunning(d)).toEqual([]);
    await p.clock.sleep(200);
    expect(d.telemetry).toMatchObject({ state: 'running', needleOn: true });
    expect([cartridge.stats.copies, nosecone.stats.copies]).toEqual([1, 1]);
    await d.needle.stop();
    await d.disarm();
    await expectIdleMotorOff(watch);

    // The same cartridge pulled and put back: a new fitting, and it reads used.
    const back = await refitCartridge(cartridge);
    expect(back.cartridge).toMatchObject({ status: 'ok', rom: parts.cartridge.rom, used: true });
    await d.clearCartridge(back.cartridge.rom);
    await expectArmRefused(armingDay, 'cartridge_used', 'cartridge', 1, watch);

    // A new cartridge: the nosecone was used since its sterilization.
    const fresh = await p.fitNewCartridge();
    const withFresh = await settled();
    expect(withFresh.cartridge).toMatchObject({ status: 'ok', rom: hex(fresh.rom), used: false });
    await d.clearCartridge(withFresh.cartridge.rom);
    await expectArmRefused(armingDay, 'nosecone_not_sterilized', 'nosecone', 1, watch);

    // Reprocessing: record_sterilization on the reprocessing grant burns the tally's next bit; then it arms.
    await d.serviceCommand('record_sterilization', { noseconeRom: Uint8Array.from(nosecone.rom) });
    await d.parts();
    const sterilized = await settled();
    expect(sterilized.lastWrite).toBe('ok');
    expect(sterilized.nosecone).toMatchObject({ sterilizations: 2, uses: 1, unusedSinceSterilization: true });
    expect(nosecone.memory[layout.markPageAddress]).toBe(0xfc);
    await d.arm(armingDateMs);
    expect(d.telemetry?.state).toBe('armed');
    // And the new session burns the new cartridge and the second sterilization's use mark.
    const second = await startUntilRunning(d);
    expect(second.length).toBeGreaterThan(0);
    expect(second.every((refusal) => refusal.code === 'parts_busy')).toBe(true);
    expect([fresh.memory[layout.markPageAddress], nosecone.memory[layout.useMarkPageAddress]]).toEqual([0xfe, 0xfc]);
    await p.clock.sleep(200);
    expect(d.telemetry).toMatchObject({ state: 'running', needleOn: true });
    await d.needle.stop();
    await d.disarm();
    await expectIdleMotorOff(watch);
  });

  it('never runs on a nosecone swapped in after the marks without the cartridge coming off: the start names that nosecone, nothing is burnt on it', { tags: ['REQ-NOSECONE-STERILE'] }, async () => {
    const { p, d, watch, parts } = await readyPen(37);
    await d.clearCartridge(parts.cartridge.rom);
    await d.arm(armingDateMs);
    await d.needle.start(100);
    await p.clock.sleep(100);
    await d.needle.stop();
    await d.disarm();
    expect(watch.onEdges).toBe(1);
    // Another nosecone, sterilized and unused, swapped in behind the cartridge switch's back and read on request.
    const other = noseconeChip(0x7303n, 1, 0);
    expect((await refitNosecone(other)).nosecone).toMatchObject({ status: 'ok', rom: hex(other.rom), unusedSinceSterilization: true });
    // It passes the arm checks on its own merits; the session's marks are not its own, so no start.
    await d.arm(armingDateMs);
    const refused = await refusedWith(d.command('start_needle', { strokesPerSecond: 100 }));
    expect(refused).toMatchObject({ code: 'part_mismatch', refusedPart: { part: 'nosecone', rom: hex(other.rom) } });
    await p.clock.sleep(300);
    expect(other.stats.copies).toBe(0);
    expect(watch.onEdges).toBe(1);
    expect(p.plant.motorDrive()).toBe(0);
    await d.disarm();
    await expectIdleMotorOff(watch);
  });

  it.each([
    ['a used cartridge', 'cartridge', 'cartridge_used', 8],
    ['a nosecone used since its sterilization', 'nosecone', 'nosecone_not_sterilized', 2],
  ] as const)('checks the parts again at the first start: %s read after arming (chip swapped, reread asked) is refused, nothing burnt, no motor', async (_label, part, code, detail) => {
    const { p, d, watch, parts } = await readyPen(part === 'cartridge' ? 35 : 36);
    await d.clearCartridge(parts.cartridge.rom);
    await d.arm(armingDateMs);
    // Swapped behind the switch's back, and read on the host's request: the pen's records now show the other part.
    const other = part === 'cartridge' ? cartridgeChip(0x7301n, { used: true }) : noseconeChip(0x7302n, 2, 2);
    p.idChips[part].fit(other);
    await d.parts([part]);
    const reread = await settled();
    expect(reread[part].rom).toBe(hex(other.rom));
    const refused = await refusedWith(d.command('start_needle', { strokesPerSecond: 100 }));
    expect({ code: refused.code, detail: refused.detail, refusedPart: refused.refusedPart }).toEqual({ code, detail, refusedPart: { part, rom: hex(other.rom) } });
    await p.clock.sleep(300);
    expect((await d.settledParts()).lastWrite).toBe('none');
    expect([p.idChips.cartridge.chip?.stats.copies, p.idChips.nosecone.chip?.stats.copies]).toEqual([0, 0]);
    expect(watch.onEdges).toBe(0);
    expect(p.plant.motorDrive()).toBe(0);
    watch.expectClean();
  });

  it.each([
    ['cartridge', 'cartridge'],
    ['nosecone', 'nosecone'],
  ] as const)('answers mark_failed once when the %s\'s copy fails (naming it, detail copy_failed), never runs the motor, and burns again at the next start once the chip copies', async (_label, failing) => {
    const { p, d, watch, parts } = await readyPen(failing === 'cartridge' ? 41 : 42);
    const chip = p.idChips[failing].chip, cartridge = p.idChips.cartridge.chip;
    if (chip === null || cartridge === null) throw new Error('no chips');
    // The chip programs slower than tPROG: the firmware's copy status read, after tPROG, finds it still programming and
    // the copy is lost (the model's fault for a copy that fails).
    chip.timing.programMs = description.idChips.datasheetUs.programMaxMs * 3;
    await d.clearCartridge(parts.cartridge.rom);
    await d.arm(armingDateMs);
    const refusals = await startUntilRunning(d);
    const last = refusals.at(-1);
    expect(refusals.slice(0, -1).every((refusal) => refusal.code === 'parts_busy')).toBe(true);
    expect(last).toMatchObject({ code: 'mark_failed', detail: WriteResult.copy_failed, refusedPart: { part: failing, rom: parts[failing].rom } });
    expect(chip.stats.copies).toBe(0);
    expect(chip.stats.copiesInterrupted).toBeGreaterThan(0);
    expect(watch.onEdges).toBe(0);
    expect(p.plant.motorDrive()).toBe(0);
    expect((await d.status()).state).toBe('armed');
    const failed = await d.settledParts();
    expect(failed.cartridge.used).toBe(failing === 'nosecone');  // the cartridge's mark comes first
    expect(failed.nosecone.unusedSinceSterilization).toBe(true);

    // Reported once: the next start burns again, and with the chip copying again it runs.
    chip.timing.programMs = description.idChips.datasheetUs.programMaxMs;
    const again = await startUntilRunning(d);
    expect(again.length).toBeGreaterThan(0);
    expect(again.every((refusal) => refusal.code === 'parts_busy')).toBe(true);
    expect(chip.stats.copies).toBe(1);
    await p.clock.sleep(200);
    expect(d.telemetry).toMatchObject({ state: 'running', needleOn: true });
    expect(watch.onEdges).toBe(1);
    const marked = await d.settledParts();
    expect(marked.cartridge.used).toBe(true);
    expect(marked.nosecone).toMatchObject({ uses: 1, unusedSinceSterilization: false });
    await d.needle.stop();
    await d.disarm();
    await expectIdleMotorOff(watch);
  });
});

/** A raw host: its own sequence numbers, heartbeats it must send itself, replies matched to requests. */
class RawHost {
  private seq = 1;
  private lastBeatMs = -Infinity;
  constructor(readonly raw: RawClient, private readonly p: VirtualPen) {}

  static async connect(p: VirtualPen): Promise<RawHost> {
    const raw = new RawClient(p);
    await raw.handshake();
    return new RawHost(raw, p);
  }

  async send<K extends HostMessageName>(name: K, fields: MessageFields[K]): Promise<Message> {
    const reply = await this.sendPayload(encodeMessage(name, fields));
    if (reply === null) throw new Error(`no reply to ${name}`);
    return reply;
  }

  /** Frames answered with a NAK (a frame the pen found bad: bytes lost or corrupted), sent again. */
  naks = 0;

  /**
   * The payload with the next sequence number; its reply, or null after 50 ms of silence or a third NAK. A NAK is
   * answered as the HAL's link does: the same frame again.
   */
  async sendPayload(payload: Uint8Array): Promise<Message | null> {
    const seq = this.seq;
    for (let attempt = 0; attempt < 3; attempt++) {
      const from = this.raw.frames.length;
      this.raw.sendFrame(FrameKind.data | seq, payload);
      let answer = this.answerTo(seq, from);
      for (let ms = 0; ms < 50 && answer === null; ms++) {
        await this.p.clock.sleep(1);
        answer = this.answerTo(seq, from);
      }
      if (answer === null) return null;
      if (answer !== 'nak') {
        this.seq = (seq + 1) & 0x0f;
        return answer;
      }
      this.naks++;
    }
    return null;
  }

  /** The reply to seq among the frames from index `from`, 'nak' for a NAK, or null for neither yet. */
  private answerTo(seq: number, from: number): Message | 'nak' | null {
    for (const frame of this.raw.answers(from)) {
      const kind = frame.seqByte & 0xf0;
      if (kind === FrameKind.nak) return 'nak';
      if (kind === FrameKind.reply && (frame.seqByte & 0x0f) === ((seq + 1) & 0x0f)) return decodeMessage(frame.payload);
    }
    return null;
  }

  async code<K extends HostMessageName>(name: K, fields: MessageFields[K]): Promise<string> {
    const reply = await this.send(name, fields);
    if (reply.name !== 'error' && reply.name !== 'part_refused') return 'ok';
    return Object.entries(ErrorCode).find(([, value]) => value === reply.fields.code)?.[0] ?? `code ${reply.fields.code}`;
  }

  /** A heartbeat if the last one is 50 ms old or more. */
  async beat(): Promise<void> {
    if (this.p.clock.nowMs() - this.lastBeatMs < 50) return;
    this.lastBeatMs = this.p.clock.nowMs();
    await this.send('heartbeat', {});
  }

  async wait(ms: number): Promise<void> {
    const until = this.p.clock.nowMs() + ms;
    while (this.p.clock.nowMs() < until) {
      await this.beat();
      await this.p.clock.sleep(Math.min(20, until - this.p.clock.nowMs()));
    }
  }

  async telemetry(): Promise<MessageFields['telemetry']> {
    const reply = await this.send('get_status', {});
    if (reply.name !== 'telemetry') throw new Error(`get_status answered ${reply.name}`);
    return reply.fields;
  }

  async parts(reread = 0): Promise<MessageFields['parts']> {
    const reply = await this.send('get_parts', { reread });
    if (reply.name !== 'parts') throw new Error(`get_parts answered ${reply.name}`);
    return reply.fields;
  }

  async settledParts(): Promise<MessageFields['parts']> {
    for (let tries = 0; tries < 200; tries++) {
      const parts = await this.parts();
      if (parts.activity === 0 && parts.cartridgeStatus !== PartStatus.unknown && parts.noseconeStatus !== PartStatus.unknown) return parts;
      await this.wait(20);
    }
    throw new Error('the parts were never read');
  }
}

/** What a reset at one instant of a burn left. */
interface ResetOutcome {
  readonly atMs: number;
  readonly phase: string;
  readonly cartridge: 'fresh' | 'used';
  readonly nosecone: 'fresh' | 'used';
}

/** An instant of the burn: ms after the first start_needle, or a chip's protocol step (exact) plus ms. */
type Instant = { readonly ms: number } | { readonly part: 'cartridge' | 'nosecone'; readonly mode: 'copyAuthorization' | 'programming'; readonly plusMs: number };

describe('an MCU reset during the marks', () => {
  it('at instants across the whole burn: the motor never ran, the cartridge reads fresh (no copy yet, and it arms) or used (and arming is refused, cartridge_used)', { tags: ['REQ-RESET-SAFE', 'REQ-CARTRIDGE-SINGLE-USE'], timeout: 60_000 }, async () => {
    const ready = await readyPen(51);
    const p = ready.p;
    const watch = ready.watch;
    let serial = 0x7500n;
    // When each chip's copy started (exact, from the chip model's hook), relative to the first start_needle.
    const copyStarts = { cartridge: [] as number[], nosecone: [] as number[] };
    const hookCopies = (t0: number): void => {
      for (const part of ['cartridge', 'nosecone'] as const) {
        const chip = p.idChips[part].chip;
        const original = chip?.onProgrammingStarted ?? null;
        if (chip === null || original === null) throw new Error('no chip');
        copyStarts[part] = [];
        chip.onProgrammingStarted = (programMs) => {
          copyStarts[part].push(p.simTimeMs - t0);
          original(programMs);
        };
      }
    };
    const armSession = async (): Promise<number> => {
      const d = theDevice();
      await d.clearCartridge((await d.settledParts()).cartridge.rom);
      await d.arm(armingDateMs);
      const t0 = p.simTimeMs;
      hookCopies(t0);
      return t0;
    };
    const freshParts = async (): Promise<void> => {
      p.idChips.nosecone.fit(noseconeChip(serial++));
      await refitCartridge(cartridgeChip(serial++));
    };

    // First, a whole burn without a reset, to measure it (start_needle retried every 5 ms, as below).
    let t0 = await armSession();
    const refusals = await startUntilRunning(theDevice(), 5);
    const doneMs = p.simTimeMs - t0;
    expect(refusals.every((refusal) => refusal.code === 'parts_busy')).toBe(true);
    const cartridgeCopyMs = copyStarts.cartridge[0] ?? NaN, noseconeCopyMs = copyStarts.nosecone[0] ?? NaN;
    expect(Number.isFinite(cartridgeCopyMs) && Number.isFinite(noseconeCopyMs)).toBe(true);
    console.log(`marks: cartridge copy starts ${cartridgeCopyMs.toFixed(3)} ms after the first start_needle, nosecone copy ` +
      `${noseconeCopyMs.toFixed(3)} ms, the start accepted at ${doneMs.toFixed(1)} ms (retried every 5 ms)`);
    await theDevice().needle.stop();
    await theDevice().disarm();
    const runs = watch.onEdges;
    expect(runs).toBe(1);
    await freshParts();

    const program = description.idChips.datasheetUs.programMaxMs;
    const instants: Instant[] = [
      { ms: 1 }, { ms: 15 }, { ms: 30 },
      // The copy command's authorization bytes arriving, the copy starting, tPROG, its status read.
      { part: 'cartridge', mode: 'copyAuthorization', plusMs: 0 }, { part: 'cartridge', mode: 'copyAuthorization', plusMs: 1.7 },
      { part: 'cartridge', mode: 'programming', plusMs: 0.02 }, { part: 'cartridge', mode: 'programming', plusMs: 3 },
      { part: 'cartridge', mode: 'programming', plusMs: 7 }, { part: 'cartridge', mode: 'programming', plusMs: program - 0.1 },
      { part: 'cartridge', mode: 'programming', plusMs: program + 0.5 },
      { ms: (cartridgeCopyMs + noseconeCopyMs) / 2 },
      { part: 'nosecone', mode: 'copyAuthorization', plusMs: 1.7 }, { part: 'nosecone', mode: 'programming', plusMs: 0.02 },
      { part: 'nosecone', mode: 'programming', plusMs: 5 }, { part: 'nosecone', mode: 'programming', plusMs: program + 0.5 },
      { ms: doneMs - 25 },
    ];
    const approxMs = (instant: Instant): number => ('ms' in instant ? instant.ms : instant.part === 'cartridge' ? cartridgeCopyMs : noseconeCopyMs);
    const outcomes: ResetOutcome[] = [];
    for (const instant of instants) {
      const d = theDevice();
      t0 = await armSession();
      const revolutions = p.plant.revolutions;
      // The host retries start_needle every 5 ms, as the HAL does (every 20 ms), until just before the instant.
      const first = await refusedWith(d.command('start_needle', { strokesPerSecond: 100 }));
      expect(first.code).toBe('parts_busy');
      while (p.simTimeMs - t0 < approxMs(instant) - 12) {
        await p.clock.sleep(5);
        const retry = await refusedWith(d.command('start_needle', { strokesPerSecond: 100 }));
        expect(retry.code).toBe('parts_busy');
      }
      if ('ms' in instant) {
        p.runFor(Math.max(0, t0 + instant.ms - p.simTimeMs));
      } else {
        const chip = p.idChips[instant.part].chip;
        if (chip === null) throw new Error('no chip');
        expect(p.runUntil(() => chip.protocolState === instant.mode, 50), `${instant.part} reaching ${instant.mode}`).not.toBeNull();
        p.runFor(instant.plusMs);
      }
      const at = p.simTimeMs - t0;
      p.resetMcu('external');
      watch.attach();
      // Before the reset: the motor never came on.
      expect(watch.onEdges).toBe(runs);
      expect(p.plant.revolutions).toBe(revolutions);
      await d.close();
      device = await PenDevice.connect(p.openPort(), { clock: p.clock });
      const nd = device;
      await nd.depth.home();
      await nd.depth.moveTo(0.5);
      const parts = await settled();
      const cartridge = p.idChips.cartridge.chip, nosecone = p.idChips.nosecone.chip;
      if (cartridge === null || nosecone === null) throw new Error('no chips');
      // The chips hold either the row before or the row after: the pen reads what they hold.
      const cartridgeMark = cartridge.memory[layout.markPageAddress];
      const useMark = nosecone.memory[layout.useMarkPageAddress];
      expect([0xff, 0xfe]).toContain(cartridgeMark);
      expect([0xff, 0xfe]).toContain(useMark);
      expect(parts.cartridge).toMatchObject({ status: 'ok', used: cartridgeMark === 0xfe });
      expect(parts.nosecone).toMatchObject({ status: 'ok', unusedSinceSterilization: useMark === 0xff });
      const copied = { cartridge: copyStarts.cartridge.some((start) => start < at), nosecone: copyStarts.nosecone.some((start) => start < at) };
      // A copy the chip started completes on its own; none started, nothing written.
      expect({ cartridge: cartridgeMark === 0xfe, nosecone: useMark === 0xfe }).toEqual(copied);
      const started = { cartridge: copyStarts.cartridge[0] ?? Infinity, nosecone: copyStarts.nosecone[0] ?? Infinity };
      const phase = !copied.cartridge ? 'before the cartridge copy' : at < started.cartridge + program ? 'in the cartridge tPROG'
        : !copied.nosecone ? 'between the copies' : at < started.nosecone + program ? 'in the nosecone tPROG' : 'reading back';
      const outcome: ResetOutcome = { atMs: at, phase, cartridge: copied.cartridge ? 'used' : 'fresh', nosecone: copied.nosecone ? 'used' : 'fresh' };
      outcomes.push(outcome);
      // The nosecone is marked only after the cartridge.
      expect(!copied.nosecone || copied.cartridge).toBe(true);
      await nd.clearCartridge(parts.cartridge.rom);
      if (outcome.cartridge === 'used') {
        await expectArmRefused(armingDay, 'cartridge_used', 'cartridge', 1, watch);
        await freshParts();
      } else {
        await armsAndDisarms(armingDay, watch);
      }
    }
    const count = (cartridge: string): number => outcomes.filter((o) => o.cartridge === cartridge).length;
    console.log(`resets at ${outcomes.length} instants: ${count('fresh')} left the cartridge fresh (armed again), ${count('used')} used ` +
      `(arming refused, cartridge_used)\n${outcomes.map((o) => `  ${o.atMs.toFixed(3)} ms ${o.phase}: cartridge ${o.cartridge}, nosecone ${o.nosecone}`).join('\n')}`);
    expect(count('fresh')).toBeGreaterThan(0);
    expect(count('used')).toBeGreaterThan(0);
    expect(watch.onEdges).toBe(runs);
    watch.expectClean();
  });
});

describe('hostile frames after a session', () => {
  it('record_sterilization without a grant is role_required with the tally unchanged; no host message id with any payload clears a mark or runs the motor outside RUNNING', { tags: ['REQ-HOSTILE-HOST', 'REQ-ROLES'], timeout: 60_000 }, async () => {
    const { p, d, watch, parts } = await readyPen(61);
    const cartridge = p.idChips.cartridge.chip, nosecone = p.idChips.nosecone.chip;
    if (cartridge === null || nosecone === null) throw new Error('no chips');
    // A session: marks burnt, the motor run, then stopped and disarmed.
    await d.clearCartridge(parts.cartridge.rom);
    await d.arm(armingDateMs);
    await d.needle.start(100);
    await p.clock.sleep(200);
    await d.needle.stop();
    await d.disarm();
    await d.close();
    device = null;

    const host = await RawHost.connect(p);
    const before = { cartridge: Uint8Array.from(cartridge.memory), nosecone: Uint8Array.from(nosecone.memory) };
    const tally = (await host.settledParts()).noseconeSterilizations;
    const refused = await host.send('record_sterilization', { noseconeRom: Uint8Array.from(nosecone.rom) });
    expect(refused).toMatchObject({ name: 'error', fields: { code: ErrorCode.role_required, detail: Role.reprocessing } });
    await host.wait(100);
    expect((await host.settledParts()).noseconeSterilizations).toBe(tally);
    expect(nosecone.stats.copies).toBe(1);

    const random = seededRandom(0x5eed);
    const byte = (): number => Math.floor(random() * 256);
    const maxPayload = FRAME_MAX_BYTES - FRAME_MIN_BYTES;
    const specs = Object.values(messageSpecs);
    const payloads: Uint8Array[] = [];
    for (let id = 0; id < 256; id++) {
      const spec = specs.find((s) => s.id === id && s.direction === 'host_to_pen');
      const lengths = [1, 1 + Math.floor(random() * maxPayload)];
      if (id % 64 === 0) lengths.push(0);
      for (const length of lengths) payloads.push(Uint8Array.from({ length }, (_, i) => (i === 0 ? id : byte())));
      if (spec === undefined) continue;
      const length = 1 + spec.fields.reduce((sum, [, type]) => sum + fieldBytes[type], 0);
      for (const fill of [() => 0x00, () => 0xff, byte]) payloads.push(Uint8Array.from({ length }, (_, i) => (i === 0 ? id : fill())));
      for (const other of [length - 1, length + 1]) {
        if (other >= 1 && other <= maxPayload) payloads.push(Uint8Array.from({ length: other }, (_, i) => (i === 0 ? id : byte())));
      }
    }
    // A host that keeps the needle running where it can: back into the window, armed (its own marks, the same
    // fitting) and started.
    const run = async (): Promise<boolean> => {
      await host.send('clear_fault', {});
      if ((await host.telemetry()).state === PenState.homing_required) {
        await host.send('home', {});
        await host.wait(400);
      }
      await host.send('move_to', { depthUm: 500 });
      await host.wait(150);
      await host.send('clear_cartridge', { cartridgeRom: Uint8Array.from(cartridge.rom) });
      await host.send('arm', { todayDay: armingDay });
      await host.send('start_needle', { strokesPerSecond: 100 });
      return (await host.telemetry()).state === PenState.running;
    };
    let replies = 0, silent = 0, whileRunning = 0, runsStarted = 0;
    // Round one on the idle pen, in id order; round two shuffled, on a running pen (restarted every 40 frames).
    const shuffled = [...payloads].sort(() => random() - 0.5);
    for (const [round, list] of [[1, payloads], [2, shuffled]] as const) {
      for (const [index, payload] of list.entries()) {
        if (round === 2 && index % 40 === 0 && watch.state !== PenState.running && (await run())) runsStarted++;
        if (watch.state === PenState.running) whileRunning++;
        const reply = await host.sendPayload(payload);
        if (reply === null) silent++;
        else replies++;
        if (payload[0] === messageSpecs.identify.id) await host.send('identify', { hostProtocolVersion: PROTOCOL_VERSION });
        await host.beat();
      }
    }
    await host.send('stop', {});
    await host.wait(300);
    console.log(`hostile frames: ${2 * payloads.length} sent (every id 0-255), ${replies} answered, ${silent} NAKed (3 times) or unanswered; ` +
      `${whileRunning} sent while RUNNING (${runsStarted} restarts); the motor came on ${watch.onEdges} times in all, never outside RUNNING`);
    expect(whileRunning).toBeGreaterThan(0);
    expect([cartridge.stats.copies, nosecone.stats.copies]).toEqual([1, 1]);

    // The chips: no bit went from 0 back to 1 anywhere (marks pages and all), the identity page and protections as they were.
    for (const part of ['cartridge', 'nosecone'] as const) {
      const memory = p.idChips[part].chip?.memory ?? new Uint8Array();
      const regained = [...memory].flatMap((value, address) => ((value & ~(before[part][address] ?? 0)) !== 0 ? [`${part} 0x${address.toString(16)}`] : []));
      expect(regained).toEqual([]);
      expect(hex(memory.subarray(0, 0x20))).toBe(hex(before[part].subarray(0, 0x20)));
      expect(hex(memory.subarray(0x80, 0x90))).toBe(hex(before[part].subarray(0x80, 0x90)));
    }
    const after = await host.settledParts();
    expect(after.cartridgeUsedBits).toBeGreaterThan(0);
    expect(after.noseconeUnusedSinceSterilization).toBe(0);
    expect(p.plant.motorDrive()).toBe(0);
    watch.expectClean();
  });
});

describe('STOP and the e-stop during a burn', () => {
  async function rawSession(seed: number): Promise<{ p: VirtualPen; host: RawHost; watch: MotorWatch; rom: Uint8Array }> {
    const { p, host, watch, parts } = await rawHostAt500um(seed);
    expect(await host.code('clear_cartridge', { cartridgeRom: parts.cartridgeRom })).toBe('ok');
    expect(await host.code('arm', { todayDay: armingDay })).toBe('ok');
    return { p, host, watch, rom: parts.cartridgeRom };
  }

  /** Runs the MCU until the part's chip starts its copy, then ms more (simulated). */
  function untilCopy(p: VirtualPen, part: 'cartridge' | 'nosecone', ms: number): void {
    const chip = p.idChips[part].chip;
    if (chip === null) throw new Error('no chip');
    expect(p.runUntil(() => chip.protocolState === 'programming', 1000)).not.toBeNull();
    p.runFor(ms);
  }

  it('the STOP byte alone in the cartridge\'s tPROG: idle at once, the burn ends without the motor, starts refused; re-armed in the fitting it runs', { tags: ['REQ-STOP'] }, async () => {
    const { p, host, watch } = await rawSession(71);
    const cartridge = p.idChips.cartridge.chip, nosecone = p.idChips.nosecone.chip;
    if (cartridge === null || nosecone === null) throw new Error('no chips');
    expect(await host.code('start_needle', { strokesPerSecond: 100 })).toBe('parts_busy');
    untilCopy(p, 'cartridge', 2);
    host.raw.writeBytes(Uint8Array.of(FRAME_STOP));
    p.runFor(2);
    expect(watch.state).toBe(PenState.idle);
    // A hostile host keeps asking for the needle while the burn goes on.
    for (let i = 0; i < 40; i++) {
      expect(await host.code('start_needle', { strokesPerSecond: 100 })).toBe('not_allowed_in_state');
      await host.wait(20);
    }
    const parts = await host.settledParts();
    expect((await host.telemetry()).state).toBe(PenState.idle);
    expect(watch.onEdges).toBe(0);
    expect(p.plant.motorDrive()).toBe(0);
    // The burn ran to its end: both marks, read back.
    expect([cartridge.stats.copies, nosecone.stats.copies]).toEqual([1, 1]);
    expect([parts.cartridgeUsedBits, parts.noseconeUnusedSinceSterilization, parts.lastWrite]).toEqual([1, 0, WriteResult.ok]);
    // STOP retracted the needle: back into the window, then re-armed in the same fitting: its own marks; the start
    // runs at once.
    expect(await host.code('move_to', { depthUm: 500 })).toBe('ok');
    await host.wait(200);
    expect(await host.code('arm', { todayDay: armingDay })).toBe('ok');
    expect(await host.code('start_needle', { strokesPerSecond: 100 })).toBe('ok');
    await host.wait(200);
    expect((await host.telemetry()).state).toBe(PenState.running);
    expect(watch.onEdges).toBe(1);
    expect([cartridge.stats.copies, nosecone.stats.copies]).toEqual([1, 1]);
    expect(await host.code('stop', {})).toBe('ok');
    await host.wait(20);
    expect(p.plant.motorDrive()).toBe(0);
    watch.expectClean();
  });

  it('the e-stop in the nosecone\'s tPROG: FAULT (estop) at once, the burn ends without the motor, starts refused', { tags: ['REQ-ESTOP'] }, async () => {
    const { p, host, watch } = await rawSession(72);
    const cartridge = p.idChips.cartridge.chip, nosecone = p.idChips.nosecone.chip;
    if (cartridge === null || nosecone === null) throw new Error('no chips');
    expect(await host.code('start_needle', { strokesPerSecond: 100 })).toBe('parts_busy');
    // Heartbeats go on meanwhile: the nosecone's write starts (its first reset pulse) about 300 ms in.
    const startedMs = p.simTimeMs;
    while (cartridge.stats.copies === 0 && p.simTimeMs - startedMs < 1000) await host.wait(10);
    const pulses = nosecone.stats.presencePulses;
    while (nosecone.stats.presencePulses === pulses && p.simTimeMs - startedMs < 1000) await host.wait(5);
    untilCopy(p, 'nosecone', 2);
    p.setInput('estop', true);
    p.runFor(2);
    expect(watch.state).toBe(PenState.fault);
    expect(p.plant.motorDrive()).toBe(0);
    for (let i = 0; i < 20; i++) {
      expect(await host.code('start_needle', { strokesPerSecond: 100 })).toBe('not_allowed_in_fault');
      await host.wait(20);
    }
    const parts = await host.settledParts();
    const telemetry = await host.telemetry();
    expect([telemetry.state, telemetry.faultCode]).toEqual([PenState.fault, Fault.estop]);
    expect([cartridge.stats.copies, nosecone.stats.copies]).toEqual([1, 1]);
    expect([parts.cartridgeUsedBits, parts.noseconeUnusedSinceSterilization]).toEqual([1, 0]);
    expect(watch.onEdges).toBe(0);
    expect(p.plant.motorDrive()).toBe(0);
    watch.expectClean();
  });
});
