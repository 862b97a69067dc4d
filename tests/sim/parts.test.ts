// The parts' ID chips through the wire: the firmware's 1-Wire master against the virtual pen's bus-level DS2431 models
// (hardware/sim/id-chip.ts), which check every edge against the datasheet's windows. Ids and memory read with good CRCs,
// every chip fault reported with its reason, a mark written through scratchpad and copy and read back, an MCU reset
// during the copy, presence pulses outside the sampling window, and hostile get_parts frames.
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { IdChip, partMemory, romId } from '../../hardware/sim/id-chip.ts';
import { PenDevice } from '../../hal/device.ts';
import type { PartName, Parts } from '../../hal/parts.ts';
import { decodeMessage, encodeMessage, type Message } from '../../hal/link/codec.ts';
import { ErrorCode, Role, messageSpecs } from '../../hardware/generated/protocol.ts';
import { pen as description } from '../../hardware/description.ts';
import { RawClient } from './raw-client.ts';
import { provisionedVirtualPen } from './provisioned.ts';

let pen: VirtualPen;
let device: PenDevice | null = null;
afterEach(async () => {
  await device?.close();
  device = null;
  await pen.stop();
});

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

async function connect(virtualPen: VirtualPen): Promise<PenDevice> {
  pen = virtualPen;
  pen.start();
  device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
  return device;
}

/** Polls get_parts until no chip is being read (after asking for the rereads, if any). */
async function partsSettled(reread: readonly PartName[] = [], timeoutMs = 2000): Promise<Parts> {
  if (device === null) throw new Error('no device');
  let parts = await device.parts(reread);
  const deadline = pen.clock.nowMs() + timeoutMs;
  while (parts.reading.length > 0 || parts.writing || parts.cartridge.status === 'unknown' || parts.nosecone.status === 'unknown') {
    if (pen.clock.nowMs() > deadline) throw new Error(`the chips were still being read after ${timeoutMs} ms: ${JSON.stringify(parts)}`);
    await pen.clock.sleep(20);
    parts = await device.parts();
  }
  return parts;
}

function expectNoTimingViolations(): void {
  expect([...pen.idChips.cartridge.violations, ...pen.idChips.nosecone.violations]).toEqual([]);
}

describe('the parts ID chips', () => {
  it('are read at power-on: ROM ids with their CRC-8, the identity and tallies as laid out, every slot inside the datasheet windows', { tags: ['REQ-PART-CHIP-INTEGRITY'] }, async () => {
    await connect(new VirtualPen({ seed: 3 }));
    const parts = await partsSettled();
    const { cartridge, nosecone } = pen.idChips;
    expect(parts.cartridge).toEqual({
      status: 'ok', statusText: expect.any(String) as string, rom: hex(cartridge.chip?.rom ?? new Uint8Array()), lot: 0x00c0ffee,
      expiryDay: 10958, used: false,
    });
    expect(parts.nosecone).toMatchObject({
      status: 'ok', rom: hex(nosecone.chip?.rom ?? new Uint8Array()), lot: 0x000a1b2c, sterilizations: 1, uses: 0,
      unusedSinceSterilization: true,
    });
    expect(parts.cartridge.rom.slice(0, 2)).toBe(description.idChips.familyCode.toString(16));
    expect(parts.lastWrite).toBe('none');
    expectNoTimingViolations();
    // Match ROM with the id read: the memory commands reached the chip (two reads of the memory that agreed).
    expect(cartridge.chip?.stats.bitsSent).toBeGreaterThanOrEqual(2 * description.idChips.layout.readBytes * 8);
  });

  it('reports each fault with its reason: absent, bus shorted, bad ROM CRC, bad identity CRC, contact lost, not a part, unprotected', { tags: ['REQ-PART-CHIP-INTEGRITY'] }, async () => {
    await connect(new VirtualPen({ seed: 4 }));
    await partsSettled();
    const { cartridge, nosecone } = pen.idChips;
    const good = { cartridge: cartridge.chip, nosecone: nosecone.chip };
    if (good.cartridge === null || good.nosecone === null) throw new Error('the virtual pen has no chips fitted');

    cartridge.fit(null);
    nosecone.shorted = true;
    let parts = await partsSettled(['cartridge', 'nosecone']);
    expect([parts.cartridge.status, parts.nosecone.status]).toEqual(['absent', 'bus_shorted']);
    expect([parts.cartridge.rom, parts.nosecone.rom]).toEqual(['', '']);

    const badRom = IdChip.part({ kind: 'cartridge', lot: 1, date: 2 }, 77n);
    badRom.rom[7] = (badRom.rom[7] ?? 0) ^ 0x01;
    cartridge.fit(badRom);
    nosecone.shorted = false;
    const lotAddress = description.idChips.layout.lotAddress;
    good.nosecone.memory[lotAddress] = (good.nosecone.memory[lotAddress] ?? 0) ^ 0x10;  // the identity page no longer matches its CRC
    parts = await partsSettled(['cartridge', 'nosecone']);
    expect([parts.cartridge.status, parts.nosecone.status]).toEqual(['crc_rom', 'crc_memory']);
    expect(parts.nosecone.rom).toBe(hex(good.nosecone.rom));  // the id was good: the part is named
    expect(parts.nosecone.lot).toBe(0);  // nothing from a memory that failed its check

    good.nosecone.memory[lotAddress] = (good.nosecone.memory[lotAddress] ?? 0) ^ 0x10;
    good.cartridge.loseContactAfterReadBits = 300;  // the contact opens in the middle of the memory read
    cartridge.fit(good.cartridge);
    const unprotected = IdChip.part({ kind: 'nosecone', lot: 5, date: 6 }, 78n);
    unprotected.memory[0x81] = 0xff;  // the sterilization tally page left open: it could be rewritten upward
    nosecone.fit(unprotected);
    parts = await partsSettled(['cartridge', 'nosecone']);
    expect([parts.cartridge.status, parts.nosecone.status]).toEqual(['contact_lost', 'unprotected']);
    expect(parts.cartridge.rom).toBe(hex(good.cartridge.rom));

    cartridge.fit(IdChip.part({ kind: 'nosecone', lot: 9, date: 9 }, 79n));  // a nosecone's chip where the cartridge's goes
    nosecone.fit(new IdChip(romId(80n, 0x23), partMemory({ kind: 'nosecone', lot: 1, date: 1 })));  // another family's chip
    parts = await partsSettled(['cartridge', 'nosecone']);
    expect([parts.cartridge.status, parts.nosecone.status]).toEqual(['not_a_part', 'not_a_part']);

    good.cartridge.disconnected = false;
    cartridge.fit(good.cartridge);
    nosecone.fit(good.nosecone);
    parts = await partsSettled(['cartridge', 'nosecone']);
    expect([parts.cartridge.status, parts.nosecone.status]).toEqual(['ok', 'ok']);
    expectNoTimingViolations();
  });

  it('follows the cartridge switch: absent at once when it comes out, read again once it is back', { tags: ['REQ-PART-CHIP-INTEGRITY'] }, async () => {
    await connect(new VirtualPen({ seed: 5 }));
    await partsSettled();
    pen.setInput('cartridgePresent', false);
    await pen.clock.sleep(5);
    expect((await device?.parts())?.cartridge.status).toBe('absent');
    const fresh = IdChip.part({ kind: 'cartridge', lot: 4242, date: 11000 }, 99n);
    pen.idChips.cartridge.fit(fresh);
    pen.setInput('cartridgePresent', true);
    await pen.clock.sleep(5);
    expect((await device?.parts())?.cartridge.status).toBe('unknown');  // contacts settling, then read
    const parts = await partsSettled();
    expect(parts.cartridge).toMatchObject({ status: 'ok', rom: hex(fresh.rom), lot: 4242, expiryDay: 11000 });
  });

  it('takes no presence pulse outside the 60–75 µs sampling window for one, and every pulse inside it at the datasheet corners', { tags: ['REQ-PART-CHIP-INTEGRITY'] }, async () => {
    await connect(new VirtualPen({ seed: 6 }));
    await partsSettled();
    const { cartridge, nosecone } = pen.idChips;
    const late = cartridge.chip, early = nosecone.chip;
    if (late === null || early === null) throw new Error('the virtual pen has no chips fitted');
    Object.assign(late.timing, { presenceDelayUs: 78, presenceLowUs: 120 });  // starts after the sample
    Object.assign(early.timing, { presenceDelayUs: 8, presenceLowUs: 48 });   // over before it
    let parts = await partsSettled(['cartridge', 'nosecone']);
    expect([parts.cartridge.status, parts.nosecone.status]).toEqual(['absent', 'absent']);
    Object.assign(late.timing, { presenceDelayUs: 60, presenceLowUs: 60 });   // tPDH max, tPDL min
    Object.assign(early.timing, { presenceDelayUs: 15, presenceLowUs: 60 });  // tPDH min, tPDL min: over at 75 µs
    parts = await partsSettled(['cartridge', 'nosecone']);
    expect([parts.cartridge.status, parts.nosecone.status]).toEqual(['ok', 'ok']);
    expectNoTimingViolations();
  });
});

describe('a mark written through scratchpad and copy', () => {
  it('burns the next bit of the nosecone tally, one way, and reads it back', { tags: ['REQ-STERILIZATION-RECORD'] }, async () => {
    const connected = await connect(provisionedVirtualPen({ seed: 7 }));
    const before = await partsSettled();
    const chip = pen.idChips.nosecone.chip;
    if (chip === null) throw new Error('no nosecone chip');
    const rom = Uint8Array.from(chip.rom);
    await connected.serviceCommand('record_sterilization', { noseconeRom: rom });
    const after = await partsSettled();
    expect(after.lastWrite).toBe('ok');
    expect(after.nosecone).toMatchObject({ status: 'ok', sterilizations: before.nosecone.sterilizations + 1, unusedSinceSterilization: true });
    expect(chip.memory[description.idChips.layout.markPageAddress]).toBe(0xfc);  // bits 0 and 1 cleared, the rest as it was
    expect(chip.stats.copies).toBe(1);
    // The page is in EPROM mode: a copy can only clear bits, whatever the scratchpad was sent.
    expect(chip.memory[0x81]).toBe(0xaa);
    expectNoTimingViolations();
  });

  it('is either whole or not there after an MCU reset: during the copy the chip finishes on its own, before it nothing was written', { tags: ['REQ-STERILIZATION-RECORD', 'REQ-RESET-SAFE'] }, async () => {
    const connected = await connect(provisionedVirtualPen({ seed: 8 }));
    await partsSettled();
    const bus = pen.idChips.nosecone;
    const chip = bus.chip;
    if (chip === null) throw new Error('no nosecone chip');
    const rom = Uint8Array.from(chip.rom);
    const tallyBefore = chip.memory[description.idChips.layout.markPageAddress];

    // A reset in the middle of Write Scratchpad: nothing reaches the memory.
    await connected.serviceCommand('record_sterilization', { noseconeRom: rom });
    pen.runUntil(() => chip.protocolState === 'scratchpadData' && chip.scratchpadBytesReceived >= 3, 200);
    expect(chip.scratchpadBytesReceived).toBe(3);
    await connected.close();
    device = null;
    pen.resetMcu('external');
    let reconnected = await connect(pen);
    let parts = await partsSettled();
    expect(chip.memory[description.idChips.layout.markPageAddress]).toBe(tallyBefore);
    expect(parts.nosecone.sterilizations).toBe(1);
    expect(chip.stats.copies).toBe(0);

    // A reset while the chip programs: it completes, and the firmware reads the new tally after the restart.
    await reconnected.serviceCommand('record_sterilization', { noseconeRom: rom });
    pen.runUntil(() => chip.programmingAt(pen.totalCycles), 500);
    expect(chip.programmingAt(pen.totalCycles)).toBe(true);
    await reconnected.close();
    device = null;
    pen.resetMcu('external');
    reconnected = await connect(pen);
    parts = await partsSettled();
    expect(chip.stats.copies).toBe(1);
    expect(parts.nosecone.sterilizations).toBe(2);
    expect(parts.lastWrite).toBe('none');  // a new boot: the write it started is gone, its effect is on the chip
    expectNoTimingViolations();
  });
});

describe('hostile frames', () => {
  it('refuses get_parts with extra bytes, cut short or asking for parts that do not exist, and record_sterilization without a grant', { tags: ['REQ-HOSTILE-HOST', 'REQ-ROLES'] }, async () => {
    pen = provisionedVirtualPen({ seed: 9 });
    pen.start();
    const raw = new RawClient(pen);
    await raw.handshake();
    const sendPayload = async (seq: number, payload: Uint8Array): Promise<Message> => {
      const from = raw.frames.length;
      raw.sendFrame(0x10 | seq, payload);
      return decodeMessage((await raw.nextAnswer(from)).payload);
    };
    const good = encodeMessage('get_parts', { reread: 0 });
    expect(await sendPayload(1, Uint8Array.from([...good, 0]))).toMatchObject({ name: 'error', fields: { code: ErrorCode.bad_length, detail: 2 } });
    expect(await sendPayload(2, Uint8Array.of(messageSpecs.get_parts.id))).toMatchObject({ name: 'error', fields: { code: ErrorCode.bad_length, detail: 2 } });
    expect(await sendPayload(3, encodeMessage('get_parts', { reread: 4 }))).toMatchObject({ name: 'error', fields: { code: ErrorCode.out_of_range, detail: 4 } });
    expect(await sendPayload(4, encodeMessage('record_sterilization', { noseconeRom: new Uint8Array(8) })))
      .toMatchObject({ name: 'error', fields: { code: ErrorCode.role_required, detail: Role.reprocessing } });
    // Allowed in FAULT: the e-stop latches one, and the parts are still reported.
    pen.setInput('estop', true);
    await pen.clock.sleep(10);
    expect(await sendPayload(5, good)).toMatchObject({ name: 'parts' });
    expect(pen.idChips.nosecone.chip?.stats.copies).toBe(0);
  });
});
