// Role checks on the pen: simulated CPU cycles the real firmware spends on a challenge (computing the expected answer,
// HMAC-SHA256) and on an answer (the wrong-answer count written to EEPROM first, then the constant-time compare), each
// from the frame's last byte arriving to the reply going out; the longest main-loop pass meanwhile against the
// watchdog period; the stack reached, against the RAM left above the static data. On the virtual pen, provisioned
// through the wire with the test keys, answering rightly (the grant) and wrongly.
import { pen as penDescription } from '../hardware/description.ts';
import { VirtualPen, type PenUart } from '../hardware/sim/virtual-pen.ts';
import { codeSymbol, elfSymbols } from '../hardware/sim/elf-symbols.ts';
import { FrameKind, PROTOCOL_VERSION, Role, messageSpecs, type HostMessageName, type MessageFields } from '../hardware/generated/protocol.ts';
import { challengeAnswer, testKeys } from '../hal/auth.ts';
import { PenDevice } from '../hal/device.ts';
import { decodeMessage, encodeMessage, type Message } from '../hal/link/codec.ts';
import { encodeFrame, FrameParser, type Frame } from '../hal/link/frame.ts';
import { percentile, progress, round, type Figure } from './figure.ts';
import { cyclesPerMs, cyclesPerUartByte } from './running-pen.ts';

const serial = 'SIM-BENCH';
const samples = 6;
const SPL = 0x5d;
const SPH = 0x5e;

interface Handled {
  readonly reply: Message;
  /** From the frame's last byte received to the dispatcher's start on it, and to its reply's encoding. */
  readonly toExecuteCycles: number;
  readonly toReplyCycles: number;
  /** The longest gap between two watchdog kicks (main-loop passes) while it was handled, in ms. */
  readonly longestPassMs: number;
  readonly lowestSp: number;
  /** EEPROM bytes the MCU wrote meanwhile (each is erased, then written). */
  readonly eepromBytes: number;
}

/** Raw frames on the pen's UART, with the MCU paused between them so every cycle is counted. */
class Bench {
  private seq = 1;
  private readonly frames: Frame[] = [];
  private readonly parser = new FrameParser();
  private readonly executeWord: number;
  private readonly encodeWord: number;

  constructor(readonly pen: VirtualPen, private readonly port: PenUart) {
    port.onData((bytes) => this.parser.push(bytes, (frame) => this.frames.push(frame)));
    this.executeWord = codeSymbol(pen.elfPath, 'link_execute').address / 2;
    this.encodeWord = codeSymbol(pen.elfPath, 'link_encode').address / 2;
  }

  private replyAfter(from: number): Frame | undefined {
    return this.frames.slice(from).find((frame) => (frame.seqByte & 0xf0) === FrameKind.reply);
  }

  /** Sync and identify with the loop running. */
  async open(): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const from = this.frames.length;
      this.port.write(encodeFrame(FrameKind.sync, new Uint8Array(0)));
      await this.pen.clock.sleep(20);
      if (this.replyAfter(from) !== undefined) break;
    }
    this.seq = 0;
    await this.send('identify', { hostProtocolVersion: PROTOCOL_VERSION });
    // The provisioning host went silent before this one came: the pen latched heartbeat_lost, which refuses challenges.
    await this.send('clear_fault', {});
  }

  async send<K extends HostMessageName>(name: K, fields: MessageFields[K]): Promise<Message> {
    const from = this.frames.length;
    this.port.write(encodeFrame(FrameKind.data | this.nextSeq(), encodeMessage(name, fields)));
    for (let ms = 0; ms < 200; ms++) {
      const reply = this.replyAfter(from);
      if (reply !== undefined) return decodeMessage(reply.payload);
      await this.pen.clock.sleep(1);
    }
    throw new Error(`auth bench: no reply to ${name}`);
  }

  private nextSeq(): number {
    const seq = this.seq;
    this.seq = (seq + 1) & 0x0f;
    return seq;
  }

  /** One frame, the MCU run instruction by instruction (the loop paused) until its reply is out. */
  handle<K extends HostMessageName>(name: K, fields: MessageFields[K]): Handled {
    const { pen } = this;
    const wire = encodeFrame(FrameKind.data | this.nextSeq(), encodeMessage(name, fields));
    const from = this.frames.length;
    // The write is synchronous and the MCU paused, so its bytes start arriving now, one per UART byte time.
    const receivedCycle = pen.totalCycles + wire.length * cyclesPerUartByte;
    let executeCycle = Number.NaN;
    let replyCycle = Number.NaN;
    let lastKick = pen.lastWatchdogKickMs;
    let longestPassMs = 0;
    let lowestSp = Number.POSITIVE_INFINITY;
    let spHalfWritten = false;
    let eepromChanges = 0;
    const cpu = pen.mcu;
    const sph = cpu.writeHooks[SPH];
    const spl = cpu.writeHooks[SPL];
    // A frame is made by writing SPH, then SPL: in between, SP is half old, half new, and is not sampled.
    cpu.writeHooks[SPH] = (value, old, address, mask) => {
      spHalfWritten = true;
      return sph?.(value, old, address, mask) ?? false;
    };
    cpu.writeHooks[SPL] = (value, old, address, mask) => {
      spHalfWritten = false;
      return spl?.(value, old, address, mask) ?? false;
    };
    pen.eeprom.onChange = () => { eepromChanges++; };
    this.port.write(wire);
    // Until the reply is out and the pass that handled the frame has ended (the next watchdog kick).
    let kicksAfterReply = 0;
    pen.runUntil(() => {
      const kick = pen.lastWatchdogKickMs;
      if (kick !== lastKick && kick !== null && lastKick !== null) {
        longestPassMs = Math.max(longestPassMs, kick - lastKick);
        if (!Number.isNaN(replyCycle)) kicksAfterReply++;
      }
      lastKick = kick;
      if (!spHalfWritten) lowestSp = Math.min(lowestSp, cpu.SP);
      if (Number.isNaN(executeCycle) && cpu.pc === this.executeWord) executeCycle = pen.totalCycles;
      else if (!Number.isNaN(executeCycle) && Number.isNaN(replyCycle) && cpu.pc === this.encodeWord) replyCycle = pen.totalCycles;
      return this.replyAfter(from) !== undefined && kicksAfterReply > 0;
    }, 500);
    pen.eeprom.onChange = null;
    // Put back as they were (none: a hook that leaves the write to the CPU, which is what none does).
    cpu.writeHooks[SPH] = sph ?? ((): boolean => false);
    cpu.writeHooks[SPL] = spl ?? ((): boolean => false);
    const reply = this.replyAfter(from);
    if (reply === undefined || Number.isNaN(replyCycle)) throw new Error(`auth bench: ${name} was not answered`);
    return {
      reply: decodeMessage(reply.payload), toExecuteCycles: executeCycle - receivedCycle, toReplyCycles: replyCycle - receivedCycle,
      longestPassMs, lowestSp, eepromBytes: Math.round(eepromChanges / 2),
    };
  }
}

export async function measure(): Promise<Figure[]> {
  const pen = new VirtualPen({ seed: 1 });
  pen.start();
  const device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
  await device.provision(serial, testKeys);
  await device.close();
  const bench = new Bench(pen, pen.openPort());
  await bench.open();
  const commandId = messageSpecs.set_depth_calibration.id;
  const challenges: Handled[] = [];
  const rightAnswers: Handled[] = [];
  const wrongAnswers: Handled[] = [];
  for (let i = 0; i < samples; i++) {
    const wrong = i === samples - 1;
    // Between samples: a heartbeat, the EEPROM left to finish, the loop paused again.
    for (let tries = 0; tries < 100; tries++) {
      const status = await bench.send('get_auth_status', {});
      if (status.name === 'auth_status' && status.fields.writePending === 0 && status.fields.lockoutMs === 0) break;
      await pen.clock.sleep(20);
    }
    await pen.stop();
    const challenge = bench.handle('request_challenge', { role: Role.technician, commandId });
    if (challenge.reply.name !== 'challenge') throw new Error(`auth bench: request_challenge answered ${JSON.stringify(challenge.reply)}`);
    challenges.push(challenge);
    const mac = wrong ? new Uint8Array(32) : challengeAnswer(testKeys.technician, challenge.reply.fields.nonce, serial, commandId);
    const answer = bench.handle('answer_challenge', { mac });
    if (answer.reply.name !== (wrong ? 'error' : 'ok')) throw new Error(`auth bench: answer_challenge answered ${JSON.stringify(answer.reply)}`);
    (wrong ? wrongAnswers : rightAnswers).push(answer);
    pen.start();
    // The grant's command (or, after the wrong answer, its refusal).
    await bench.send('set_depth_calibration', { stepsPerMmX100: 160000 + i, zeroOffsetUm: 0 });
  }
  await pen.stop();

  const stackTop = elfSymbols(pen.elfPath).find((symbol) => symbol.name === '__stack')?.address ?? Number.NaN;
  const staticEnd = (elfSymbols(pen.elfPath).find((symbol) => symbol.name === '_end')?.address ?? Number.NaN) - 0x800000;
  const lowestSp = Math.min(...[...challenges, ...rightAnswers, ...wrongAnswers].map((handled) => handled.lowestSp));
  const us = (cycles: number): number => round((cycles / cyclesPerMs) * 1000, 1);
  const challengeCycles = challenges.map((c) => c.toReplyCycles);
  const answerCycles = rightAnswers.map((a) => a.toReplyCycles);
  const wrongCycles = wrongAnswers.map((a) => a.toReplyCycles);
  const longestPassMs = Math.max(...[...challenges, ...rightAnswers, ...wrongAnswers].map((handled) => handled.longestPassMs));
  const eepromBytes = Math.max(...[...rightAnswers, ...wrongAnswers].map((handled) => handled.eepromBytes));
  progress(`challenge ${percentile(challengeCycles, 50)} cycles, right answer ${percentile(answerCycles, 50)}, wrong answer ${wrongCycles[0] ?? Number.NaN}; ` +
    `longest pass ${round(longestPassMs, 2)} ms; stack down to 0x${lowestSp.toString(16)} (static data ends at 0x${staticEnd.toString(16)})`);
  const frameNote = 'from the frame\'s last byte received to the reply being encoded; the MCU at 16 MHz, simulated cycles';
  return [
    { name: 'auth_challenge_cycles', value: percentile(challengeCycles, 50), unit: 'cycles', note: `request_challenge: nonce and the expected answer (HMAC-SHA256 of 33 bytes under a 32-byte key read from EEPROM), ${frameNote}; n=${challengeCycles.length}` },
    { name: 'auth_challenge_us', value: us(percentile(challengeCycles, 50)), unit: 'µs', note: 'the same, in µs' },
    { name: 'auth_answer_cycles', value: percentile(answerCycles, 50), unit: 'cycles', note: `answer_challenge, right: the wrong-answer count written to one EEPROM copy first (${eepromBytes} bytes at most, 3.4 ms each on the chip, 3.6 ms in avr8js), then the compare and the grant, ${frameNote}; n=${answerCycles.length}` },
    { name: 'auth_answer_us', value: us(percentile(answerCycles, 50)), unit: 'µs', note: 'the same, in µs' },
    { name: 'auth_wrong_answer_cycles', value: wrongCycles[0] ?? Number.NaN, unit: 'cycles', note: `answer_challenge, wrong: the same work, then the lockout, ${frameNote}` },
    { name: 'auth_to_dispatch_cycles', value: percentile(challenges.map((c) => c.toExecuteCycles), 50), unit: 'cycles', note: 'from a challenge request\'s last byte received to the dispatcher taking it (the main loop\'s latency, not the role check)' },
    { name: 'auth_longest_loop_pass_ms', value: round(longestPassMs, 3), unit: 'ms', note: `the longest gap between watchdog kicks while challenges and answers were handled; the watchdog bites after ${penDescription.timing.watchdogTimeoutMs} ms` },
    { name: 'auth_stack_headroom_bytes', value: lowestSp - staticEnd, unit: 'B', note: `RAM left between the static data's end and the lowest stack pointer seen while handling them (stack top 0x${(stackTop & 0xffff).toString(16)})` },
  ];
}
