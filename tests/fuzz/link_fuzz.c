// libFuzzer harness for the firmware's link and dispatcher with the real logic behind them (commands, safety,
// calibration, storage) over the fake board, built for this machine with ASan and UBSan. Each input starts at power-on,
// after a valid handshake (sync frame, identify with PROTOCOL_VERSION), with a good cartridge and nosecone fitted (the
// fake ID chips of fake_chips_fit_parts, read from 0.1 s after start-up, by 0.2 s), and is read as a script of chunks;
// the first byte of a chunk picks what happens (low 3 bits) and a parameter (high 5 bits):
//   0 raw: param+1 bytes straight onto the wire (garbage, STOP bytes, escapes, partial frames), then a main-loop pass
//   1 command: a length byte and that many payload bytes, framed as data with the sequence number the pen expects
//   2 frame: a seq byte (kind | seq), a length byte and the payload, framed with a good CRC (sync, NAK, replays...)
//   3 replay: the last frame sent by 1 or 2, byte for byte
//   4 time: 1 to 300 ms pass (param's low 4 bits), with the host's heartbeat every 100 ms when param bit 4 is set
//   5 input: e-stop, cartridge, home switch or footswitch change (the pin interrupts run as sensors.c's do)
//   6 stepper: the move ends, homing ends (done, switch not found, stuck), motion by steps per ms, lost steps, slip
//   7 sensor: the next byte sets temperature, supply, depth sensor offset, plausibility, settling, motor fault,
//     motor current, or stalls the main loop for that many ticks; or (param 11) the host answers the last challenge
//     the pen issued rightly, with the key the pen holds, as a host with the keys would; or (param 12) an ID chip
//     fault: the next byte's bit 0 picks the chip, bits 1-2 toggle its presence, a shorted bus, a copy that programs
//     nothing, a copy refused, and bits 3-7 flip one read of a marks byte (0x20 + 2 * those bits)

// Invariants, checked all along (abort() on a breach, so libFuzzer keeps the input):
//   - the motor never runs outside RUNNING, nor with the e-stop open, the cartridge out or the host silent past
//     HEARTBEAT_TIMEOUT_MS; a STOP byte turns it off at once
//   - the motor never runs on parts that still read fresh: the fake cartridge's used mark byte is burnt, and so is the
//     use mark of the fake nosecone's latest sterilization (as the chips' memory holds them, not as the pen says)
//   - the ID chips are one-way: no bit of a marks page (EPROM mode) ever goes from 0 back to 1, and nothing outside
//     the marks pages ever changes (the identity page is write-protected; the pen writes marks only)
//   - every stepper_move_to target lies in [calibration_steps_for_um(DEPTH_MIN_UM), calibration_steps_for_um(
//     DEPTH_MAX_UM)] and at or under DEPTH_LIMIT_STEPS, with the calibration in force at that moment, from a homed pen
//     in IDLE, ARMED or RUNNING. Homing and the safe path's retracts are not moves: they only ever aim at or past
//     home (homing seeks 0 from an assumed far end; a retract aims at or past home), so for them the check is that
//     they never aim deeper than the needle is.
//   - executions follow the sequence numbers: the first after a sync carries seq 0, each next one the seq after the
//     previous, so a frame replayed with a seq already executed is answered from the replay buffer, never executed
//     again (link_execute and link_on_frame are observed through the linker's --wrap)
//   - after every millisecond's pass, ARMED or RUNNING means homed, inside the depth window by both channels, no
//     interlock, cartridge in; FAULT holds exactly when a fault code is latched
//   - a service command (a message with a role) is accepted only as the very frame after an accepted answer (or, for
//     provision, on a pen not yet provisioned); the HMAC runs only in HOMING_REQUIRED or IDLE, stepper still, motor off
// With LINK_FUZZ_TRACE set in the environment it prints where each input left the pen (run it on corpus files).
#include <stdint.h>      // uint8_t
#include <stdio.h>       // fprintf
#include <stdlib.h>      // abort, getenv
#include <string.h>      // memcpy
#include "fake_board.h"  // fake, fake_complete_move
#include "fake_pen.h"    // fake_pen_boot, fake_pen_receive, fake_host_sync
#include "pen.h"         // pen_link_parser, pen_link_session
#include "board.h"       // TIMEBASE_TICKS_PER_MS
#include "safety.h"      // safety_state, safety_fault, safety_depth_refusal
#include "calibration.h" // calibration_steps_for_um
#include "link.h"        // link_encode, LINK_REPLY_MAX
#include "protocol.h"    // FRAME_*, MSG_*, PEN_STATE_*
#include "faults.h"      // FAULT_*
#include "pen_config.h"  // DEPTH_*, HEARTBEAT_TIMEOUT_MS, WATCHDOG_TIMEOUT_MS
#include "auth.h"        // auth_provisioned, auth_serial
#include "storage.h"     // storage_payload_address
#include "sha256.h"      // hmac_sha256, struct hmac_sha256_context
#include "fake_chips.h"  // fake_chips, fake_chips_fit_parts

#define MAX_MS_PER_INPUT 3000  // keeps every input quick: the heartbeat timeout fits ten times over
#define AUTO_STEPS_PER_MS 16   // DEPTH_AXIS_MAX_STEPS_PER_SECOND / 1000

// The logic's static variables, placed by logic_state.h.
extern uint8_t __start_pen_logic_data[], __stop_pen_logic_data[], __start_pen_logic_bss[], __stop_pen_logic_bss[];
static uint8_t power_on_data[4096];

static uint8_t trace;  // LINK_FUZZ_TRACE set: one line per input saying where it left the pen
static uint32_t executions;
static uint8_t expected_exec_seq, in_frame, frame_seq, frame_kind, executed_in_frame;
static uint32_t last_heartbeat_ms, ms_used;
static uint8_t last_frame[LINK_WIRE_MAX_BYTES], last_frame_length;
static uint8_t granted_next;  // the last execution was an accepted answer_challenge
static uint32_t service_runs;   // service commands accepted
static msg_challenge_t last_challenge;
static uint8_t challenge_seen;
// The fake ID chips' memory as last checked: the one-way check compares against it. Only a copy changes a chip's
// memory, so the memory is looked at only when a chip's copy count moved; parts_marked says what it showed then.
static uint8_t chip_memory[2][FAKE_CHIP_MEMORY_BYTES];
static uint32_t chip_copies[2];
static uint8_t parts_marked;  // bit 0: the cartridge's used mark burnt; bit 1: the nosecone's latest use mark burnt

// The role each host message needs (ROLE_OPERATOR: none), from the protocol description.
struct host_message { uint8_t id, role; };
#define HOST_MESSAGE(name, length, allowed_in_fault, role) { MSG_##name, role },
static const struct host_message host_messages[] = { HOST_MESSAGES(HOST_MESSAGE) };

static uint8_t role_of(uint8_t id) {
  for (size_t i = 0; i < sizeof host_messages / sizeof host_messages[0]; i++) {
    if (host_messages[i].id == id) return host_messages[i].role;
  }
  return ROLE_OPERATOR;
}

static void breach(const char *what, long a, long b) {
  fprintf(stderr, "invariant broken at %lu ms (state %u, fault %u): %s (%ld, %ld)\n", (unsigned long)fake.now_ms,
          safety_state(), safety_fault(), what, a, b);
  abort();
}

// ---- executions, observed through --wrap ----

uint8_t __real_link_execute(const uint8_t *request, uint8_t length, uint8_t *reply);
void __real_link_on_frame(struct link_session *session, const uint8_t *frame);

uint8_t __wrap_link_execute(const uint8_t *request, uint8_t length, uint8_t *reply) {
  if (!in_frame || frame_kind != FRAME_KIND_DATA) breach("a command executed outside a data frame", frame_kind, in_frame);
  if (executed_in_frame) breach("one frame executed twice", frame_seq, 0);
  if (frame_seq != expected_exec_seq) breach("executed a seq out of turn (a replay executed again?)", frame_seq, expected_exec_seq);
  executed_in_frame = 1;
  executions++;
  expected_exec_seq = (uint8_t)((frame_seq + 1) & 0x0F);
  uint8_t free_provision = request[0] == MSG_PROVISION && !auth_provisioned();
  uint8_t reply_length = __real_link_execute(request, length, reply);
  if (reply_length == 0 || reply_length > LINK_REPLY_MAX) breach("reply length", reply_length, LINK_REPLY_MAX);
  if (request[0] == MSG_HEARTBEAT && reply[0] == MSG_OK) last_heartbeat_ms = fake.now_ms;
  if (role_of(request[0]) != ROLE_OPERATOR && reply[0] == MSG_OK && !granted_next && !free_provision) {
    breach("a service command ran without a grant", request[0], role_of(request[0]));
  }
  if (role_of(request[0]) != ROLE_OPERATOR && reply[0] == MSG_OK) service_runs++;
  granted_next = request[0] == MSG_ANSWER_CHALLENGE && reply[0] == MSG_OK;
  if (reply[0] == MSG_CHALLENGE && reply_length == sizeof last_challenge) {
    memcpy(&last_challenge, reply, sizeof last_challenge);
    challenge_seen = 1;
  }
  return reply_length;
}

// The HMAC holds the main loop about 13 ms on the AVR: never while the needle can move.
void __real_hmac_sha256_init(struct hmac_sha256_context *context, const uint8_t *key, size_t key_length);
void __wrap_hmac_sha256_init(struct hmac_sha256_context *context, const uint8_t *key, size_t key_length) {
  uint8_t state = safety_state();
  if ((state != PEN_STATE_HOMING_REQUIRED && state != PEN_STATE_IDLE) || fake.moving || fake.homing || fake.motor_running) {
    breach("HMAC computed while the needle can move", state, fake.moving);
  }
  __real_hmac_sha256_init(context, key, key_length);
}

void __wrap_link_on_frame(struct link_session *session, const uint8_t *frame) {
  in_frame = 1;
  frame_kind = frame[1] & 0xF0;
  frame_seq = frame[1] & 0x0F;
  executed_in_frame = 0;
  __real_link_on_frame(session, frame);
  in_frame = 0;
  if (frame_kind == FRAME_KIND_SYNC) expected_exec_seq = 0;
}

// ---- invariants ----

static void check_move(int32_t target_steps) {
  uint8_t state = safety_state();
  if (state != PEN_STATE_IDLE && state != PEN_STATE_ARMED && state != PEN_STATE_RUNNING) breach("move in state", state, 0);
  if (!fake.homed) breach("move while not homed", target_steps, 0);
  if (target_steps < calibration_steps_for_um(DEPTH_MIN_UM)) breach("move target shallower than the window", target_steps, calibration_steps_for_um(DEPTH_MIN_UM));
  if (target_steps > calibration_steps_for_um(DEPTH_MAX_UM)) breach("move target deeper than the window", target_steps, calibration_steps_for_um(DEPTH_MAX_UM));
  if (target_steps > DEPTH_LIMIT_STEPS) breach("move target past the step limit", target_steps, DEPTH_LIMIT_STEPS);
}

static void check_retract(int32_t target_steps, uint8_t trust_switch) {
  if (target_steps > 0 && target_steps >= fake.position) breach("retract aims deeper", target_steps, fake.position);
  if (trust_switch && safety_state() == PEN_STATE_FAULT && safety_fault() == FAULT_HOME_SWITCH_STUCK) {
    breach("retract trusts a switch latched as stuck", target_steps, 0);
  }
}

#define MARKS_FIRST PART_LAYOUT_MARK_PAGE_ADDRESS
#define MARKS_END (PART_LAYOUT_USE_MARK_PAGE_ADDRESS + 32)  // the tally (or used mark) page, then the use marks page

// The use mark of the nosecone's latest sterilization is burnt (none sterilized: not ready, so not burnt either).
static uint8_t nosecone_use_burnt(const uint8_t *memory) {
  for (int offset = 31; offset >= 0; offset--) {
    uint8_t tally = memory[PART_LAYOUT_MARK_PAGE_ADDRESS + offset];
    if (tally == 0xFF) continue;
    int bit = 7;
    while ((tally >> bit) & 1) bit--;  // the highest cleared bit: the latest sterilization
    return !((memory[PART_LAYOUT_USE_MARK_PAGE_ADDRESS + offset] >> bit) & 1);
  }
  return 0;
}

static void note_chips(void) {
  for (uint8_t bus = 0; bus < 2; bus++) {
    memcpy(chip_memory[bus], fake_chips[bus].memory, FAKE_CHIP_MEMORY_BYTES);
    chip_copies[bus] = fake_chips[bus].copies;
  }
  parts_marked = (uint8_t)((chip_memory[0][PART_LAYOUT_MARK_PAGE_ADDRESS] != 0xFF) | (nosecone_use_burnt(chip_memory[1]) << 1));
}

// EPROM marks only go from 1 to 0; everything else on the chips stays as laid out.
static void check_chips(void) {
  if (fake_chips[0].copies == chip_copies[0] && fake_chips[1].copies == chip_copies[1]) return;  // nothing written
  for (uint8_t bus = 0; bus < 2; bus++) {
    const uint8_t *now = fake_chips[bus].memory, *before = chip_memory[bus];
    for (int address = 0; address < FAKE_CHIP_MEMORY_BYTES; address++) {
      uint8_t marks = address >= MARKS_FIRST && address < MARKS_END;
      if (marks && (now[address] & ~before[address])) breach("a chip's mark went back from 0 to 1", bus, address);
      if (!marks && now[address] != before[address]) breach("a chip changed outside its marks pages", bus, address);
    }
  }
  note_chips();
}

static void check_always(void) {
  check_chips();
  uint8_t state = safety_state(), fault = safety_fault();
  if (state > PEN_STATE_FAULT) breach("state out of range", state, 0);
  if ((state == PEN_STATE_FAULT) != (fault != FAULT_NONE)) breach("FAULT without a fault code, or a code outside FAULT", state, fault);
  if (pen_link_session()->expected_seq > 0x0F || pen_link_parser()->length > FRAME_MAX_BYTES) breach("link state", pen_link_session()->expected_seq, pen_link_parser()->length);
  if (!fake.motor_running) return;
  if (state != PEN_STATE_RUNNING) breach("motor on outside RUNNING", state, 0);
  if (fake.inputs & (1 << INPUT_BIT_ESTOP)) breach("motor on with the e-stop open", fake.inputs, 0);
  if (!(fake.inputs & (1 << INPUT_BIT_CARTRIDGE_PRESENT))) breach("motor on with the cartridge out", fake.inputs, 0);
  if (fake.now_ms - last_heartbeat_ms > HEARTBEAT_TIMEOUT_MS) breach("motor on with the host silent", (long)(fake.now_ms - last_heartbeat_ms), HEARTBEAT_TIMEOUT_MS);
  if (!(parts_marked & 1)) breach("motor on with the cartridge's used mark unburnt", 0, 0);
  if (!(parts_marked & 2)) breach("motor on with the nosecone's use mark unburnt", 1, 0);
}

// After a millisecond's pass the supervisor has looked at everything.
static void check_after_poll(void) {
  check_always();
  uint8_t state = safety_state();
  if (state != PEN_STATE_ARMED && state != PEN_STATE_RUNNING) return;
  int32_t detail;
  if (!fake.homed) breach("armed while not homed", state, 0);
  if (safety_depth_refusal(&detail)) breach("armed outside the depth window", state, detail);
  if (safety_interlock() != FAULT_NONE) breach("armed with an interlock tripped", state, safety_interlock());
  if (!(fake.inputs & (1 << INPUT_BIT_CARTRIDGE_PRESENT))) breach("armed with the cartridge out", state, 0);
}

// ---- the plant and the host ----

static void receive(const uint8_t *bytes, size_t length) {
  for (size_t i = 0; i < length; i++) {
    fake_pen_receive(bytes + i, 1);
    if (bytes[i] == FRAME_STOP && fake.motor_running) breach("motor still on after a STOP byte", 0, 0);
    check_always();
  }
  fake_pen_loop_pass();  // main() polls once the receive ring is drained
  check_always();
}

static void send_frame(uint8_t seq_byte, const uint8_t *payload, uint8_t length) {
  last_frame_length = link_encode(last_frame, seq_byte, payload, length);
  receive(last_frame, last_frame_length);
}

static void advance(uint32_t ms, uint8_t heartbeats) {
  if (ms > MAX_MS_PER_INPUT - ms_used) ms = MAX_MS_PER_INPUT - ms_used;
  ms_used += ms;
  while (ms--) {
    if (heartbeats && fake.now_ms % 100 == 0) {
      uint8_t heartbeat = MSG_HEARTBEAT;
      send_frame((uint8_t)(FRAME_KIND_DATA | pen_link_session()->expected_seq), &heartbeat, 1);
    }
    fake_pen_advance_ms(1);
    check_after_poll();
  }
}

// A main loop stalled for a while: the 1 kHz tick runs, the loop does not (the watchdog bites past 60 ms).
static void stall(uint8_t ticks) {
  ticks %= WATCHDOG_TIMEOUT_MS;
  if (ticks > MAX_MS_PER_INPUT - ms_used) ticks = (uint8_t)(MAX_MS_PER_INPUT - ms_used);
  ms_used += ticks;
  while (ticks--) {
    fake.now_ms++;
    fake.ticks += TIMEBASE_TICKS_PER_MS;
    fake.tick_1khz();
    check_always();
  }
}

static void set_input(uint8_t which) {
  switch (which % 8) {
    case 0: fake_set_input(INPUT_BIT_ESTOP, 1); break;
    case 1: fake_set_input(INPUT_BIT_ESTOP, 0); break;
    case 2: fake_set_input(INPUT_BIT_CARTRIDGE_PRESENT, 0); break;
    case 3: fake_set_input(INPUT_BIT_CARTRIDGE_PRESENT, 1); break;
    case 4: fake_set_input(INPUT_BIT_HOME_SWITCH, 1); break;
    case 5: fake_set_input(INPUT_BIT_HOME_SWITCH, 0); break;
    case 6: fake_set_input(INPUT_BIT_FOOTSWITCH, !((fake.inputs >> INPUT_BIT_FOOTSWITCH) & 1)); break;
    default: break;
  }
  check_always();
}

static void stepper_event(uint8_t which, int8_t amount) {
  switch (which % 8) {
    case 0: fake_complete_move(); break;
    case 1: fake_finish_homing(HOMING_DONE); break;
    case 2: fake_finish_homing(HOMING_SWITCH_NOT_FOUND); break;
    case 3: fake_finish_homing(HOMING_SWITCH_STUCK); break;
    case 4: fake.steps_per_ms = AUTO_STEPS_PER_MS; break;
    case 5: fake.steps_per_ms = 0; break;
    case 6: fake.position += amount; break;  // lost steps: the count moves, the carriage does not
    default: fake.carriage += amount; break;  // slip: the carriage moves, the count does not
  }
  check_always();
}

// A host holding the keys answers the last challenge rightly (the key read from the pen's own EEPROM, as provisioned).
static void answer_last_challenge(void) {
  if (!challenge_seen || !auth_provisioned() || last_challenge.role < ROLE_REPROCESSING || last_challenge.role > ROLE_ENGINEER) return;
  uint8_t key[AUTH_KEY_BYTES], message[AUTH_NONCE_BYTES + AUTH_SERIAL_BYTES + 1];
  uint16_t address = storage_payload_address(STORAGE_IDENTITY) + AUTH_SERIAL_BYTES + (uint16_t)(last_challenge.role - ROLE_REPROCESSING) * AUTH_KEY_BYTES;
  for (uint8_t i = 0; i < AUTH_KEY_BYTES; i++) key[i] = fake.eeprom[address + i];
  memcpy(message, last_challenge.nonce, AUTH_NONCE_BYTES);
  memcpy(message + AUTH_NONCE_BYTES, auth_serial(), AUTH_SERIAL_BYTES);
  message[AUTH_NONCE_BYTES + AUTH_SERIAL_BYTES] = last_challenge.command_id;
  msg_answer_challenge_t answer = { MSG_ANSWER_CHALLENGE, { 0 } };
  hmac_sha256(key, sizeof key, message, sizeof message, answer.mac);
  send_frame((uint8_t)(FRAME_KIND_DATA | pen_link_session()->expected_seq), (const uint8_t *)&answer, sizeof answer);
}

static void sensor_event(uint8_t which, uint8_t value) {
  switch (which % 16) {
    case 0: fake.temperature_deci_c = (int16_t)(200 + value * 2); break;  // 20.0 to 71.0 degC
    case 1: fake.supply_mv = (uint16_t)(9000 + value * 20); break;        // 9.0 to 14.1 V
    case 2: {
      int32_t mv = fake_depth_mv_for_steps(fake.carriage) + (int8_t)value * 4;
      fake.depth_sensor_follows = 0;
      fake.depth_mv = (uint16_t)(mv < 0 ? 0 : mv > 5000 ? 5000 : mv);
      break;
    }
    case 3: fake.depth_sensor_follows = 1; break;
    case 4: fake.ntc_plausible = !fake.ntc_plausible; break;
    case 5: fake.depth_sensor_plausible = !fake.depth_sensor_plausible; break;
    case 6: fake.settled = !fake.settled; break;
    case 7: fake.motor_fault = value % 3 == 0 ? FAULT_MOTOR_STALL : value % 3 == 1 ? FAULT_SPEED_TOLERANCE : FAULT_NONE; break;
    case 8: fake.current_ma = (uint16_t)(value * 20); break;
    case 9: fake.eeprom_busy = value & 1; break;
    case 10: stall(value); break;
    case 11: answer_last_challenge(); break;
    case 12: {
      struct fake_chip *chip = &fake_chips[value & 1];
      switch ((value >> 1) & 3) {
        case 0: chip->present = !chip->present; break;
        case 1: chip->shorted = !chip->shorted; break;
        case 2: chip->copy_fails = !chip->copy_fails; break;
        default: chip->copy_refused = !chip->copy_refused; break;
      }
      chip->flip_memory_read = (uint8_t)(value >> 3 ? MARKS_FIRST + 2 * (value >> 3) + 1 : 0);  // address + 1
      break;
    }
    default: break;
  }
  check_always();
}

// ---- libFuzzer ----

// The sections hold ASan's redzones between the variables too: copied byte by byte with ASan's checks off (volatile,
// so the compiler does not turn the loops back into memcpy, which ASan intercepts).
__attribute__((no_sanitize("address"))) static void copy_bytes(volatile uint8_t *to, const volatile uint8_t *from, size_t length) {
  for (size_t i = 0; i < length; i++) to[i] = from[i];
}
__attribute__((no_sanitize("address"))) static void zero_bytes(volatile uint8_t *to, size_t length) {
  for (size_t i = 0; i < length; i++) to[i] = 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  size_t data_bytes = (size_t)(__stop_pen_logic_data - __start_pen_logic_data);
  if (data_bytes > sizeof power_on_data) {
    fprintf(stderr, "link_fuzz: the logic's initialised statics (%zu bytes) outgrew the snapshot buffer\n", data_bytes);
    abort();
  }
  copy_bytes(power_on_data, __start_pen_logic_data, data_bytes);
  trace = getenv("LINK_FUZZ_TRACE") != 0;
  return 0;
}

static void power_on(void) {
  copy_bytes(__start_pen_logic_data, power_on_data, (size_t)(__stop_pen_logic_data - __start_pen_logic_data));
  zero_bytes(__start_pen_logic_bss, (size_t)(__stop_pen_logic_bss - __start_pen_logic_bss));
  fake_board_reset();
  fake_chips_fit_parts();  // a few hundred bytes laid out: small beside a run
  note_chips();
  fake.on_move = check_move;
  fake.on_retract = check_retract;
  expected_exec_seq = 0;
  in_frame = executed_in_frame = 0;
  last_heartbeat_ms = 0;
  ms_used = 0;
  last_frame_length = 0;
  executions = 0;
  granted_next = challenge_seen = 0;
  service_runs = 0;
  fake_pen_boot();
  // The handshake a host does on connecting.
  if (!fake_host_sync()) breach("no reply to the sync frame", 0, 0);
  msg_identify_t identify = { MSG_IDENTIFY, PROTOCOL_VERSION };
  uint8_t reply[FRAME_MAX_PAYLOAD];
  if (fake_host_command(&identify, sizeof identify, reply) != (int)sizeof(msg_identify_reply_t) || reply[0] != MSG_IDENTIFY_REPLY) {
    breach("identify not answered", 0, 0);
  }
  check_always();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint16_t step_ms[16] = { 1, 2, 3, 5, 8, 10, 16, 25, 50, 99, 100, 128, 200, 250, 251, 300 };
  power_on();
  size_t at = 0;
  while (at < size) {
    uint8_t op = data[at] & 7, param = data[at] >> 3;
    at++;
    switch (op) {
      case 0: {
        size_t length = (size_t)param + 1 < size - at ? (size_t)param + 1 : size - at;
        receive(data + at, length);
        at += length;
        break;
      }
      case 1:
      case 2: {
        uint8_t seq_byte = (uint8_t)(FRAME_KIND_DATA | pen_link_session()->expected_seq);
        if (op == 2 && at < size) seq_byte = data[at++];
        uint8_t length = at < size ? (uint8_t)(data[at++] % (FRAME_MAX_PAYLOAD + 1)) : 0;
        if (length > size - at) length = (uint8_t)(size - at);
        send_frame(seq_byte, data + at, length);
        at += length;
        break;
      }
      case 3:
        if (last_frame_length) receive(last_frame, last_frame_length);
        break;
      case 4: advance(step_ms[param & 15], param >> 4); break;
      case 5: set_input(param); break;
      case 6: stepper_event(param, at < size && (param % 8) >= 6 ? (int8_t)data[at++] : 0); break;
      default: sensor_event(param, at < size ? data[at++] : 0); break;
    }
  }
  if (trace) {
    fprintf(stderr, "link_fuzz: %zu bytes, %lu ms, %lu executions, %lu moves, %lu motor starts, %lu vetoed, %lu service commands "
            "accepted; state %u, fault %u; cartridge used mark 0x%02x, nosecone tally 0x%02x uses 0x%02x\n", size,
            (unsigned long)fake.now_ms, (unsigned long)executions, (unsigned long)fake.moves, (unsigned long)fake.motor_starts,
            (unsigned long)fake.motor_vetoes, (unsigned long)service_runs, safety_state(), safety_fault(),
            fake_chips[0].memory[PART_LAYOUT_MARK_PAGE_ADDRESS], fake_chips[1].memory[PART_LAYOUT_MARK_PAGE_ADDRESS],
            fake_chips[1].memory[PART_LAYOUT_USE_MARK_PAGE_ADDRESS]);
  }
  return 0;
}
