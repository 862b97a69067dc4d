// Unit tests of the firmware's logic (safety, commands, calibration, storage, auth, link) built for this machine over the fake
// board: commands go in as framed bytes, as the wire carries them. Each case runs in its own forked process, so every
// case starts from the logic's power-on state. Prints each failure as file:line, then `N passed, M failed`.
#include <stdio.h>       // printf
#include <string.h>      // memcpy, memcmp
#include "check.h"       // CHECK, CHECK_EQ, REQUIRE, case_name, passed, failed
#include "fake_board.h"  // fake, fake_complete_move
#include "fake_pen.h"    // fake_pen_boot, fake_host_command
#include "fake_chips.h"  // fake_chips, fake_chips_fit_parts
#include "parts.h"       // parts_activity, PART_CARTRIDGE
#include "safety.h"      // safety_enter, safety_state
#include "calibration.h" // calibration_steps_for_um
#include "link.h"        // link_encode, LINK_WIRE_MAX_BYTES
#include "storage.h"     // storage_save, storage_poll
#include "auth.h"        // struct auth_identity, auth_init
#include "sha256.h"      // hmac_sha256 (the host's side of the challenge)
#include "protocol.h"    // msg_*_t, PEN_STATE_*, ERROR_CODE_*
#include "faults.h"      // FAULT_*, FAULT_NEEDS_HOME_MASK, FAULT_CRITICAL_MASK
#include "pen_config.h"  // DEPTH_*, LIMITS_*, CALIBRATION_*, HEARTBEAT_TIMEOUT_MS

// ---- the host side: commands as framed bytes ----

static uint8_t reply[FRAME_MAX_PAYLOAD];
static int reply_length;

static void send_bytes(const void *message, uint8_t length) { reply_length = fake_host_command(message, length, reply); }
static void send_id(uint8_t id) { send_bytes(&id, 1); }
static void send_identify(uint16_t version) {
  msg_identify_t message = { MSG_IDENTIFY, version };
  send_bytes(&message, sizeof message);
}
static void send_move_to(uint16_t depth_um) {
  msg_move_to_t message = { MSG_MOVE_TO, depth_um };
  send_bytes(&message, sizeof message);
}
static void send_start_needle(uint16_t strokes_per_second) {
  msg_start_needle_t message = { MSG_START_NEEDLE, strokes_per_second };
  send_bytes(&message, sizeof message);
}
static void send_clear_cartridge(void) {
  msg_clear_cartridge_t message = { .msg_id = MSG_CLEAR_CARTRIDGE };
  memcpy(message.cartridge_rom, fake_chips[PART_CARTRIDGE].rom, sizeof message.cartridge_rom);
  send_bytes(&message, sizeof message);
}
// The host's date when arming: before the fake cartridge's expiry (day 10000).
#define TEST_TODAY (ID_CHIP_EARLIEST_HOST_DAY + 300)
static void send_arm_on(uint16_t today_day) {
  msg_arm_t message = { MSG_ARM, today_day };
  send_bytes(&message, sizeof message);
}
static void send_arm(void) { send_arm_on(TEST_TODAY); }
static void send_depth_calibration(uint32_t steps_per_mm_x100, int16_t zero_offset_um) {
  msg_set_depth_calibration_t message = { MSG_SET_DEPTH_CALIBRATION, steps_per_mm_x100, zero_offset_um };
  send_bytes(&message, sizeof message);
}
static void send_sensor_calibration(uint16_t zero_mv, uint16_t mv_per_mm) {
  msg_set_sensor_calibration_t message = { MSG_SET_SENSOR_CALIBRATION, zero_mv, mv_per_mm };
  send_bytes(&message, sizeof message);
}

static void describe_reply(char *out, size_t size) {
  if (reply_length < 0) snprintf(out, size, "no reply");
  else if (reply_length == (int)sizeof(msg_error_t) && reply[0] == MSG_ERROR) {
    msg_error_t error;
    memcpy(&error, reply, sizeof error);
    snprintf(out, size, "error code %u detail %ld to 0x%02x", error.code, (long)error.detail, error.request_id);
  } else if (reply_length == (int)sizeof(msg_part_refused_t) && reply[0] == MSG_PART_REFUSED) {
    msg_part_refused_t refused;
    memcpy(&refused, reply, sizeof refused);
    snprintf(out, size, "part_refused code %u part %u rom %02x%02x..%02x detail %ld to 0x%02x", refused.code, refused.part,
             refused.rom[0], refused.rom[1], refused.rom[7], (long)refused.detail, refused.request_id);
  } else if (reply_length == (int)sizeof(msg_ok_t) && reply[0] == MSG_OK) {
    snprintf(out, size, "ok to 0x%02x", reply[1]);
  } else {
    snprintf(out, size, "%d bytes, id 0x%02x", reply_length, reply_length > 0 ? reply[0] : 0);
  }
}

static int reply_is_ok(uint8_t request_id) {
  return reply_length == (int)sizeof(msg_ok_t) && reply[0] == MSG_OK && reply[1] == request_id;
}

static void expect_ok(const char *file, int line, uint8_t request_id) {
  if (reply_is_ok(request_id)) return;
  char got[96];
  describe_reply(got, sizeof got);
  fail_at(file, line, "expected ok to 0x%02x, got %s", request_id, got);
}

static void expect_error(const char *file, int line, uint8_t request_id, uint8_t code, int32_t detail) {
  msg_error_t error = { 0, 0, 0, 0 };
  if (reply_length == (int)sizeof error) memcpy(&error, reply, sizeof error);
  if (error.msg_id == MSG_ERROR && error.request_id == request_id && error.code == code && error.detail == detail) return;
  char got[96];
  describe_reply(got, sizeof got);
  fail_at(file, line, "expected error code %u detail %ld to 0x%02x, got %s", code, (long)detail, request_id, got);
}

// A refusal about a part: its code, which part, the ROM id the pen read from it (rom 0: none read, all zeros), detail
// (ANY_DETAIL: not looked at, for a detail that is the pen's internal progress).
#define ANY_DETAIL INT32_MIN
static void expect_part_refused(const char *file, int line, uint8_t request_id, uint8_t code, uint8_t part, const uint8_t *rom,
                                int32_t detail) {
  static const uint8_t no_rom[8];
  msg_part_refused_t refused;
  memset(&refused, 0, sizeof refused);
  if (reply_length == (int)sizeof refused) memcpy(&refused, reply, sizeof refused);
  if (refused.msg_id == MSG_PART_REFUSED && refused.request_id == request_id && refused.code == code && refused.part == part &&
      memcmp(refused.rom, rom ? rom : no_rom, sizeof refused.rom) == 0 && (detail == ANY_DETAIL || refused.detail == detail)) {
    return;
  }
  char got[128];
  describe_reply(got, sizeof got);
  fail_at(file, line, "expected part_refused code %u part %u detail %ld to 0x%02x%s, got %s", code, part, (long)detail, request_id,
          rom ? " with the chip's rom" : " with no rom", got);
}

#define EXPECT_OK(request_id) expect_ok(__FILE__, __LINE__, request_id)
#define EXPECT_PART_REFUSED(request_id, code, part, rom, detail) \
  expect_part_refused(__FILE__, __LINE__, request_id, code, part, rom, detail)
#define EXPECT_ERROR(request_id, code, detail) expect_error(__FILE__, __LINE__, request_id, code, detail)
#define REQUIRE_OK(request_id)                                                                   \
  do {                                                                                           \
    int failures_before_ = case_failures;                                                        \
    expect_ok(__FILE__, __LINE__, request_id);                                                   \
    REQUIRE(case_failures == failures_before_);                                                  \
  } while (0)

static msg_telemetry_t status(void) {
  msg_telemetry_t telemetry;
  send_id(MSG_GET_STATUS);
  REQUIRE(reply_length == (int)sizeof telemetry && reply[0] == MSG_TELEMETRY);
  memcpy(&telemetry, reply, sizeof telemetry);
  return telemetry;
}

static const char *state_name(int state) {
  static const char *names[] = { "BOOT", "HOMING_REQUIRED", "HOMING", "IDLE", "ARMED", "RUNNING", "FAULT" };
  return state >= 0 && state < 7 ? names[state] : "?";
}

static void expect_state(const char *file, int line, uint8_t expected) {
  msg_telemetry_t telemetry = status();
  if (telemetry.state != expected) {
    fail_at(file, line, "state %s (fault %u), expected %s", state_name(telemetry.state), telemetry.fault_code, state_name(expected));
  }
}
#define EXPECT_STATE(expected) expect_state(__FILE__, __LINE__, expected)
#define REQUIRE_STATE(expected) REQUIRE(status().state == (expected))

// ---- roles: the pen's identity and the host's answers ----

#define TEST_SERIAL "SIM-LOGIC-0001"
// Keys of the logic tests' pens, one per keyed role (reprocessing, technician, engineer).
static const uint8_t test_keys[AUTH_KEYED_ROLES][AUTH_KEY_BYTES] = {
  { 0x52, 0x45, 0x50, 0x52, 0x4f, 0x43, 0x45, 0x53, 0x53, 0x49, 0x4e, 0x47, 0x01, 0x02, 0x03, 0x04,
    0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14 },
  { 0x54, 0x45, 0x43, 0x48, 0x4e, 0x49, 0x43, 0x49, 0x41, 0x4e, 0x9a, 0x3c, 0x77, 0x01, 0xfe, 0x80,
    0x7e, 0x7d, 0x18, 0x00, 0xff, 0x55, 0xaa, 0x31, 0x41, 0x59, 0x26, 0x53, 0x58, 0x97, 0x93, 0x23 },
  { 0x45, 0x4e, 0x47, 0x49, 0x4e, 0x45, 0x45, 0x52, 0x27, 0x18, 0x28, 0x18, 0x28, 0x45, 0x90, 0x45,
    0x23, 0x53, 0x60, 0x28, 0x74, 0x71, 0x35, 0x26, 0x62, 0x49, 0x77, 0x57, 0x24, 0x70, 0x93, 0x69 },
};

// Set by a case before the pen starts: start from a blank EEPROM (no identity) instead of a provisioned pen.
static uint8_t start_unprovisioned;

// The identity record as provision stores it, written straight into the fake EEPROM (no time passes).
static void store_identity(const char *serial, const uint8_t keys[AUTH_KEYED_ROLES][AUTH_KEY_BYTES]) {
  struct auth_identity identity;
  memset(&identity, 0, sizeof identity);
  strncpy(identity.serial, serial, sizeof identity.serial);
  memcpy(identity.keys, keys, sizeof identity.keys);
  storage_save_record(STORAGE_IDENTITY, &identity);
  while (storage_busy()) storage_poll();
}

// The pen's EEPROM writes (the boot count, a counters update) run to their end, a pass at a time with no time passing.
static void drain_writes(void) {
  for (int pass = 0; pass < 1000 && storage_busy(); pass++) storage_poll();
  REQUIRE(!storage_busy());
}

// HMAC-SHA256(key, nonce | serial (16 bytes, NUL-padded) | command id): the host's side, as docs/protocol.md has it.
static void answer_for(const uint8_t key[AUTH_KEY_BYTES], const uint8_t nonce[AUTH_NONCE_BYTES], const char *serial,
                       uint8_t command_id, uint8_t mac[AUTH_MAC_BYTES]) {
  uint8_t message[AUTH_NONCE_BYTES + AUTH_SERIAL_BYTES + 1] = { 0 };
  memcpy(message, nonce, AUTH_NONCE_BYTES);
  strncpy((char *)message + AUTH_NONCE_BYTES, serial, AUTH_SERIAL_BYTES);
  message[AUTH_NONCE_BYTES + AUTH_SERIAL_BYTES] = command_id;
  hmac_sha256(key, AUTH_KEY_BYTES, message, sizeof message, mac);
}

static void send_request_challenge(uint8_t role, uint8_t command_id) {
  msg_request_challenge_t message = { MSG_REQUEST_CHALLENGE, role, command_id };
  send_bytes(&message, sizeof message);
}

static void send_answer(const uint8_t mac[AUTH_MAC_BYTES]) {
  msg_answer_challenge_t message = { MSG_ANSWER_CHALLENGE, { 0 } };
  memcpy(message.mac, mac, AUTH_MAC_BYTES);
  send_bytes(&message, sizeof message);
}

// A challenge for role and command; the nonce it carries.
static msg_challenge_t challenge_for(uint8_t role, uint8_t command_id) {
  drain_writes();
  send_request_challenge(role, command_id);
  msg_challenge_t challenge;
  if (reply_length != (int)sizeof challenge || reply[0] != MSG_CHALLENGE) {
    char got[96];
    describe_reply(got, sizeof got);
    fail_at(__FILE__, __LINE__, "no challenge for role %u, command 0x%02x: %s", role, command_id, got);
    fflush(stdout);
    _exit(1);
  }
  memcpy(&challenge, reply, sizeof challenge);
  CHECK_EQ(challenge.role, role);
  CHECK_EQ(challenge.command_id, command_id);
  return challenge;
}

// The challenge–response a host runs before a service command, with the test keys: the grant for the next frame.
static void grant(uint8_t role, uint8_t command_id) {
  msg_challenge_t challenge = challenge_for(role, command_id);
  uint8_t mac[AUTH_MAC_BYTES];
  answer_for(test_keys[role - ROLE_REPROCESSING], challenge.nonce, TEST_SERIAL, command_id, mac);
  send_answer(mac);
  REQUIRE_OK(MSG_ANSWER_CHALLENGE);
}

static msg_auth_status_t auth_status_now(void) {
  msg_auth_status_t status;
  send_id(MSG_GET_AUTH_STATUS);
  REQUIRE(reply_length == (int)sizeof status && reply[0] == MSG_AUTH_STATUS);
  memcpy(&status, reply, sizeof status);
  return status;
}

// ---- getting the pen somewhere, through the wire ----

// Until the ID chips are read (at start-up, after a fitting, on request).
static void parts_read(void) {
  for (int ms = 0; ms < 2000 && parts_activity() != 0; ms++) fake_pen_advance_ms(1);
  REQUIRE(parts_activity() == 0);
}

// Booted and identified, before the ID chips are read (about 0.2 s in).
static void pen_start_at_once(void) {
  if (!start_unprovisioned) store_identity(TEST_SERIAL, test_keys);
  fake_chips_fit_parts();  // a fresh cartridge and a nosecone sterilized since its last use
  fake_pen_boot();
  REQUIRE(fake_host_sync());
  send_identify(PROTOCOL_VERSION);
  REQUIRE(reply_length == (int)sizeof(msg_identify_reply_t) && reply[0] == MSG_IDENTIFY_REPLY);
}

static void pen_start(void) {
  pen_start_at_once();
  parts_read();
}

static void pen_homing(void) {
  pen_start();
  send_id(MSG_HOME);
  REQUIRE_OK(MSG_HOME);
  REQUIRE_STATE(PEN_STATE_HOMING);
}

static void pen_idle(void) {
  pen_homing();
  fake_finish_homing(HOMING_DONE);
  fake_pen_advance_ms(1);
  REQUIRE_STATE(PEN_STATE_IDLE);
}

static void pen_at_depth(uint16_t depth_um) {
  pen_idle();
  send_move_to(depth_um);
  REQUIRE_OK(MSG_MOVE_TO);
  fake_complete_move();
  fake_pen_advance_ms(1);
  REQUIRE_STATE(PEN_STATE_IDLE);
}

static void pen_ready_to_arm(uint16_t depth_um) {
  pen_at_depth(depth_um);
  send_clear_cartridge();
  REQUIRE_OK(MSG_CLEAR_CARTRIDGE);
  send_id(MSG_HEARTBEAT);
  REQUIRE_OK(MSG_HEARTBEAT);
}

static void pen_armed(void) {
  pen_ready_to_arm(1000);
  send_arm();
  REQUIRE_OK(MSG_ARM);
  REQUIRE_STATE(PEN_STATE_ARMED);
}

// start_needle, repeated while the session's first start burns the parts' marks (parts_busy).
static void start_needle_after_marks(uint16_t strokes_per_second) {
  for (int ms = 0; ms < 2000; ms++) {
    fake.tx_length = 0;  // the pen's output since the last command is not looked at: keep the fake's buffer from wrapping
    send_start_needle(strokes_per_second);
    if (!(reply_length == (int)sizeof(msg_part_refused_t) && reply[0] == MSG_PART_REFUSED && reply[2] == ERROR_CODE_PARTS_BUSY)) return;
    send_id(MSG_HEARTBEAT);
    fake_pen_advance_ms(1);
  }
}

static void pen_running(void) {
  pen_armed();
  start_needle_after_marks(100);
  REQUIRE_OK(MSG_START_NEEDLE);
  REQUIRE_STATE(PEN_STATE_RUNNING);
  REQUIRE(fake.motor_running);
}

static void pen_fault_supply(void) {
  pen_idle();
  fake.supply_mv = LIMITS_SUPPLY_MIN_MV - 1;
  fake_pen_advance_ms(1);
  fake.supply_mv = 12000;
  fake_complete_move();  // the safe path's retract
  REQUIRE_STATE(PEN_STATE_FAULT);
}

// The depth the independent sensor reports, and a sensor output that reads depth_um exactly.
static int32_t sensed_um(uint16_t mv) { return calibration_um_for_steps(calibration_sensor_steps(mv)); }
static uint16_t mv_reading(int32_t depth_um) {
  for (uint32_t mv = 0; mv <= 5000; mv++) {
    if (sensed_um((uint16_t)mv) == depth_um) return (uint16_t)mv;
  }
  REQUIRE(!"no sensor output reads that depth");
  return 0;
}
static void sensor_reads(int32_t depth_um) {
  fake.depth_sensor_follows = 0;
  fake.depth_mv = mv_reading(depth_um);
}

// ---- the depth window ----

static void move_inside_window_accepted(int depth_um) {
  pen_idle();
  send_move_to((uint16_t)depth_um);
  EXPECT_OK(MSG_MOVE_TO);
  CHECK_EQ(fake.moves, 1);
  CHECK_EQ(fake.last_move_target, calibration_steps_for_um(depth_um));
  CHECK(fake.last_move_target <= DEPTH_LIMIT_STEPS);
}

static void move_outside_window_refused(int depth_um) {
  pen_idle();
  send_move_to((uint16_t)depth_um);
  EXPECT_ERROR(MSG_MOVE_TO, ERROR_CODE_OUT_OF_RANGE, depth_um);
  CHECK_EQ(fake.moves, 0);
}

static void move_outside_window_refused_running(int depth_um) {
  pen_running();
  send_move_to((uint16_t)depth_um);
  EXPECT_ERROR(MSG_MOVE_TO, ERROR_CODE_OUT_OF_RANGE, depth_um);
  CHECK_EQ(fake.moves, 1);  // the one that brought it to 1 mm
}

static void move_refused_not_homed(int unused) {
  (void)unused;
  pen_start();
  send_move_to(1000);
  EXPECT_ERROR(MSG_MOVE_TO, ERROR_CODE_NOT_HOMED, 1000);
  CHECK_EQ(fake.moves, 0);
}

static void move_while_running_accepted(int unused) {
  (void)unused;
  pen_running();
  send_move_to(2000);
  EXPECT_OK(MSG_MOVE_TO);
  CHECK_EQ(fake.last_move_target, calibration_steps_for_um(2000));
}

// Where the needle is that arming refuses: 0 step position, 1 target, 2 sensor; low or high.
enum { WINDOW_POSITION_LOW, WINDOW_POSITION_HIGH, WINDOW_TARGET_LOW, WINDOW_TARGET_HIGH, WINDOW_SENSOR_LOW, WINDOW_SENSOR_HIGH };

static int32_t put_needle_outside(int where) {
  switch (where) {
    case WINDOW_POSITION_LOW: fake_place_needle(calibration_steps_for_um(DEPTH_MIN_UM - 1)); return DEPTH_MIN_UM - 1;
    case WINDOW_POSITION_HIGH: fake_place_needle(calibration_steps_for_um(DEPTH_MAX_UM + 1)); return DEPTH_MAX_UM + 1;
    case WINDOW_TARGET_LOW: fake.target = calibration_steps_for_um(DEPTH_MIN_UM - 1); return DEPTH_MIN_UM - 1;
    case WINDOW_TARGET_HIGH: fake.target = calibration_steps_for_um(DEPTH_MAX_UM + 1); return DEPTH_MAX_UM + 1;
    case WINDOW_SENSOR_LOW: sensor_reads(DEPTH_MIN_UM - DEPTH_AXIS_MISMATCH_TOLERANCE_UM - 1); return DEPTH_MIN_UM - DEPTH_AXIS_MISMATCH_TOLERANCE_UM - 1;
    default: sensor_reads(DEPTH_MAX_UM + DEPTH_AXIS_MISMATCH_TOLERANCE_UM + 1); return DEPTH_MAX_UM + DEPTH_AXIS_MISMATCH_TOLERANCE_UM + 1;
  }
}

static void arm_refused_outside_window(int where) {
  pen_ready_to_arm(where % 2 ? DEPTH_MAX_UM : DEPTH_MIN_UM);
  int32_t depth_um = put_needle_outside(where);
  send_arm();
  EXPECT_ERROR(MSG_ARM, ERROR_CODE_DEPTH_OUTSIDE_WINDOW, depth_um);
  CHECK_EQ(safety_state(), PEN_STATE_IDLE);
}

static void start_refused_outside_window(int where) {
  pen_armed();
  int32_t depth_um = put_needle_outside(where);
  send_start_needle(100);
  EXPECT_ERROR(MSG_START_NEEDLE, ERROR_CODE_DEPTH_OUTSIDE_WINDOW, depth_um);
  CHECK(!fake.motor_running);
  CHECK_EQ(safety_state(), PEN_STATE_ARMED);
}

static void arm_refused_at_home(int unused) {
  (void)unused;
  pen_idle();  // homed: the needle is at 0 mm
  send_clear_cartridge();
  send_id(MSG_HEARTBEAT);
  send_arm();
  EXPECT_ERROR(MSG_ARM, ERROR_CODE_DEPTH_OUTSIDE_WINDOW, 0);
}

// The sensor's tolerance band is inclusive: the window's ends plus the mismatch tolerance still arm.
static void arm_accepted_sensor_at_band_edge(int high) {
  pen_ready_to_arm(high ? DEPTH_MAX_UM : DEPTH_MIN_UM);
  sensor_reads(high ? DEPTH_MAX_UM + DEPTH_AXIS_MISMATCH_TOLERANCE_UM : DEPTH_MIN_UM - DEPTH_AXIS_MISMATCH_TOLERANCE_UM);
  send_arm();
  EXPECT_OK(MSG_ARM);
}

static const struct depth_calibration corners[] = {
  { CALIBRATION_STEPS_PER_MM_X100_MIN, CALIBRATION_ZERO_OFFSET_UM_MIN },
  { CALIBRATION_STEPS_PER_MM_X100_MIN, CALIBRATION_ZERO_OFFSET_UM_MAX },
  { CALIBRATION_STEPS_PER_MM_X100_MAX, CALIBRATION_ZERO_OFFSET_UM_MIN },
  { CALIBRATION_STEPS_PER_MM_X100_MAX, CALIBRATION_ZERO_OFFSET_UM_MAX },
};

// At every corner of the calibration bounds the window's ends map inside the absolute step limit and back exactly.
static void window_at_calibration_corner(int corner) {
  pen_start();
  grant(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  send_depth_calibration(corners[corner].steps_per_mm_x100, corners[corner].zero_offset_um);
  REQUIRE_OK(MSG_SET_DEPTH_CALIBRATION);
  fake_pen_advance_ms(100);  // the write completes
  send_id(MSG_HOME);
  REQUIRE_OK(MSG_HOME);
  fake_finish_homing(HOMING_DONE);
  fake_pen_advance_ms(1);
  static const uint16_t depths[] = { DEPTH_MIN_UM, DEPTH_MAX_UM };
  for (int i = 0; i < 2; i++) {
    send_move_to(depths[i]);
    EXPECT_OK(MSG_MOVE_TO);
    CHECK(fake.last_move_target > 0);
    CHECK(fake.last_move_target <= DEPTH_LIMIT_STEPS);
    CHECK_EQ(calibration_um_for_steps(fake.last_move_target), depths[i]);
  }
  for (int32_t um = 0; um <= 3000; um++) CHECK_EQ(calibration_um_for_steps(calibration_steps_for_um(um)), um);
}

// ---- arming refusals ----

static void arm_refused_not_homed(int unused) {
  (void)unused;
  pen_start();
  send_arm();
  EXPECT_ERROR(MSG_ARM, ERROR_CODE_NOT_HOMED, PEN_STATE_HOMING_REQUIRED);
}

static void arm_refused_while_homing(int unused) {
  (void)unused;
  pen_homing();
  send_arm();
  EXPECT_ERROR(MSG_ARM, ERROR_CODE_NOT_ALLOWED_IN_STATE, PEN_STATE_HOMING);
  CHECK_EQ(safety_state(), PEN_STATE_HOMING);
}

static void arm_refused_in_fault(int unused) {
  (void)unused;
  pen_fault_supply();
  send_arm();
  EXPECT_ERROR(MSG_ARM, ERROR_CODE_NOT_ALLOWED_IN_FAULT, FAULT_SUPPLY_OUT_OF_RANGE);
}

static void arm_refused_calibration_invalid(int unused) {
  (void)unused;
  // Both EEPROM copies unreadable (written, wrong CRC): the pen refuses to guess.
  for (int i = 0; i < 64; i++) fake.eeprom[i] = (uint8_t)(0x11 * (i % 7));
  pen_ready_to_arm(1000);
  send_id(MSG_GET_CALIBRATION);
  REQUIRE(reply_length == (int)sizeof(msg_calibration_t));
  msg_calibration_t calibration;
  memcpy(&calibration, reply, sizeof calibration);
  CHECK_EQ(calibration.source, CALIBRATION_SOURCE_INVALID);
  send_arm();
  EXPECT_ERROR(MSG_ARM, ERROR_CODE_CALIBRATION_INVALID, PEN_STATE_IDLE);
}

enum { TRIP_ESTOP, TRIP_NTC, TRIP_HOT, TRIP_SUPPLY_LOW, TRIP_SUPPLY_HIGH, TRIP_DEPTH_SENSOR, TRIP_COUNT };

// Sets one interlock off; returns the fault code it stands for.
static uint8_t trip(int interlock) {
  switch (interlock) {
    case TRIP_ESTOP: fake_set_input(INPUT_BIT_ESTOP, 1); return FAULT_ESTOP;
    case TRIP_NTC: fake.ntc_plausible = 0; return FAULT_TEMPERATURE_SENSOR;
    case TRIP_HOT: fake.temperature_deci_c = LIMITS_TEMPERATURE_LIMIT_DECI_C + 1; return FAULT_OVER_TEMPERATURE;
    case TRIP_SUPPLY_LOW: fake.supply_mv = LIMITS_SUPPLY_MIN_MV - 1; return FAULT_SUPPLY_OUT_OF_RANGE;
    case TRIP_SUPPLY_HIGH: fake.supply_mv = LIMITS_SUPPLY_MAX_MV + 1; return FAULT_SUPPLY_OUT_OF_RANGE;
    default: fake.depth_sensor_plausible = 0; return FAULT_DEPTH_SENSOR;
  }
}

static void arm_refused_interlock(int interlock) {
  pen_ready_to_arm(1000);
  uint8_t code = trip(interlock);  // no main-loop pass between: the command itself must see it
  send_arm();
  EXPECT_ERROR(MSG_ARM, ERROR_CODE_INTERLOCK_ACTIVE, code);
  CHECK_EQ(safety_state(), PEN_STATE_IDLE);
}

static void home_refused_interlock(int interlock) {
  pen_start();
  uint8_t code = trip(interlock);
  send_id(MSG_HOME);
  EXPECT_ERROR(MSG_HOME, ERROR_CODE_INTERLOCK_ACTIVE, code);
  CHECK_EQ(fake.homings, 0);
}

// The limits themselves are allowed (the checks are strict inequalities).
static void arm_accepted_at_limits(int which) {
  pen_ready_to_arm(1000);
  if (which == 0) fake.temperature_deci_c = LIMITS_TEMPERATURE_LIMIT_DECI_C;
  if (which == 1) fake.supply_mv = LIMITS_SUPPLY_MIN_MV;
  if (which == 2) fake.supply_mv = LIMITS_SUPPLY_MAX_MV;
  send_arm();
  EXPECT_OK(MSG_ARM);
}

static void arm_refused_cartridge_missing(int unused) {
  (void)unused;
  pen_ready_to_arm(1000);
  fake_set_input(INPUT_BIT_CARTRIDGE_PRESENT, 0);
  send_arm();
  EXPECT_ERROR(MSG_ARM, ERROR_CODE_CARTRIDGE_MISSING, PEN_STATE_IDLE);
  CHECK_EQ(safety_state(), PEN_STATE_IDLE);  // out while nothing could move: not a fault
}

static void arm_refused_cartridge_not_cleared(int unused) {
  (void)unused;
  pen_at_depth(1000);
  send_id(MSG_HEARTBEAT);
  send_arm();
  EXPECT_ERROR(MSG_ARM, ERROR_CODE_CARTRIDGE_NOT_CLEARED, PEN_STATE_IDLE);
}

static void arm_refused_cartridge_reinserted(int unused) {
  (void)unused;
  pen_ready_to_arm(1000);
  fake_set_input(INPUT_BIT_CARTRIDGE_PRESENT, 0);
  fake_pen_advance_ms(1);
  fake_set_input(INPUT_BIT_CARTRIDGE_PRESENT, 1);
  send_id(MSG_HEARTBEAT);
  send_arm();
  EXPECT_ERROR(MSG_ARM, ERROR_CODE_CARTRIDGE_NOT_CLEARED, PEN_STATE_IDLE);
}

static void arm_refused_no_heartbeat_yet(int unused) {
  (void)unused;
  pen_at_depth(1000);
  send_clear_cartridge();
  send_arm();
  EXPECT_ERROR(MSG_ARM, ERROR_CODE_HEARTBEAT_STALE, PEN_STATE_IDLE);
}

// silent_ms after the last heartbeat: fresh up to HEARTBEAT_TIMEOUT_MS, stale after.
static void arm_after_silence(int silent_ms) {
  pen_ready_to_arm(1000);
  fake_pen_advance_ms((uint32_t)silent_ms);
  send_arm();
  if (silent_ms <= HEARTBEAT_TIMEOUT_MS) EXPECT_OK(MSG_ARM);
  else EXPECT_ERROR(MSG_ARM, ERROR_CODE_HEARTBEAT_STALE, PEN_STATE_IDLE);
}

static void arm_when_armed_or_running(int running) {
  if (running) pen_running();
  else pen_armed();
  send_arm();
  EXPECT_OK(MSG_ARM);
  CHECK_EQ(safety_state(), running ? PEN_STATE_RUNNING : PEN_STATE_ARMED);
}

// ---- the parts' ID chips: arming, clearing, the session's marks ----

#define CARTRIDGE_ROM (fake_chips[PART_CARTRIDGE].rom)
#define NOSECONE_ROM (fake_chips[PART_NOSECONE].rom)
#define FAKE_EXPIRY_DAY 10000  // fake_chips_fit_parts: the fresh cartridge's expiry

static void send_get_parts(uint8_t reread_bits) {
  msg_get_parts_t message = { MSG_GET_PARTS, reread_bits };
  send_bytes(&message, sizeof message);
}

static msg_parts_t parts_now(void) {
  msg_parts_t parts;
  send_get_parts(0);
  REQUIRE(reply_length == (int)sizeof parts && reply[0] == MSG_PARTS);
  memcpy(&parts, reply, sizeof parts);
  return parts;
}

// Both chips read again on the host's request (after a test changed them), then a heartbeat: arming stays possible.
static void reread_parts(void) {
  send_get_parts(PARTS_ALL_BITS);
  REQUIRE(reply_length == (int)sizeof(msg_parts_t) && reply[0] == MSG_PARTS);
  parts_read();
  send_id(MSG_HEARTBEAT);
  REQUIRE_OK(MSG_HEARTBEAT);
}

static void send_clear_cartridge_rom(const uint8_t rom[8]) {
  msg_clear_cartridge_t message = { .msg_id = MSG_CLEAR_CARTRIDGE };
  memcpy(message.cartridge_rom, rom, sizeof message.cartridge_rom);
  send_bytes(&message, sizeof message);
}

static void send_record_sterilization(const uint8_t rom[8]) {
  msg_record_sterilization_t message = { .msg_id = MSG_RECORD_STERILIZATION };
  memcpy(message.nosecone_rom, rom, sizeof message.nosecone_rom);
  send_bytes(&message, sizeof message);
}

// The nosecone's tally with this many sterilizations (bits from 0 cleared), and its use marks page as given.
static void nosecone_tally(int sterilizations, uint8_t first_use_byte) {
  uint8_t *memory = fake_chips[PART_NOSECONE].memory;
  memset(memory + PART_LAYOUT_MARK_PAGE_ADDRESS, 0xFF, 32);
  for (int bit = 0; bit < sterilizations; bit++) memory[PART_LAYOUT_MARK_PAGE_ADDRESS + bit / 8] &= (uint8_t)~(1 << (bit % 8));
  memset(memory + PART_LAYOUT_USE_MARK_PAGE_ADDRESS, 0xFF, 32);
  memory[PART_LAYOUT_USE_MARK_PAGE_ADDRESS] = first_use_byte;
}

enum {
  UNFIT_CARTRIDGE_ABSENT, UNFIT_CARTRIDGE_USED, UNFIT_NOSECONE_ABSENT, UNFIT_NOSECONE_NEVER_STERILIZED,
  UNFIT_NOSECONE_USED_SINCE, UNFIT_NOSECONE_AT_LIMIT, FIT_NOSECONE_UNDER_LIMIT, UNFIT_COUNT
};

// Ready to arm with good parts (cleared), then a chip changes and both are read again: arm names the part and why.
static void arm_refused_part(int unfit) {
  pen_ready_to_arm(1000);
  switch (unfit) {
    case UNFIT_CARTRIDGE_ABSENT: fake_chips[PART_CARTRIDGE].present = 0; break;
    case UNFIT_CARTRIDGE_USED: fake_chips[PART_CARTRIDGE].memory[PART_LAYOUT_MARK_PAGE_ADDRESS] = 0xFE; break;
    case UNFIT_NOSECONE_ABSENT: fake_chips[PART_NOSECONE].present = 0; break;
    case UNFIT_NOSECONE_NEVER_STERILIZED: nosecone_tally(0, 0xFF); break;
    case UNFIT_NOSECONE_USED_SINCE: nosecone_tally(3, 0xF8); break;  // each of its 3 sterilizations used
    case UNFIT_NOSECONE_AT_LIMIT: nosecone_tally(ID_CHIP_NOSECONE_CYCLE_LIMIT, 0xFF); break;
    default: nosecone_tally(ID_CHIP_NOSECONE_CYCLE_LIMIT - 1, 0xFF); break;
  }
  reread_parts();
  send_arm();
  switch (unfit) {
    case UNFIT_CARTRIDGE_ABSENT:  // no id read: none to name
      EXPECT_PART_REFUSED(MSG_ARM, ERROR_CODE_CARTRIDGE_UNREADABLE, PART_CARTRIDGE, 0, PART_STATUS_ABSENT);
      break;
    case UNFIT_CARTRIDGE_USED:
      EXPECT_PART_REFUSED(MSG_ARM, ERROR_CODE_CARTRIDGE_USED, PART_CARTRIDGE, CARTRIDGE_ROM, 1);
      break;
    case UNFIT_NOSECONE_ABSENT:
      EXPECT_PART_REFUSED(MSG_ARM, ERROR_CODE_NOSECONE_UNREADABLE, PART_NOSECONE, 0, PART_STATUS_ABSENT);
      break;
    case UNFIT_NOSECONE_NEVER_STERILIZED:
      EXPECT_PART_REFUSED(MSG_ARM, ERROR_CODE_NOSECONE_NOT_STERILIZED, PART_NOSECONE, NOSECONE_ROM, 0);
      break;
    case UNFIT_NOSECONE_USED_SINCE:
      EXPECT_PART_REFUSED(MSG_ARM, ERROR_CODE_NOSECONE_NOT_STERILIZED, PART_NOSECONE, NOSECONE_ROM, 3);
      break;
    case UNFIT_NOSECONE_AT_LIMIT:
      EXPECT_PART_REFUSED(MSG_ARM, ERROR_CODE_NOSECONE_AT_LIMIT, PART_NOSECONE, NOSECONE_ROM, ID_CHIP_NOSECONE_CYCLE_LIMIT);
      break;
    default:
      EXPECT_OK(MSG_ARM);
      break;
  }
  CHECK_EQ(safety_state(), unfit == FIT_NOSECONE_UNDER_LIMIT ? PEN_STATE_ARMED : PEN_STATE_IDLE);
}

// The host's date against the earliest plausible day and the cartridge's expiry (the last day it may be used).
static const struct { uint16_t day; uint8_t code; int32_t detail; } arm_days[] = {
  { 0, ERROR_CODE_OUT_OF_RANGE, 0 },
  { ID_CHIP_EARLIEST_HOST_DAY - 1, ERROR_CODE_OUT_OF_RANGE, ID_CHIP_EARLIEST_HOST_DAY - 1 },
  { ID_CHIP_EARLIEST_HOST_DAY, 0, 0 },
  { FAKE_EXPIRY_DAY, 0, 0 },
  { FAKE_EXPIRY_DAY + 1, ERROR_CODE_CARTRIDGE_EXPIRED, FAKE_EXPIRY_DAY },
  { 65535, ERROR_CODE_CARTRIDGE_EXPIRED, FAKE_EXPIRY_DAY },
};

static void arm_on_day(int index) {
  pen_ready_to_arm(1000);
  send_arm_on(arm_days[index].day);
  // A date the host's clock cannot show is the host's error; past the expiry, the cartridge is named.
  if (arm_days[index].code == 0) EXPECT_OK(MSG_ARM);
  else if (arm_days[index].code == ERROR_CODE_OUT_OF_RANGE) EXPECT_ERROR(MSG_ARM, ERROR_CODE_OUT_OF_RANGE, arm_days[index].detail);
  else EXPECT_PART_REFUSED(MSG_ARM, arm_days[index].code, PART_CARTRIDGE, CARTRIDGE_ROM, arm_days[index].detail);
  CHECK_EQ(safety_state(), arm_days[index].code == 0 ? PEN_STATE_ARMED : PEN_STATE_IDLE);
}

// clear_cartridge names the fitted cartridge by its ROM id: another id, or a chip not read good, is refused.
static void clear_cartridge_refused(int unused) {
  (void)unused;
  pen_at_depth(1000);
  send_clear_cartridge_rom(NOSECONE_ROM);
  EXPECT_PART_REFUSED(MSG_CLEAR_CARTRIDGE, ERROR_CODE_PART_MISMATCH, PART_CARTRIDGE, CARTRIDGE_ROM, 0);
  uint8_t one_bit_off[8];
  memcpy(one_bit_off, CARTRIDGE_ROM, sizeof one_bit_off);
  one_bit_off[3] ^= 0x10;
  send_clear_cartridge_rom(one_bit_off);
  EXPECT_PART_REFUSED(MSG_CLEAR_CARTRIDGE, ERROR_CODE_PART_MISMATCH, PART_CARTRIDGE, CARTRIDGE_ROM, 0);
  send_id(MSG_HEARTBEAT);
  send_arm();
  EXPECT_ERROR(MSG_ARM, ERROR_CODE_CARTRIDGE_NOT_CLEARED, PEN_STATE_IDLE);  // neither cleared it
  // The chip gone (a bad contact): nothing read good to clear, even by its right id.
  fake_chips[PART_CARTRIDGE].present = 0;
  reread_parts();
  send_clear_cartridge();
  EXPECT_PART_REFUSED(MSG_CLEAR_CARTRIDGE, ERROR_CODE_CARTRIDGE_UNREADABLE, PART_CARTRIDGE, 0, PART_STATUS_ABSENT);
  // Back and read good: cleared.
  fake_chips[PART_CARTRIDGE].present = 1;
  reread_parts();
  send_clear_cartridge();
  EXPECT_OK(MSG_CLEAR_CARTRIDGE);
}

// Before the chips' first read (0.1 s after start-up) there is nothing read good to clear.
static void clear_cartridge_before_read(int unused) {
  (void)unused;
  pen_start_at_once();
  send_clear_cartridge();
  EXPECT_PART_REFUSED(MSG_CLEAR_CARTRIDGE, ERROR_CODE_CARTRIDGE_UNREADABLE, PART_CARTRIDGE, 0, PART_STATUS_UNKNOWN);
}

// The bytes of the marks: the cartridge's used mark (its first byte), the nosecone's use marks (its 3rd sterilization's).
static uint8_t cartridge_used_byte(void) { return fake_chips[PART_CARTRIDGE].memory[PART_LAYOUT_MARK_PAGE_ADDRESS]; }
static uint8_t nosecone_use_byte(void) { return fake_chips[PART_NOSECONE].memory[PART_LAYOUT_USE_MARK_PAGE_ADDRESS]; }

// The session's first start burns both marks (parts_busy until then), and nothing else on the chips changes.
static void start_burns_marks(int unused) {
  (void)unused;
  pen_armed();
  uint8_t cartridge_before[FAKE_CHIP_MEMORY_BYTES], nosecone_before[FAKE_CHIP_MEMORY_BYTES];
  memcpy(cartridge_before, fake_chips[PART_CARTRIDGE].memory, sizeof cartridge_before);
  memcpy(nosecone_before, fake_chips[PART_NOSECONE].memory, sizeof nosecone_before);
  send_start_needle(100);  // detail: the burn's step when asked (0: none claimed yet)
  EXPECT_PART_REFUSED(MSG_START_NEEDLE, ERROR_CODE_PARTS_BUSY, PART_CARTRIDGE, CARTRIDGE_ROM, 0);
  CHECK(!fake.motor_running);
  start_needle_after_marks(100);
  EXPECT_OK(MSG_START_NEEDLE);
  CHECK(fake.motor_running);
  CHECK_EQ(cartridge_used_byte(), 0xFE);  // bit 0: the used mark
  CHECK_EQ(nosecone_use_byte(), 0xF8);    // bit 2: the use of its latest (3rd) sterilization
  CHECK_EQ(fake_chips[PART_CARTRIDGE].copies, 1);
  CHECK_EQ(fake_chips[PART_NOSECONE].copies, 1);
  cartridge_before[PART_LAYOUT_MARK_PAGE_ADDRESS] = 0xFE;
  nosecone_before[PART_LAYOUT_USE_MARK_PAGE_ADDRESS] = 0xF8;
  CHECK(memcmp(cartridge_before, fake_chips[PART_CARTRIDGE].memory, sizeof cartridge_before) == 0);
  CHECK(memcmp(nosecone_before, fake_chips[PART_NOSECONE].memory, sizeof nosecone_before) == 0);
  // What the pen read back afterwards says so too.
  msg_parts_t parts = parts_now();
  CHECK_EQ(parts.cartridge_used_bits, 1);
  CHECK_EQ(parts.nosecone_uses, 3);
  CHECK_EQ(parts.nosecone_unused_since_sterilization, 0);
  CHECK_EQ(parts.last_write, WRITE_RESULT_OK);
}

// In the same fitting the session's parts arm and start again (their marks are its own), burning nothing more; once
// the cartridge has been out and back, it is a used cartridge.
static void marks_hold_for_the_fitting(int unused) {
  (void)unused;
  pen_running();
  send_id(MSG_STOP_NEEDLE);
  EXPECT_OK(MSG_STOP_NEEDLE);
  send_id(MSG_DISARM);
  EXPECT_OK(MSG_DISARM);
  send_id(MSG_HEARTBEAT);
  send_arm();
  EXPECT_OK(MSG_ARM);
  send_start_needle(100);
  EXPECT_OK(MSG_START_NEEDLE);  // at once: no second burn
  CHECK_EQ(fake_chips[PART_CARTRIDGE].copies, 1);
  CHECK_EQ(fake_chips[PART_NOSECONE].copies, 1);
  send_id(MSG_DISARM);
  EXPECT_OK(MSG_DISARM);
  fake_set_input(INPUT_BIT_CARTRIDGE_PRESENT, 0);
  fake_pen_advance_ms(1);
  fake_set_input(INPUT_BIT_CARTRIDGE_PRESENT, 1);
  fake_pen_advance_ms(1);  // the main loop sees the fitting
  parts_read();
  send_clear_cartridge();
  EXPECT_OK(MSG_CLEAR_CARTRIDGE);  // the host may clear it; the chip's mark still refuses it
  send_id(MSG_HEARTBEAT);
  send_arm();
  EXPECT_PART_REFUSED(MSG_ARM, ERROR_CODE_CARTRIDGE_USED, PART_CARTRIDGE, CARTRIDGE_ROM, 1);
  CHECK_EQ(safety_state(), PEN_STATE_IDLE);
}

// A burn that fails is reported once (mark_failed, the write's result), the next start burns again, and with the
// fault gone it succeeds. copy_refused: the chip does not acknowledge the copy; copy_fails: it does, programming nothing.
static void mark_failure_reported_once(int acknowledged) {
  pen_armed();
  uint8_t *fault = acknowledged ? &fake_chips[PART_CARTRIDGE].copy_fails : &fake_chips[PART_CARTRIDGE].copy_refused;
  uint8_t result = acknowledged ? WRITE_RESULT_VERIFY_FAILED : WRITE_RESULT_COPY_FAILED;
  *fault = 1;
  start_needle_after_marks(100);
  EXPECT_PART_REFUSED(MSG_START_NEEDLE, ERROR_CODE_MARK_FAILED, PART_CARTRIDGE, CARTRIDGE_ROM, result);
  CHECK(!fake.motor_running);
  CHECK_EQ(cartridge_used_byte(), 0xFF);
  CHECK_EQ(nosecone_use_byte(), 0xFC);  // the nosecone's mark waits for the cartridge's
  send_start_needle(100);  // reported once: this start burns again
  EXPECT_PART_REFUSED(MSG_START_NEEDLE, ERROR_CODE_PARTS_BUSY, PART_CARTRIDGE, CARTRIDGE_ROM, 1);  // 1: claimed, not burning
  *fault = 0;
  start_needle_after_marks(100);
  EXPECT_OK(MSG_START_NEEDLE);
  CHECK(fake.motor_running);
  CHECK_EQ(cartridge_used_byte(), 0xFE);
  CHECK_EQ(nosecone_use_byte(), 0xF8);
}

// record_sterilization (reprocessing's grant) on a nosecone at its cycle limit: refused, naming it; under it, burnt.
static void sterilization_at_limit(int below) {
  pen_start();
  nosecone_tally(ID_CHIP_NOSECONE_CYCLE_LIMIT - below, 0xFF);
  send_get_parts(PART_BIT(PART_NOSECONE));
  parts_read();
  grant(ROLE_REPROCESSING, MSG_RECORD_STERILIZATION);
  send_record_sterilization(NOSECONE_ROM);
  if (below) {
    EXPECT_OK(MSG_RECORD_STERILIZATION);
    parts_read();
    CHECK_EQ(parts_now().nosecone_sterilizations, ID_CHIP_NOSECONE_CYCLE_LIMIT);
    CHECK_EQ(fake_chips[PART_NOSECONE].memory[PART_LAYOUT_MARK_PAGE_ADDRESS + (ID_CHIP_NOSECONE_CYCLE_LIMIT - 1) / 8], 0x00);
  } else {
    EXPECT_PART_REFUSED(MSG_RECORD_STERILIZATION, ERROR_CODE_NOSECONE_AT_LIMIT, PART_NOSECONE, NOSECONE_ROM,
                        ID_CHIP_NOSECONE_CYCLE_LIMIT);
    CHECK_EQ(fake_chips[PART_NOSECONE].copies, 0);
  }
}

// A nosecone is sterilized off the pen: once a session has claimed it (its first start), no sterilization is recorded
// until the cartridge has been out, else the session's later starts would use the new sterilization unmarked.
static void sterilization_refused_in_session(int unused) {
  (void)unused;
  pen_running();
  send_id(MSG_DISARM);
  EXPECT_OK(MSG_DISARM);
  grant(ROLE_REPROCESSING, MSG_RECORD_STERILIZATION);
  send_record_sterilization(NOSECONE_ROM);
  EXPECT_PART_REFUSED(MSG_RECORD_STERILIZATION, ERROR_CODE_NOT_ALLOWED_IN_STATE, PART_NOSECONE, NOSECONE_ROM, ANY_DETAIL);
  CHECK_EQ(fake_chips[PART_NOSECONE].copies, 1);  // the session's use mark only
  // A new fitting ends the session: then it is recorded.
  fake_set_input(INPUT_BIT_CARTRIDGE_PRESENT, 0);
  fake_pen_advance_ms(1);
  fake_set_input(INPUT_BIT_CARTRIDGE_PRESENT, 1);
  fake_pen_advance_ms(1);
  parts_read();
  grant(ROLE_REPROCESSING, MSG_RECORD_STERILIZATION);
  send_record_sterilization(NOSECONE_ROM);
  EXPECT_OK(MSG_RECORD_STERILIZATION);
  parts_read();
  CHECK_EQ(parts_now().nosecone_sterilizations, 4);
  CHECK_EQ(parts_now().nosecone_unused_since_sterilization, 1);
}

// Armed with good parts, then a read finds the nosecone used (another one fitted meanwhile, say): the first start
// checks the parts again before claiming them, and burns nothing.
static void start_checks_parts_again(int unused) {
  (void)unused;
  pen_armed();
  nosecone_tally(3, 0xF8);
  reread_parts();
  send_start_needle(100);
  EXPECT_PART_REFUSED(MSG_START_NEEDLE, ERROR_CODE_NOSECONE_NOT_STERILIZED, PART_NOSECONE, NOSECONE_ROM, 3);
  CHECK(!fake.motor_running);
  CHECK_EQ(fake_chips[PART_CARTRIDGE].copies, 0);
  CHECK_EQ(cartridge_used_byte(), 0xFF);
}

// record_sterilization naming another part than the fitted nosecone: refused as a mismatch, naming the one fitted.
static void sterilization_wrong_nosecone(int unused) {
  (void)unused;
  pen_start();
  grant(ROLE_REPROCESSING, MSG_RECORD_STERILIZATION);
  send_record_sterilization(CARTRIDGE_ROM);
  EXPECT_PART_REFUSED(MSG_RECORD_STERILIZATION, ERROR_CODE_PART_MISMATCH, PART_NOSECONE, NOSECONE_ROM, 0);
  CHECK_EQ(fake_chips[PART_NOSECONE].copies, 0);
}

// ---- faults and their clear rules ----

static uint8_t needs_home(uint8_t code) { return (FAULT_NEEDS_HOME_MASK >> code) & 1; }
static uint8_t critical(uint8_t code) { return (FAULT_CRITICAL_MASK >> code) & 1; }
// The faults whose cause safety.c can observe (clear_fault waits for it to go).
static uint8_t has_cause(uint8_t code) {
  return code == FAULT_ESTOP || code == FAULT_CARTRIDGE_REMOVED || code == FAULT_OVER_TEMPERATURE ||
         code == FAULT_TEMPERATURE_SENSOR || code == FAULT_SUPPLY_OUT_OF_RANGE || code == FAULT_DEPTH_SENSOR;
}

// hardware/faults.json, restated: the generated masks must say the same.
static void fault_catalogue_matches(int unused) {
  (void)unused;
  static const uint8_t clear_and_home[] = { FAULT_ESTOP, FAULT_DEPTH_MISMATCH, FAULT_HOMING_FAILED, FAULT_HOME_SWITCH_STUCK,
                                            FAULT_DEPTH_SENSOR, FAULT_WATCHDOG_RESET, FAULT_DEPTH_OUTSIDE_WINDOW };
  uint32_t mask = 0;
  for (unsigned i = 0; i < sizeof clear_and_home; i++) mask |= 1UL << clear_and_home[i];
  CHECK_EQ(FAULT_NEEDS_HOME_MASK, mask);
  // Every fault but none and speed_tolerance is critical.
  CHECK_EQ(FAULT_CRITICAL_MASK, ((1UL << FAULT_COUNT) - 1) & ~(1UL << FAULT_NONE) & ~(1UL << FAULT_SPEED_TOLERANCE));
  CHECK_EQ(FAULT_COUNT, 16);
}

// Brings the pen into the fault from a state where the cartridge was cleared (where the fault allows that).
static void induce(uint8_t code) {
  switch (code) {
    case FAULT_HEARTBEAT_LOST:
      pen_armed();
      fake_pen_advance_ms(HEARTBEAT_TIMEOUT_MS + 2);
      break;
    case FAULT_ESTOP: pen_armed(); trip(TRIP_ESTOP); fake_pen_advance_ms(1); break;
    case FAULT_CARTRIDGE_REMOVED: pen_armed(); fake_set_input(INPUT_BIT_CARTRIDGE_PRESENT, 0); fake_pen_advance_ms(1); break;
    case FAULT_OVER_TEMPERATURE: pen_armed(); trip(TRIP_HOT); fake_pen_advance_ms(1); break;
    case FAULT_TEMPERATURE_SENSOR: pen_armed(); trip(TRIP_NTC); fake_pen_advance_ms(1); break;
    case FAULT_SUPPLY_OUT_OF_RANGE: pen_armed(); trip(TRIP_SUPPLY_LOW); fake_pen_advance_ms(1); break;
    case FAULT_MOTOR_STALL:
    case FAULT_MOTOR_OVERCURRENT:
    case FAULT_SPEED_TOLERANCE:
      pen_running();
      fake.motor_fault = code;
      fake_pen_advance_ms(1);
      break;
    case FAULT_DEPTH_MISMATCH:
      pen_armed();
      fake.depth_sensor_follows = 0;
      fake.depth_mv = fake_depth_mv_for_steps(fake.position + calibration_steps_for_um(DEPTH_AXIS_MISMATCH_TOLERANCE_UM + 40));
      fake_pen_advance_ms(DEPTH_AXIS_MISMATCH_DEBOUNCE_MS - 1);
      REQUIRE(safety_state() == PEN_STATE_ARMED);  // debounced
      fake_pen_advance_ms(1);
      break;
    case FAULT_HOMING_FAILED:
      pen_start();
      send_clear_cartridge();
      REQUIRE_OK(MSG_CLEAR_CARTRIDGE);
      send_id(MSG_HOME);
      fake_finish_homing(HOMING_SWITCH_NOT_FOUND);
      fake_pen_advance_ms(1);
      break;
    case FAULT_HOME_SWITCH_STUCK:
      pen_armed();
      fake_set_input(INPUT_BIT_HOME_SWITCH, 1);  // pressed with the needle at 1 mm
      fake_pen_advance_ms(1);
      break;
    case FAULT_DEPTH_SENSOR: pen_armed(); trip(TRIP_DEPTH_SENSOR); fake_pen_advance_ms(1); break;
    case FAULT_WATCHDOG_RESET:
      fake.reset_cause = RESET_CAUSE_WATCHDOG;
      pen_start();
      break;
    case FAULT_DEPTH_OUTSIDE_WINDOW:
      pen_armed();
      fake_place_needle(calibration_steps_for_um(DEPTH_MAX_UM + 1));  // both channels agree it is too deep
      fake_pen_advance_ms(1);
      break;
  }
}

static void remove_cause(uint8_t code) {
  fake.motor_fault = 0;
  fake.depth_sensor_follows = 1;
  fake_set_input(INPUT_BIT_HOME_SWITCH, 0);
  switch (code) {
    case FAULT_ESTOP: fake_set_input(INPUT_BIT_ESTOP, 0); break;
    case FAULT_CARTRIDGE_REMOVED: fake_set_input(INPUT_BIT_CARTRIDGE_PRESENT, 1); break;
    case FAULT_OVER_TEMPERATURE: fake.temperature_deci_c = LIMITS_TEMPERATURE_CLEAR_DECI_C; break;
    case FAULT_TEMPERATURE_SENSOR: fake.ntc_plausible = 1; break;
    case FAULT_SUPPLY_OUT_OF_RANGE: fake.supply_mv = 12000; break;
    case FAULT_DEPTH_SENSOR: fake.depth_sensor_plausible = 1; break;
  }
}

static void fault_and_clear(int code_int) {
  uint8_t code = (uint8_t)code_int;
  uint8_t homed_before = code != FAULT_HOMING_FAILED && code != FAULT_WATCHDOG_RESET;
  induce(code);
  msg_telemetry_t telemetry = status();
  REQUIRE(telemetry.state == PEN_STATE_FAULT);
  CHECK_EQ(telemetry.fault_code, code);
  CHECK(!fake.motor_running);
  CHECK(fake.retracts >= 1);  // the safe path retracts the needle
  CHECK_EQ((telemetry.flags >> TELEMETRY_FLAG_NEEDLE_ON) & 1, 0);
  // Critical faults withdraw the cartridge clearance; the others keep it.
  uint8_t cleared_before = code != FAULT_WATCHDOG_RESET && code != FAULT_CARTRIDGE_REMOVED;
  CHECK_EQ((telemetry.flags >> TELEMETRY_FLAG_CARTRIDGE_CLEARED) & 1, critical(code) ? 0 : cleared_before);
  CHECK_EQ((telemetry.flags >> TELEMETRY_FLAG_HOMED) & 1, homed_before && !needs_home(code));
  if (code == FAULT_HOME_SWITCH_STUCK) CHECK_EQ(fake.retract_trusts_switch, 0);
  // The one-way door: outside the whitelist everything is refused with the fault as detail.
  send_arm();
  EXPECT_ERROR(MSG_ARM, ERROR_CODE_NOT_ALLOWED_IN_FAULT, code);
  send_move_to(1000);
  EXPECT_ERROR(MSG_MOVE_TO, ERROR_CODE_NOT_ALLOWED_IN_FAULT, code);

  if (has_cause(code)) {
    if (code == FAULT_OVER_TEMPERATURE) fake.temperature_deci_c = LIMITS_TEMPERATURE_CLEAR_DECI_C + 1;  // cooling, not cool
    send_id(MSG_CLEAR_FAULT);
    EXPECT_ERROR(MSG_CLEAR_FAULT, ERROR_CODE_FAULT_CAUSE_PRESENT, code);
    EXPECT_STATE(PEN_STATE_FAULT);
  }
  remove_cause(code);
  fake_complete_move();
  fake_pen_advance_ms(5);
  telemetry = status();
  CHECK_EQ(telemetry.state, PEN_STATE_FAULT);
  CHECK_EQ(telemetry.fault_code, code);

  send_id(MSG_CLEAR_FAULT);
  EXPECT_OK(MSG_CLEAR_FAULT);
  // clear: back to IDLE with the position kept; clear_and_home: homing first.
  uint8_t expected = needs_home(code) || !homed_before ? PEN_STATE_HOMING_REQUIRED : PEN_STATE_IDLE;
  EXPECT_STATE(expected);
  fake_pen_advance_ms(5);
  telemetry = status();
  CHECK_EQ(telemetry.state, expected);
  CHECK_EQ(telemetry.fault_code, FAULT_NONE);
  CHECK_EQ((telemetry.flags >> TELEMETRY_FLAG_HOMED) & 1, expected == PEN_STATE_IDLE);
}

// A clear fault latched before homing returns to HOMING_REQUIRED: there is no position to keep.
static void clear_fault_unhomed(int unused) {
  (void)unused;
  pen_start();
  trip(TRIP_SUPPLY_LOW);
  fake_pen_advance_ms(1);
  REQUIRE_STATE(PEN_STATE_FAULT);
  remove_cause(FAULT_SUPPLY_OUT_OF_RANGE);
  send_id(MSG_CLEAR_FAULT);
  EXPECT_OK(MSG_CLEAR_FAULT);
  EXPECT_STATE(PEN_STATE_HOMING_REQUIRED);
}

// An interlock that fired since the last main-loop pass also keeps the fault latched.
static void clear_refused_while_flagged(int unused) {
  (void)unused;
  pen_fault_supply();
  fake_set_input(INPUT_BIT_ESTOP, 1);
  fake_set_input(INPUT_BIT_ESTOP, 0);  // a bounce: the edge was flagged, the loop is closed again
  send_id(MSG_CLEAR_FAULT);
  EXPECT_ERROR(MSG_CLEAR_FAULT, ERROR_CODE_FAULT_CAUSE_PRESENT, FAULT_SUPPLY_OUT_OF_RANGE);
}

// arg 0: the back-off ran out with the switch pressed; 1: homing began with the needle out and the switch pressed,
// which the depth sensor gives away.
static void home_switch_stuck_while_homing(int by_sensor) {
  if (by_sensor) {
    pen_at_depth(1000);
    send_id(MSG_HOME);
    REQUIRE_OK(MSG_HOME);
    fake_set_input(INPUT_BIT_HOME_SWITCH, 1);
  } else {
    pen_homing();
    fake_finish_homing(HOMING_SWITCH_STUCK);
  }
  fake_pen_advance_ms(1);
  msg_telemetry_t telemetry = status();
  CHECK_EQ(telemetry.state, PEN_STATE_FAULT);
  CHECK_EQ(telemetry.fault_code, FAULT_HOME_SWITCH_STUCK);
  CHECK_EQ(fake.retract_trusts_switch, 0);  // retract by the sensor's position, past the switch
  CHECK_EQ(fake.retract_sensed_position, calibration_sensor_steps(fake_depth_mv_for_steps(fake.carriage)));
  fake_complete_move();
  CHECK(fake.carriage <= 0);
}

// The first cause is the one reported; a later one does not replace it.
static void first_cause_reported(int unused) {
  (void)unused;
  pen_armed();
  trip(TRIP_HOT);
  fake_pen_advance_ms(1);
  trip(TRIP_ESTOP);
  fake_pen_advance_ms(1);
  msg_telemetry_t telemetry = status();
  CHECK_EQ(telemetry.state, PEN_STATE_FAULT);
  CHECK_EQ(telemetry.fault_code, FAULT_OVER_TEMPERATURE);
}

// After a home_switch_stuck fault the safe path retracts by the depth sensor's position, past the switch
// (stepper_retract_untrusted_switch); a STOP that arrives while that retract runs must not hand the retract back to the
// switch that is known to be stuck, which would halt it at once with the needle out.
static void stop_keeps_stuck_switch_untrusted(int unused) {
  (void)unused;
  induce(FAULT_HOME_SWITCH_STUCK);
  REQUIRE(safety_state() == PEN_STATE_FAULT && fake.retract_trusts_switch == 0);
  const uint8_t stop = FRAME_STOP;
  fake_pen_receive(&stop, 1);
  fake_pen_advance_ms(1);
  CHECK_EQ(fake.retract_trusts_switch, 0);
  fake_complete_move();
  CHECK(fake.carriage <= 0);  // the needle is in
}

// ---- the transition table ----

static const uint8_t expected_next[7] = {
  [PEN_STATE_BOOT] = 1 << PEN_STATE_HOMING_REQUIRED,
  [PEN_STATE_HOMING_REQUIRED] = 1 << PEN_STATE_HOMING,
  [PEN_STATE_HOMING] = 1 << PEN_STATE_IDLE | 1 << PEN_STATE_HOMING_REQUIRED,
  [PEN_STATE_IDLE] = 1 << PEN_STATE_HOMING | 1 << PEN_STATE_ARMED,
  [PEN_STATE_ARMED] = 1 << PEN_STATE_IDLE | 1 << PEN_STATE_RUNNING,
  [PEN_STATE_RUNNING] = 1 << PEN_STATE_IDLE | 1 << PEN_STATE_ARMED,
  [PEN_STATE_FAULT] = 1 << PEN_STATE_IDLE | 1 << PEN_STATE_HOMING_REQUIRED,
};

static void reach(uint8_t state) {
  switch (state) {
    case PEN_STATE_BOOT: break;  // before safety_init
    case PEN_STATE_HOMING_REQUIRED: pen_start(); break;
    case PEN_STATE_HOMING: pen_homing(); break;
    case PEN_STATE_IDLE: pen_idle(); break;
    case PEN_STATE_ARMED: pen_armed(); break;
    case PEN_STATE_RUNNING: pen_running(); break;
    case PEN_STATE_FAULT: pen_fault_supply(); break;
  }
  REQUIRE(safety_state() == state);
}

static const uint16_t targets[] = { 0, 1, 2, 3, 4, 5, 6, 7, 0xFF };
#define TARGET_COUNT (int)(sizeof targets / sizeof targets[0])

// arg = from * TARGET_COUNT + target index
static void safety_enter_follows_table(int arg) {
  uint8_t from = (uint8_t)(arg / TARGET_COUNT), to = (uint8_t)targets[arg % TARGET_COUNT];
  reach(from);
  uint8_t allowed = to == from || (to < 7 && ((expected_next[from] >> to) & 1));
  CHECK_EQ(safety_enter(to), allowed);
  CHECK_EQ(safety_state(), allowed ? to : from);
}

// Each allowed transition, reached by a command or an event as the pen meets them.
enum {
  EDGE_BOOT_HOMING_REQUIRED, EDGE_HOMING_REQUIRED_HOMING, EDGE_HOMING_IDLE, EDGE_HOMING_HOMING_REQUIRED_STOP_FRAME,
  EDGE_HOMING_HOMING_REQUIRED_STOP_BYTE, EDGE_IDLE_HOMING, EDGE_IDLE_ARMED, EDGE_ARMED_IDLE_DISARM, EDGE_ARMED_IDLE_STOP,
  EDGE_ARMED_RUNNING, EDGE_RUNNING_IDLE_DISARM, EDGE_RUNNING_IDLE_STOP, EDGE_RUNNING_ARMED, EDGE_FAULT_IDLE,
  EDGE_FAULT_HOMING_REQUIRED, EDGE_COUNT
};

static void stop_frame(void) {
  send_id(MSG_STOP);
  EXPECT_OK(MSG_STOP);
}
static void stop_byte(void) {
  const uint8_t stop = FRAME_STOP;
  fake_pen_receive(&stop, 1);
  CHECK(!fake.motor_running);  // at once, in the receive interrupt
  fake_pen_loop_pass();
}

static void transition_reachable(int edge) {
  uint8_t to = 0;
  switch (edge) {
    case EDGE_BOOT_HOMING_REQUIRED:
      CHECK_EQ(safety_state(), PEN_STATE_BOOT);
      pen_start();
      to = PEN_STATE_HOMING_REQUIRED;
      break;
    case EDGE_HOMING_REQUIRED_HOMING: pen_start(); send_id(MSG_HOME); EXPECT_OK(MSG_HOME); to = PEN_STATE_HOMING; break;
    case EDGE_HOMING_IDLE: pen_homing(); fake_finish_homing(HOMING_DONE); fake_pen_advance_ms(1); to = PEN_STATE_IDLE; break;
    case EDGE_HOMING_HOMING_REQUIRED_STOP_FRAME: pen_homing(); stop_frame(); to = PEN_STATE_HOMING_REQUIRED; break;
    case EDGE_HOMING_HOMING_REQUIRED_STOP_BYTE: pen_homing(); stop_byte(); to = PEN_STATE_HOMING_REQUIRED; break;
    case EDGE_IDLE_HOMING: pen_idle(); send_id(MSG_HOME); EXPECT_OK(MSG_HOME); to = PEN_STATE_HOMING; break;
    case EDGE_IDLE_ARMED: pen_ready_to_arm(1000); send_arm(); EXPECT_OK(MSG_ARM); to = PEN_STATE_ARMED; break;
    case EDGE_ARMED_IDLE_DISARM: pen_armed(); send_id(MSG_DISARM); EXPECT_OK(MSG_DISARM); to = PEN_STATE_IDLE; break;
    case EDGE_ARMED_IDLE_STOP: pen_armed(); stop_byte(); to = PEN_STATE_IDLE; break;
    case EDGE_ARMED_RUNNING: pen_armed(); start_needle_after_marks(100); EXPECT_OK(MSG_START_NEEDLE); to = PEN_STATE_RUNNING; break;
    case EDGE_RUNNING_IDLE_DISARM: pen_running(); send_id(MSG_DISARM); EXPECT_OK(MSG_DISARM); to = PEN_STATE_IDLE; break;
    case EDGE_RUNNING_IDLE_STOP: pen_running(); stop_frame(); to = PEN_STATE_IDLE; break;
    case EDGE_RUNNING_ARMED: pen_running(); send_id(MSG_STOP_NEEDLE); EXPECT_OK(MSG_STOP_NEEDLE); to = PEN_STATE_ARMED; break;
    case EDGE_FAULT_IDLE: pen_fault_supply(); send_id(MSG_CLEAR_FAULT); EXPECT_OK(MSG_CLEAR_FAULT); to = PEN_STATE_IDLE; break;
    case EDGE_FAULT_HOMING_REQUIRED:
      fake.reset_cause = RESET_CAUSE_WATCHDOG;
      pen_start();
      send_id(MSG_CLEAR_FAULT);
      EXPECT_OK(MSG_CLEAR_FAULT);
      to = PEN_STATE_HOMING_REQUIRED;
      break;
  }
  EXPECT_STATE(to);
  if (to != PEN_STATE_RUNNING) CHECK(!fake.motor_running);
  else CHECK(fake.motor_running);
}

// FAULT from every state the pen can be in, through the one safe path.
static void fault_from_state(int state) {
  reach((uint8_t)state);
  trip(TRIP_ESTOP);
  fake_pen_advance_ms(1);
  msg_telemetry_t telemetry = status();
  CHECK_EQ(telemetry.state, PEN_STATE_FAULT);
  CHECK_EQ(telemetry.fault_code, FAULT_ESTOP);
  CHECK(!fake.motor_running);
}

// ---- the motor-start veto ----

enum { VETO_ESTOP_EDGE, VETO_CARTRIDGE_EDGE, VETO_HEARTBEAT_TICK, VETO_NONE };

static void start_with_veto(int cause) {
  pen_running();  // the session's marks burnt, so this start goes straight to the motor
  send_id(MSG_STOP_NEEDLE);
  REQUIRE_OK(MSG_STOP_NEEDLE);
  fake.motor_starts = 0;
  uint8_t expected_code = 0;
  if (cause == VETO_ESTOP_EDGE) {
    fake_set_input(INPUT_BIT_ESTOP, 1);  // the interrupt flags it; no main-loop pass has run since
    expected_code = FAULT_ESTOP;
  } else if (cause == VETO_CARTRIDGE_EDGE) {
    fake_set_input(INPUT_BIT_CARTRIDGE_PRESENT, 0);
    expected_code = FAULT_CARTRIDGE_REMOVED;
  } else if (cause == VETO_HEARTBEAT_TICK) {
    for (int ms = 0; ms <= HEARTBEAT_TIMEOUT_MS; ms++) fake.tick_1khz();  // the tick alone: the loop is stalled
    expected_code = FAULT_HEARTBEAT_LOST;
  }
  send_start_needle(100);
  if (cause == VETO_NONE) {
    EXPECT_OK(MSG_START_NEEDLE);
    CHECK(fake.motor_running);
    CHECK_EQ(safety_state(), PEN_STATE_RUNNING);
    return;
  }
  EXPECT_ERROR(MSG_START_NEEDLE, ERROR_CODE_INTERLOCK_ACTIVE, expected_code);
  CHECK(!fake.motor_running);
  // The e-stop is also a polled interlock, which start_needle checks before it asks the motor: refused there.
  CHECK_EQ(fake.motor_vetoes, cause == VETO_ESTOP_EDGE ? 0 : 1);
  CHECK_EQ(fake.motor_starts, 0);
  CHECK_EQ(safety_state(), PEN_STATE_ARMED);
  fake_pen_loop_pass();  // the loop latches what the interrupt flagged
  msg_telemetry_t telemetry = status();
  CHECK_EQ(telemetry.state, PEN_STATE_FAULT);
  CHECK_EQ(telemetry.fault_code, expected_code);
}

// A polled interlock that trips between two main-loop passes: start_needle checks it itself, the motor never starts.
static void start_refused_supply_between_passes(int unused) {
  (void)unused;
  pen_armed();
  fake.supply_mv = LIMITS_SUPPLY_MIN_MV - 500;  // no loop pass runs before the command
  send_start_needle(100);
  EXPECT_ERROR(MSG_START_NEEDLE, ERROR_CODE_INTERLOCK_ACTIVE, FAULT_SUPPLY_OUT_OF_RANGE);
  CHECK(!fake.motor_running);
  CHECK_EQ(fake.motor_starts, 0);
}

static void start_refused_speed(int strokes_per_second) {
  pen_armed();
  send_start_needle((uint16_t)strokes_per_second);
  EXPECT_ERROR(MSG_START_NEEDLE, ERROR_CODE_OUT_OF_RANGE, strokes_per_second);
  CHECK(!fake.motor_running);
}

static void start_refused_not_armed(int unused) {
  (void)unused;
  pen_at_depth(1000);
  send_start_needle(100);
  EXPECT_ERROR(MSG_START_NEEDLE, ERROR_CODE_NOT_ALLOWED_IN_STATE, PEN_STATE_IDLE);
  CHECK(!fake.motor_running);
}

// ---- calibration bounds ----

static const uint32_t step_values[] = {
  0, CALIBRATION_STEPS_PER_MM_X100_MIN - 1, CALIBRATION_STEPS_PER_MM_X100_MIN, CALIBRATION_STEPS_PER_MM_X100_MIN + 1,
  (uint32_t)STEPS_PER_MM * 100, CALIBRATION_STEPS_PER_MM_X100_MAX - 1, CALIBRATION_STEPS_PER_MM_X100_MAX,
  CALIBRATION_STEPS_PER_MM_X100_MAX + 1, UINT32_MAX,
};
static const int16_t offset_values[] = {
  INT16_MIN, CALIBRATION_ZERO_OFFSET_UM_MIN - 1, CALIBRATION_ZERO_OFFSET_UM_MIN, CALIBRATION_ZERO_OFFSET_UM_MIN + 1, 0,
  CALIBRATION_ZERO_OFFSET_UM_MAX - 1, CALIBRATION_ZERO_OFFSET_UM_MAX, CALIBRATION_ZERO_OFFSET_UM_MAX + 1, INT16_MAX,
};
static const uint16_t zero_mv_values[] = {
  0, CALIBRATION_SENSOR_ZERO_MV_MIN - 1, CALIBRATION_SENSOR_ZERO_MV_MIN, CALIBRATION_SENSOR_ZERO_MV_MIN + 1,
  SENSORS_DEPTH_SENSOR_ZERO_MV, CALIBRATION_SENSOR_ZERO_MV_MAX - 1, CALIBRATION_SENSOR_ZERO_MV_MAX,
  CALIBRATION_SENSOR_ZERO_MV_MAX + 1, UINT16_MAX,
};
static const uint16_t slope_values[] = {
  0, CALIBRATION_SENSOR_MV_PER_MM_MIN - 1, CALIBRATION_SENSOR_MV_PER_MM_MIN, CALIBRATION_SENSOR_MV_PER_MM_MIN + 1,
  SENSORS_DEPTH_SENSOR_MV_PER_MM, CALIBRATION_SENSOR_MV_PER_MM_MAX - 1, CALIBRATION_SENSOR_MV_PER_MM_MAX,
  CALIBRATION_SENSOR_MV_PER_MM_MAX + 1, UINT16_MAX,
};
#define VALUES 9
_Static_assert(sizeof step_values / sizeof step_values[0] == VALUES, "nine values per field");
_Static_assert(sizeof offset_values / sizeof offset_values[0] == VALUES, "nine values per field");
_Static_assert(sizeof zero_mv_values / sizeof zero_mv_values[0] == VALUES, "nine values per field");
_Static_assert(sizeof slope_values / sizeof slope_values[0] == VALUES, "nine values per field");

static msg_calibration_t get_calibration(void) {
  msg_calibration_t calibration;
  send_id(MSG_GET_CALIBRATION);
  REQUIRE(reply_length == (int)sizeof calibration && reply[0] == MSG_CALIBRATION);
  memcpy(&calibration, reply, sizeof calibration);
  return calibration;
}

// After the write completes and the pen restarts, the stored calibration is the one in force.
static void check_survives_reset(const struct calibration *expected, uint8_t source) {
  for (int pass = 0; pass < 200 && storage_busy(); pass++) fake_pen_advance_ms(1);
  CHECK(!storage_busy());
  storage_init();
  const struct calibration *loaded = calibration_current();
  CHECK_EQ(calibration_source(), source);
  CHECK_EQ(loaded->depth.steps_per_mm_x100, expected->depth.steps_per_mm_x100);
  CHECK_EQ(loaded->depth.zero_offset_um, expected->depth.zero_offset_um);
  CHECK_EQ(loaded->sensor.zero_mv, expected->sensor.zero_mv);
  CHECK_EQ(loaded->sensor.mv_per_mm, expected->sensor.mv_per_mm);
}

// arg = steps index * VALUES + offset index
static void depth_calibration_bounds(int arg) {
  uint32_t steps = step_values[arg / VALUES];
  int16_t offset = offset_values[arg % VALUES];
  uint8_t inside = steps >= CALIBRATION_STEPS_PER_MM_X100_MIN && steps <= CALIBRATION_STEPS_PER_MM_X100_MAX &&
                   offset >= CALIBRATION_ZERO_OFFSET_UM_MIN && offset <= CALIBRATION_ZERO_OFFSET_UM_MAX;
  pen_start();
  grant(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  send_depth_calibration(steps, offset);
  struct calibration expected;
  calibration_default(&expected);
  if (inside) {
    EXPECT_OK(MSG_SET_DEPTH_CALIBRATION);
    expected.depth.steps_per_mm_x100 = steps;
    expected.depth.zero_offset_um = offset;
  } else {
    EXPECT_ERROR(MSG_SET_DEPTH_CALIBRATION, ERROR_CODE_OUT_OF_RANGE, 0);
  }
  msg_calibration_t calibration = get_calibration();
  CHECK_EQ(calibration.steps_per_mm_x100, expected.depth.steps_per_mm_x100);
  CHECK_EQ(calibration.zero_offset_um, expected.depth.zero_offset_um);
  CHECK_EQ(calibration.source, inside ? CALIBRATION_SOURCE_STORED : CALIBRATION_SOURCE_DEFAULT);
  CHECK_EQ(calibration.stored_count, inside ? 1 : 0);
  check_survives_reset(&expected, inside ? CALIBRATION_SOURCE_STORED : CALIBRATION_SOURCE_DEFAULT);
}

static void sensor_calibration_bounds(int arg) {
  uint16_t zero_mv = zero_mv_values[arg / VALUES], slope = slope_values[arg % VALUES];
  uint8_t inside = zero_mv >= CALIBRATION_SENSOR_ZERO_MV_MIN && zero_mv <= CALIBRATION_SENSOR_ZERO_MV_MAX &&
                   slope >= CALIBRATION_SENSOR_MV_PER_MM_MIN && slope <= CALIBRATION_SENSOR_MV_PER_MM_MAX;
  pen_start();
  grant(ROLE_ENGINEER, MSG_SET_SENSOR_CALIBRATION);
  send_sensor_calibration(zero_mv, slope);
  struct calibration expected;
  calibration_default(&expected);
  if (inside) {
    EXPECT_OK(MSG_SET_SENSOR_CALIBRATION);
    expected.sensor.zero_mv = zero_mv;
    expected.sensor.mv_per_mm = slope;
  } else {
    EXPECT_ERROR(MSG_SET_SENSOR_CALIBRATION, ERROR_CODE_OUT_OF_RANGE, 0);
  }
  msg_calibration_t calibration = get_calibration();
  CHECK_EQ(calibration.sensor_zero_mv, expected.sensor.zero_mv);
  CHECK_EQ(calibration.sensor_mv_per_mm, expected.sensor.mv_per_mm);
  CHECK_EQ(calibration.steps_per_mm_x100, expected.depth.steps_per_mm_x100);  // the other channel untouched
  CHECK_EQ(calibration.source, inside ? CALIBRATION_SOURCE_STORED : CALIBRATION_SOURCE_DEFAULT);
  check_survives_reset(&expected, inside ? CALIBRATION_SOURCE_STORED : CALIBRATION_SOURCE_DEFAULT);
}

enum { CALIBRATE_ARMED, CALIBRATE_MOVING, CALIBRATE_WRITING, CALIBRATE_FAULT, CALIBRATE_RUNNING, CALIBRATE_HOMING };

// Calibration while the needle may move, or a write is under way: no challenge is issued (so the HMAC never runs
// then), and the command itself, without a grant, is refused for its role.
static void calibration_refused(int when) {
  uint8_t state = 0, code = ERROR_CODE_NOT_ALLOWED_IN_STATE;
  if (when == CALIBRATE_ARMED) {
    pen_armed();
    state = PEN_STATE_ARMED;
  } else if (when == CALIBRATE_RUNNING) {
    pen_running();
    state = PEN_STATE_RUNNING;
  } else if (when == CALIBRATE_HOMING) {
    pen_homing();
    state = PEN_STATE_HOMING;
  } else if (when == CALIBRATE_MOVING) {
    pen_idle();
    send_move_to(1500);
    REQUIRE_OK(MSG_MOVE_TO);
    state = PEN_STATE_IDLE;
  } else if (when == CALIBRATE_WRITING) {
    pen_start();
    grant(ROLE_ENGINEER, MSG_SET_SENSOR_CALIBRATION);
    send_sensor_calibration(SENSORS_DEPTH_SENSOR_ZERO_MV + 1, SENSORS_DEPTH_SENSOR_MV_PER_MM);
    REQUIRE_OK(MSG_SET_SENSOR_CALIBRATION);
    code = ERROR_CODE_EEPROM_BUSY;
  } else {
    pen_fault_supply();
    code = ERROR_CODE_NOT_ALLOWED_IN_FAULT;
    state = FAULT_SUPPLY_OUT_OF_RANGE;
  }
  send_request_challenge(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  EXPECT_ERROR(MSG_REQUEST_CHALLENGE, code, state);
  send_request_challenge(ROLE_ENGINEER, MSG_SET_SENSOR_CALIBRATION);
  EXPECT_ERROR(MSG_REQUEST_CHALLENGE, code, state);
  send_depth_calibration(CALIBRATION_STEPS_PER_MM_X100_MIN, 0);
  if (when == CALIBRATE_FAULT) EXPECT_ERROR(MSG_SET_DEPTH_CALIBRATION, ERROR_CODE_NOT_ALLOWED_IN_FAULT, FAULT_SUPPLY_OUT_OF_RANGE);
  else EXPECT_ERROR(MSG_SET_DEPTH_CALIBRATION, ERROR_CODE_ROLE_REQUIRED, ROLE_TECHNICIAN);
  send_sensor_calibration(SENSORS_DEPTH_SENSOR_ZERO_MV, SENSORS_DEPTH_SENSOR_MV_PER_MM + 1);
  if (when == CALIBRATE_FAULT) EXPECT_ERROR(MSG_SET_SENSOR_CALIBRATION, ERROR_CODE_NOT_ALLOWED_IN_FAULT, FAULT_SUPPLY_OUT_OF_RANGE);
  else EXPECT_ERROR(MSG_SET_SENSOR_CALIBRATION, ERROR_CODE_ROLE_REQUIRED, ROLE_ENGINEER);
  msg_calibration_t calibration = get_calibration();
  CHECK_EQ(calibration.stored_count, when == CALIBRATE_WRITING ? 1 : 0);
}

// A grant taken while still, then the pen starts moving before the command (the safe path's retract after a fault):
// the command is refused for the state, and the grant is spent.
static void calibration_refused_after_grant(int unused) {
  (void)unused;
  pen_idle();
  grant(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  fake.supply_mv = LIMITS_SUPPLY_MIN_MV - 1;
  fake_pen_advance_ms(1);
  REQUIRE(fake.retracting || fake.moving);
  send_depth_calibration(STEPS_PER_MM * 100, 0);
  EXPECT_ERROR(MSG_SET_DEPTH_CALIBRATION, ERROR_CODE_NOT_ALLOWED_IN_FAULT, FAULT_SUPPLY_OUT_OF_RANGE);
  CHECK_EQ(get_calibration().stored_count, 0);
}

// ---- storage: a reset at any byte of a save ----

static int same_calibration(const struct calibration *a, const struct calibration *b) {
  return a->depth.steps_per_mm_x100 == b->depth.steps_per_mm_x100 && a->depth.zero_offset_um == b->depth.zero_offset_um &&
         a->sensor.zero_mv == b->sensor.zero_mv && a->sensor.mv_per_mm == b->sensor.mv_per_mm;
}

static void drain_storage(void) {
  for (int pass = 0; pass < 1000 && storage_busy(); pass++) storage_poll();
  REQUIRE(!storage_busy());
}

#define RESET_POINTS 40  // more storage_poll passes than one save takes (two copies of a record)

static struct calibration calibration_variant(int32_t steps_per_mm_x100, int16_t zero_offset_um, uint16_t mv_per_mm) {
  struct calibration calibration;
  calibration_default(&calibration);
  calibration.depth.steps_per_mm_x100 = (uint32_t)steps_per_mm_x100;
  calibration.depth.zero_offset_um = zero_offset_um;
  calibration.sensor.mv_per_mm = mv_per_mm;
  return calibration;
}

// Saves new_calibration, lets writes_before_reset EEPROM writes land (and, when torn, the next one land as garbage),
// then restarts: the calibration loaded must be old (with old_source) or the new one.
static void save_and_reset(const struct calibration *old, uint8_t old_source, const struct calibration *new_calibration,
                           int writes_before_reset, int torn, int line) {
  uint32_t base = fake.eeprom_writes;
  storage_save(new_calibration);
  while (storage_busy() && fake.eeprom_writes - base < (uint32_t)writes_before_reset) storage_poll();
  if (torn && storage_busy()) {
    // The reset comes while the next byte is being written: that byte holds garbage.
    fake.eeprom_tear_next = 1;
    uint32_t before = fake.eeprom_writes;
    while (storage_busy() && fake.eeprom_writes == before) storage_poll();
    fake.eeprom_tear_next = 0;
  }
  uint8_t completed = !storage_busy();
  storage_init();  // the restart
  const struct calibration *loaded = calibration_current();
  uint8_t is_old = same_calibration(loaded, old) && calibration_source() == old_source;
  uint8_t is_new = same_calibration(loaded, new_calibration) && calibration_source() == CALIBRATION_SOURCE_STORED;
  if (!is_old && !is_new) {
    fail_at(__FILE__, line, "after %d writes%s: neither the old nor the new calibration (source %u, steps %lu)",
            writes_before_reset, torn ? " and a torn one" : "", calibration_source(), (unsigned long)loaded->depth.steps_per_mm_x100);
  }
  if (completed && !is_new) fail_at(__FILE__, line, "the save completed, yet the new calibration was not loaded");
}

// arg = (scenario * 2 + torn) * RESET_POINTS + writes before the reset. Scenario 0: the first save into a blank
// EEPROM; 1: a save over a stored record; 2: a save after an earlier save was itself cut short after any number of
// passes (the two copies then differ), each cut tried in turn.
static void reset_during_save(int arg) {
  int writes_before_reset = arg % RESET_POINTS, torn = (arg / RESET_POINTS) % 2, scenario = arg / RESET_POINTS / 2;
  struct calibration nominal, a = calibration_variant(CALIBRATION_STEPS_PER_MM_X100_MIN, -7, CALIBRATION_SENSOR_MV_PER_MM_MIN);
  struct calibration b = calibration_variant(CALIBRATION_STEPS_PER_MM_X100_MAX, 23, CALIBRATION_SENSOR_MV_PER_MM_MAX);
  struct calibration c = calibration_variant(STEPS_PER_MM * 100 + 7, -29, SENSORS_DEPTH_SENSOR_MV_PER_MM + 3);
  calibration_default(&nominal);
  if (scenario == 0) {
    storage_init();
    REQUIRE(calibration_source() == CALIBRATION_SOURCE_DEFAULT);
    save_and_reset(&nominal, CALIBRATION_SOURCE_DEFAULT, &b, writes_before_reset, torn, __LINE__);
  } else if (scenario == 1) {
    storage_init();
    storage_save(&a);
    drain_storage();
    storage_init();
    REQUIRE(calibration_source() == CALIBRATION_SOURCE_STORED && same_calibration(calibration_current(), &a));
    save_and_reset(&a, CALIBRATION_SOURCE_STORED, &b, writes_before_reset, torn, __LINE__);
  } else {
    for (int cut = 0; cut <= RESET_POINTS; cut++) {
      fake_board_reset();
      storage_init();
      storage_save(&a);
      drain_storage();
      storage_init();
      storage_save(&b);
      for (int pass = 0; pass < cut; pass++) storage_poll();
      storage_init();  // the earlier save, cut short
      struct calibration old = *calibration_current();
      uint8_t old_source = calibration_source();
      REQUIRE(old_source == CALIBRATION_SOURCE_STORED && (same_calibration(&old, &a) || same_calibration(&old, &b)));
      save_and_reset(&old, old_source, &c, writes_before_reset, torn, __LINE__);
    }
  }
  // And the next save after the restart wins.
  struct calibration later = calibration_variant(CALIBRATION_STEPS_PER_MM_X100_MIN + 1, 29, CALIBRATION_SENSOR_MV_PER_MM_MAX);
  storage_save(&later);
  drain_storage();
  storage_init();
  CHECK(same_calibration(calibration_current(), &later));
  CHECK_EQ(calibration_source(), CALIBRATION_SOURCE_STORED);
}

// A save is durable once its first copy is written: from the middle of the save on, a restart loads the new record,
// and keeps doing so. The final save gets sequence number saves_before + 1 (16 bits: 65535 + 1 wraps to 0).
static void storage_save_durable_from_midway(int saves_before) {
  storage_init();
  struct calibration previous = calibration_variant(STEPS_PER_MM * 100, 0, SENSORS_DEPTH_SENSOR_MV_PER_MM);
  for (int32_t save = 1; save <= saves_before; save++) {
    previous = calibration_variant(STEPS_PER_MM * 100, (int16_t)(save % 61 - 30), SENSORS_DEPTH_SENSOR_MV_PER_MM);
    storage_save(&previous);
    drain_storage();
  }
  storage_init();
  REQUIRE(same_calibration(calibration_current(), &previous));
  struct calibration last = calibration_variant(CALIBRATION_STEPS_PER_MM_X100_MAX, 5, CALIBRATION_SENSOR_MV_PER_MM_MIN);
  storage_save(&last);
  int passes = 0, first_new = -1;
  while (storage_busy()) {
    storage_poll();
    passes++;
    storage_init();  // a restart here (the save's pending bytes stay queued, as if it had not happened)
    uint8_t is_new = same_calibration(calibration_current(), &last);
    if (!is_new) CHECK(same_calibration(calibration_current(), &previous));
    if (is_new && first_new < 0) first_new = passes;
    if (!is_new && first_new >= 0) fail_at(__FILE__, __LINE__, "pass %d went back to the previous record", passes);
  }
  CHECK(first_new > 0);
  CHECK(first_new <= passes / 2);
  CHECK_EQ(storage_sequence(), (uint16_t)(saves_before + 1));
}

static void storage_blank_is_default(int unused) {
  (void)unused;
  storage_init();
  CHECK_EQ(calibration_source(), CALIBRATION_SOURCE_DEFAULT);
  CHECK_EQ(storage_sequence(), 0);
  struct calibration nominal;
  calibration_default(&nominal);
  CHECK(same_calibration(calibration_current(), &nominal));
}

// One copy corrupted after both were written: the other one is used.
static void storage_one_copy_corrupt(int slot) {
  struct calibration stored;
  calibration_default(&stored);
  stored.depth.zero_offset_um = 11;
  storage_init();
  storage_save(&stored);
  drain_storage();
  fake.eeprom[slot * 32 + 5] ^= 0x40;
  storage_init();
  CHECK_EQ(calibration_source(), CALIBRATION_SOURCE_STORED);
  CHECK(same_calibration(calibration_current(), &stored));
}

// ---- the link and the dispatcher ----

static void replay_not_executed(int unused) {
  (void)unused;
  pen_idle();
  msg_move_to_t move = { MSG_MOVE_TO, 1200 };
  uint8_t seq = fake_host_seq;
  uint8_t first[FRAME_MAX_PAYLOAD], seq_byte = 0;
  int first_length = fake_host_frame((uint8_t)(FRAME_KIND_DATA | seq), &move, sizeof move, &seq_byte, first);
  REQUIRE(first_length == (int)sizeof(msg_ok_t));
  CHECK_EQ(fake.moves, 1);
  for (int again = 0; again < 3; again++) {
    uint8_t second[FRAME_MAX_PAYLOAD], second_seq = 0;
    int second_length = fake_host_frame((uint8_t)(FRAME_KIND_DATA | seq), &move, sizeof move, &second_seq, second);
    CHECK_EQ(second_length, first_length);
    CHECK_EQ(second_seq, seq_byte);
    CHECK(memcmp(first, second, (size_t)first_length) == 0);
  }
  CHECK_EQ(fake.moves, 1);
}

static void protocol_version_required(int unused) {
  (void)unused;
  fake_pen_boot();
  REQUIRE(fake_host_sync());
  send_id(MSG_HOME);
  EXPECT_ERROR(MSG_HOME, ERROR_CODE_PROTOCOL_MISMATCH, PROTOCOL_VERSION);
  send_identify(PROTOCOL_VERSION + 1);
  REQUIRE(reply_length == (int)sizeof(msg_identify_reply_t));
  send_id(MSG_HOME);
  EXPECT_ERROR(MSG_HOME, ERROR_CODE_PROTOCOL_MISMATCH, PROTOCOL_VERSION);
  CHECK_EQ(fake.homings, 0);
  send_identify(PROTOCOL_VERSION);
  send_id(MSG_HOME);
  EXPECT_OK(MSG_HOME);
}

struct host_message { uint8_t id, length, allowed_in_fault, role; };
#define HOST_MESSAGE(name, length, allowed, role) { MSG_##name, length, allowed, role },
static const struct host_message host_messages[] = { HOST_MESSAGES(HOST_MESSAGE) };
#define HOST_MESSAGE_COUNT (int)(sizeof host_messages / sizeof host_messages[0])

// The FAULT whitelist: each message either passes the door or is refused with the fault as detail.
static void fault_whitelist(int index) {
  const struct host_message *message = &host_messages[index];
  pen_fault_supply();
  uint8_t request[FRAME_MAX_PAYLOAD] = { message->id };
  if (message->id == MSG_IDENTIFY) {
    uint16_t version = PROTOCOL_VERSION;
    memcpy(request + 1, &version, sizeof version);
  }
  send_bytes(request, message->length);
  msg_error_t error = { 0, 0, 0, 0 };
  if (reply_length == (int)sizeof error) memcpy(&error, reply, sizeof error);
  uint8_t refused = error.msg_id == MSG_ERROR && error.code == ERROR_CODE_NOT_ALLOWED_IN_FAULT;
  CHECK_EQ(refused, !message->allowed_in_fault);
  if (refused) CHECK_EQ(error.detail, FAULT_SUPPLY_OUT_OF_RANGE);
}

static void bad_length_and_unknown(int unused) {
  (void)unused;
  pen_idle();
  uint8_t short_move[2] = { MSG_MOVE_TO, 0x10 };
  send_bytes(short_move, sizeof short_move);
  EXPECT_ERROR(MSG_MOVE_TO, ERROR_CODE_BAD_LENGTH, sizeof(msg_move_to_t));
  CHECK_EQ(fake.moves, 0);
  send_id(0x60);
  EXPECT_ERROR(0x60, ERROR_CODE_UNKNOWN_MESSAGE, 0x60);
  send_id(MSG_OK);
  EXPECT_ERROR(MSG_OK, ERROR_CODE_NOT_HOST_MESSAGE, MSG_OK);
}

// A STOP byte inside a frame stops at once, and the frame around it still arrives.
static void stop_byte_inside_frame(int unused) {
  (void)unused;
  pen_running();
  uint8_t heartbeat = MSG_HEARTBEAT, wire[LINK_WIRE_MAX_BYTES + 1];
  uint8_t length = link_encode(wire, (uint8_t)(FRAME_KIND_DATA | fake_host_seq), &heartbeat, 1);
  memmove(wire + 3, wire + 2, (size_t)length - 2);
  wire[2] = FRAME_STOP;
  uint32_t sent_before = fake.tx_length;
  fake_pen_receive(wire, 3);
  CHECK(!fake.motor_running);
  fake_pen_receive(wire + 3, (size_t)length - 2);
  CHECK(fake.tx_length > sent_before);  // the heartbeat was answered
  fake_host_seq = (uint8_t)((fake_host_seq + 1) & 0x0F);
  fake_pen_loop_pass();
  EXPECT_STATE(PEN_STATE_IDLE);
  CHECK(fake.retracts >= 1);
}

// The depth sensor and the step count must agree; short disagreements are debounced.
static void depth_mismatch_debounced(int unused) {
  (void)unused;
  pen_armed();
  fake.depth_sensor_follows = 0;
  fake.depth_mv = fake_depth_mv_for_steps(fake.position + calibration_steps_for_um(100));
  fake_pen_advance_ms(DEPTH_AXIS_MISMATCH_DEBOUNCE_MS - 1);
  fake.depth_sensor_follows = 1;
  fake_pen_advance_ms(DEPTH_AXIS_MISMATCH_DEBOUNCE_MS);
  send_id(MSG_HEARTBEAT);
  EXPECT_STATE(PEN_STATE_ARMED);
}

// ---- roles: provisioning and the challenge–response, through the wire ----

static const uint8_t other_keys[AUTH_KEYED_ROLES][AUTH_KEY_BYTES] = {
  { 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18, 0x29, 0x3a, 0x4b, 0x5c, 0x6d, 0x7e, 0x8f, 0x90,
    0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18, 0x29, 0x3a, 0x4b, 0x5c, 0x6d, 0x7e, 0x8f, 0x91 },
  { 0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0,
    0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf1 },
  { 0x13, 0x37, 0xc0, 0xde, 0x13, 0x37, 0xc0, 0xde, 0x13, 0x37, 0xc0, 0xde, 0x13, 0x37, 0xc0, 0xde,
    0x13, 0x37, 0xc0, 0xde, 0x13, 0x37, 0xc0, 0xde, 0x13, 0x37, 0xc0, 0xde, 0x13, 0x37, 0xc0, 0xdf },
};

static void stage_keys(const uint8_t keys[AUTH_KEYED_ROLES][AUTH_KEY_BYTES], uint8_t roles) {
  for (uint8_t role = ROLE_REPROCESSING; role <= ROLE_ENGINEER; role++) {
    if (!(roles & (1 << role))) continue;
    msg_provision_key_t message = { MSG_PROVISION_KEY, role, { 0 } };
    memcpy(message.key, keys[role - ROLE_REPROCESSING], AUTH_KEY_BYTES);
    send_bytes(&message, sizeof message);
    REQUIRE_OK(MSG_PROVISION_KEY);
  }
}

static void send_provision(const char *serial) {
  msg_provision_t message = { MSG_PROVISION, { 0 } };
  memcpy(message.serial, serial, strnlen(serial, AUTH_SERIAL_BYTES));
  send_bytes(&message, sizeof message);
}

static msg_identify_reply_t identify_now(void) {
  msg_identify_reply_t identity;
  send_identify(PROTOCOL_VERSION);
  REQUIRE(reply_length == (int)sizeof identity && reply[0] == MSG_IDENTIFY_REPLY);
  memcpy(&identity, reply, sizeof identity);
  return identity;
}

static void expect_serial(const char *file, int line, const char *expected) {
  msg_identify_reply_t identity = identify_now();
  char field[AUTH_SERIAL_BYTES] = { 0 };
  memcpy(field, expected, strnlen(expected, AUTH_SERIAL_BYTES));
  if (memcmp(identity.serial, field, sizeof field) != 0) {
    fail_at(file, line, "identify reports serial \"%.16s\", expected \"%.16s\"", identity.serial, field);
  }
}
#define EXPECT_SERIAL(expected) expect_serial(__FILE__, __LINE__, expected)

// Requests a challenge for role and command and answers it with key, serial and answered_command (which may differ,
// to forge); the reply to the answer is left in reply.
static void answer_with(const uint8_t *key, const char *serial, uint8_t role, uint8_t command_id, uint8_t answered_command) {
  msg_challenge_t challenge = challenge_for(role, command_id);
  uint8_t mac[AUTH_MAC_BYTES];
  answer_for(key, challenge.nonce, serial, answered_command, mac);
  send_answer(mac);
}

static void unprovisioned_refuses_service(int unused) {
  (void)unused;
  start_unprovisioned = 1;
  pen_start();
  EXPECT_SERIAL("");
  send_depth_calibration(STEPS_PER_MM * 100, 0);
  EXPECT_ERROR(MSG_SET_DEPTH_CALIBRATION, ERROR_CODE_NOT_PROVISIONED, 0);
  send_sensor_calibration(SENSORS_DEPTH_SENSOR_ZERO_MV, SENSORS_DEPTH_SENSOR_MV_PER_MM);
  EXPECT_ERROR(MSG_SET_SENSOR_CALIBRATION, ERROR_CODE_NOT_PROVISIONED, 0);
  drain_writes();
  send_request_challenge(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  EXPECT_ERROR(MSG_REQUEST_CHALLENGE, ERROR_CODE_NOT_PROVISIONED, 0);
  msg_auth_status_t status = auth_status_now();
  CHECK_EQ(status.provisioned, 0);
  CHECK_EQ(status.refusals, 3);
  CHECK_EQ(status.wrong_answers, 0);
  CHECK_EQ(status.boot_count, 1);
  CHECK_EQ(get_calibration().stored_count, 0);
}

// Provisioned once freely; again only with the engineer's grant, and then the new keys hold and the old ones do not.
static void provision_once(int unused) {
  (void)unused;
  start_unprovisioned = 1;
  pen_start();
  drain_writes();
  send_provision("PN-0001");
  EXPECT_ERROR(MSG_PROVISION, ERROR_CODE_PROVISION_INCOMPLETE, AUTH_KEYED_ROLE_BITS);
  stage_keys(test_keys, 1 << ROLE_TECHNICIAN);
  send_provision("PN-0001");
  EXPECT_ERROR(MSG_PROVISION, ERROR_CODE_PROVISION_INCOMPLETE, (1 << ROLE_REPROCESSING) | (1 << ROLE_ENGINEER));
  stage_keys(test_keys, AUTH_KEYED_ROLE_BITS);
  CHECK_EQ(auth_status_now().staged_keys, AUTH_KEYED_ROLE_BITS);
  send_provision(TEST_SERIAL);
  EXPECT_OK(MSG_PROVISION);
  EXPECT_SERIAL(TEST_SERIAL);
  msg_auth_status_t status = auth_status_now();
  CHECK_EQ(status.provisioned, 1);
  CHECK_EQ(status.staged_keys, 0);
  CHECK_EQ(status.write_pending, 1);
  // No challenge until the record is written.
  send_request_challenge(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  EXPECT_ERROR(MSG_REQUEST_CHALLENGE, ERROR_CODE_EEPROM_BUSY, 0);
  grant(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  send_depth_calibration(STEPS_PER_MM * 100 + 1, 0);
  EXPECT_OK(MSG_SET_DEPTH_CALIBRATION);
  drain_writes();
  // Once provisioned: no second provisioning without a grant, nor with another role's.
  stage_keys(other_keys, AUTH_KEYED_ROLE_BITS);
  send_provision("PN-EVIL");
  EXPECT_ERROR(MSG_PROVISION, ERROR_CODE_ROLE_REQUIRED, ROLE_ENGINEER);
  send_request_challenge(ROLE_TECHNICIAN, MSG_PROVISION);
  EXPECT_ERROR(MSG_REQUEST_CHALLENGE, ERROR_CODE_ROLE_REQUIRED, ROLE_ENGINEER);
  answer_with(test_keys[ROLE_TECHNICIAN - ROLE_REPROCESSING], TEST_SERIAL, ROLE_ENGINEER, MSG_PROVISION, MSG_PROVISION);
  EXPECT_ERROR(MSG_ANSWER_CHALLENGE, ERROR_CODE_WRONG_ANSWER, AUTH_LOCKOUT_BASE_MS);
  EXPECT_SERIAL(TEST_SERIAL);
  fake_pen_advance_ms(AUTH_LOCKOUT_BASE_MS);
  // With the engineer's grant: the staged keys (staging survives the challenge) and the new serial are stored.
  grant(ROLE_ENGINEER, MSG_PROVISION);
  send_provision("PN-0002");
  EXPECT_OK(MSG_PROVISION);
  drain_writes();
  EXPECT_SERIAL("PN-0002");
  answer_with(test_keys[ROLE_TECHNICIAN - ROLE_REPROCESSING], "PN-0002", ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION, MSG_SET_DEPTH_CALIBRATION);
  EXPECT_ERROR(MSG_ANSWER_CHALLENGE, ERROR_CODE_WRONG_ANSWER, AUTH_LOCKOUT_BASE_MS);
  fake_pen_advance_ms(AUTH_LOCKOUT_BASE_MS);
  answer_with(other_keys[ROLE_TECHNICIAN - ROLE_REPROCESSING], "PN-0002", ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION, MSG_SET_DEPTH_CALIBRATION);
  EXPECT_OK(MSG_ANSWER_CHALLENGE);
  // And after a restart the pen is still PN-0002 with the new keys.
  auth_init();
  drain_writes();
  EXPECT_SERIAL("PN-0002");
  CHECK_EQ(auth_status_now().provisioned, 1);
}

// The serial's format, at and beyond its bounds: detail is the first offending character.
static const struct { char serial[AUTH_SERIAL_BYTES]; int8_t fault; } serials[] = {
  { "", 0 },
  { " PN", 0 },
  { "PN 1", 2 },
  { "PN\x7f", 2 },
  { "PN\x1f", 2 },
  { "\x80PN", 0 },
  { { 'P', 'N', 0, '1' }, 3 },
  { { 'P', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'X' }, 15 },
  { "!", -1 },
  { "~", -1 },
  { { '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'A', 'B', 'C', 'D', 'E', '~' }, -1 },  // 16: no NUL at all
  { { '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'A', 'B', 'C', 'D', 'E', ' ' }, 15 },
};
#define SERIAL_CASES (int)(sizeof serials / sizeof serials[0])

static void provision_serial_format(int index) {
  start_unprovisioned = 1;
  pen_start();
  drain_writes();
  stage_keys(test_keys, AUTH_KEYED_ROLE_BITS);
  msg_provision_t message = { MSG_PROVISION, { 0 } };
  memcpy(message.serial, serials[index].serial, AUTH_SERIAL_BYTES);
  send_bytes(&message, sizeof message);
  if (serials[index].fault < 0) EXPECT_OK(MSG_PROVISION);
  else EXPECT_ERROR(MSG_PROVISION, ERROR_CODE_OUT_OF_RANGE, serials[index].fault);
  msg_identify_reply_t identity = identify_now();
  if (serials[index].fault < 0) {
    CHECK(memcmp(identity.serial, serials[index].serial, AUTH_SERIAL_BYTES) == 0);
  } else {
    CHECK_EQ(identity.serial[0], 0);
    CHECK_EQ(auth_status_now().provisioned, 0);
  }
}

static void grant_used_once(int unused) {
  (void)unused;
  pen_start();
  grant(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  send_depth_calibration(STEPS_PER_MM * 100 + 3, 0);
  EXPECT_OK(MSG_SET_DEPTH_CALIBRATION);
  drain_writes();
  send_depth_calibration(STEPS_PER_MM * 100 + 4, 0);
  EXPECT_ERROR(MSG_SET_DEPTH_CALIBRATION, ERROR_CODE_ROLE_REQUIRED, ROLE_TECHNICIAN);
  // A grant is spent by its command whatever the command then does: refused out of range, it is still gone.
  grant(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  send_depth_calibration(0, 0);
  EXPECT_ERROR(MSG_SET_DEPTH_CALIBRATION, ERROR_CODE_OUT_OF_RANGE, 0);
  send_depth_calibration(STEPS_PER_MM * 100 + 4, 0);
  EXPECT_ERROR(MSG_SET_DEPTH_CALIBRATION, ERROR_CODE_ROLE_REQUIRED, ROLE_TECHNICIAN);
  msg_calibration_t calibration = get_calibration();
  CHECK_EQ(calibration.stored_count, 1);
  CHECK_EQ(calibration.steps_per_mm_x100, STEPS_PER_MM * 100 + 3);
}

// Between the grant and its command, any other frame ends the grant.
enum { BETWEEN_HEARTBEAT, BETWEEN_STATUS, BETWEEN_AUTH_STATUS, BETWEEN_IDENTIFY, BETWEEN_CHALLENGE, BETWEEN_BAD_LENGTH,
       BETWEEN_UNKNOWN, BETWEEN_ANSWER, BETWEEN_OTHER_COMMAND, BETWEEN_STOP, BETWEEN_COUNT };

static void grant_ended_by_other_frame(int between) {
  pen_start();
  grant(ROLE_ENGINEER, MSG_SET_SENSOR_CALIBRATION);
  uint8_t zeros[AUTH_MAC_BYTES] = { 0 };
  switch (between) {
    case BETWEEN_HEARTBEAT: send_id(MSG_HEARTBEAT); break;
    case BETWEEN_STATUS: send_id(MSG_GET_STATUS); break;
    case BETWEEN_AUTH_STATUS: send_id(MSG_GET_AUTH_STATUS); break;
    case BETWEEN_IDENTIFY: send_identify(PROTOCOL_VERSION); break;
    case BETWEEN_CHALLENGE: send_request_challenge(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION); break;
    case BETWEEN_BAD_LENGTH: {
      uint8_t short_frame[2] = { MSG_SET_SENSOR_CALIBRATION, 0x01 };
      send_bytes(short_frame, sizeof short_frame);
      EXPECT_ERROR(MSG_SET_SENSOR_CALIBRATION, ERROR_CODE_BAD_LENGTH, sizeof(msg_set_sensor_calibration_t));
      break;
    }
    case BETWEEN_UNKNOWN: send_id(0x60); break;
    case BETWEEN_ANSWER: send_answer(zeros); EXPECT_ERROR(MSG_ANSWER_CHALLENGE, ERROR_CODE_NO_CHALLENGE, 0); break;
    case BETWEEN_OTHER_COMMAND: send_depth_calibration(STEPS_PER_MM * 100, 0); break;
    default: send_id(MSG_STOP); break;
  }
  send_sensor_calibration(SENSORS_DEPTH_SENSOR_ZERO_MV + 2, SENSORS_DEPTH_SENSOR_MV_PER_MM);
  EXPECT_ERROR(MSG_SET_SENSOR_CALIBRATION, ERROR_CODE_ROLE_REQUIRED, ROLE_ENGINEER);
  CHECK_EQ(get_calibration().stored_count, 0);
}

// A grant is for its command only; a challenge names its command, and an answer for another command is wrong.
static void grant_for_its_command_only(int unused) {
  (void)unused;
  pen_start();
  grant(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  send_sensor_calibration(SENSORS_DEPTH_SENSOR_ZERO_MV + 2, SENSORS_DEPTH_SENSOR_MV_PER_MM);
  EXPECT_ERROR(MSG_SET_SENSOR_CALIBRATION, ERROR_CODE_ROLE_REQUIRED, ROLE_ENGINEER);
  send_request_challenge(ROLE_TECHNICIAN, MSG_SET_SENSOR_CALIBRATION);
  EXPECT_ERROR(MSG_REQUEST_CHALLENGE, ERROR_CODE_ROLE_REQUIRED, ROLE_ENGINEER);
  send_request_challenge(ROLE_ENGINEER, MSG_SET_DEPTH_CALIBRATION);
  EXPECT_ERROR(MSG_REQUEST_CHALLENGE, ERROR_CODE_ROLE_REQUIRED, ROLE_TECHNICIAN);
  // The engineer's key on a challenge for set_sensor_calibration, answered as if for set_depth_calibration.
  answer_with(test_keys[ROLE_ENGINEER - ROLE_REPROCESSING], TEST_SERIAL, ROLE_ENGINEER, MSG_SET_SENSOR_CALIBRATION, MSG_SET_DEPTH_CALIBRATION);
  EXPECT_ERROR(MSG_ANSWER_CHALLENGE, ERROR_CODE_WRONG_ANSWER, AUTH_LOCKOUT_BASE_MS);
  // The answer of another pen (another serial), and of another role's key.
  fake_pen_advance_ms(AUTH_LOCKOUT_BASE_MS);
  answer_with(test_keys[ROLE_TECHNICIAN - ROLE_REPROCESSING], "SIM-LOGIC-0002", ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION, MSG_SET_DEPTH_CALIBRATION);
  EXPECT_ERROR(MSG_ANSWER_CHALLENGE, ERROR_CODE_WRONG_ANSWER, 2 * AUTH_LOCKOUT_BASE_MS);
  fake_pen_advance_ms(2 * AUTH_LOCKOUT_BASE_MS);
  answer_with(test_keys[ROLE_ENGINEER - ROLE_REPROCESSING], TEST_SERIAL, ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION, MSG_SET_DEPTH_CALIBRATION);
  EXPECT_ERROR(MSG_ANSWER_CHALLENGE, ERROR_CODE_WRONG_ANSWER, 4 * AUTH_LOCKOUT_BASE_MS);
  send_depth_calibration(STEPS_PER_MM * 100 + 1, 0);
  EXPECT_ERROR(MSG_SET_DEPTH_CALIBRATION, ERROR_CODE_ROLE_REQUIRED, ROLE_TECHNICIAN);
  CHECK_EQ(get_calibration().stored_count, 0);
}

// Wrong answers lock challenges out, doubling up to the longest; a right answer starts the count over.
static void lockout_after_wrong_answers(int unused) {
  (void)unused;
  pen_start();
  uint8_t zeros[AUTH_MAC_BYTES] = { 0 };
  uint32_t expected_ms = AUTH_LOCKOUT_BASE_MS;
  for (int wrong = 1; wrong <= 9; wrong++) {
    challenge_for(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
    send_answer(zeros);
    EXPECT_ERROR(MSG_ANSWER_CHALLENGE, ERROR_CODE_WRONG_ANSWER, expected_ms);
    send_request_challenge(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
    EXPECT_ERROR(MSG_REQUEST_CHALLENGE, ERROR_CODE_LOCKED_OUT, expected_ms);
    fake_pen_advance_ms(expected_ms - 1);
    send_request_challenge(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
    EXPECT_ERROR(MSG_REQUEST_CHALLENGE, ERROR_CODE_LOCKED_OUT, 1);
    fake_pen_advance_ms(1);
    expected_ms = expected_ms * 2 > AUTH_LOCKOUT_MAX_MS ? AUTH_LOCKOUT_MAX_MS : expected_ms * 2;
  }
  msg_auth_status_t status = auth_status_now();
  CHECK_EQ(status.consecutive_failures, 9);
  CHECK_EQ(status.wrong_answers, 9);
  CHECK_EQ(status.refusals, 9 * 3);  // each wrong answer and the two challenges refused after it
  CHECK_EQ(status.lockout_ms, 0);
  grant(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  status = auth_status_now();
  CHECK_EQ(status.consecutive_failures, 0);
  CHECK_EQ(status.wrong_answers, 9);
  challenge_for(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  send_answer(zeros);
  EXPECT_ERROR(MSG_ANSWER_CHALLENGE, ERROR_CODE_WRONG_ANSWER, AUTH_LOCKOUT_BASE_MS);
}

// An answer counts once: answering again (the same bytes, a new frame) finds no challenge, right or wrong.
static void answer_not_replayed(int unused) {
  (void)unused;
  pen_start();
  msg_challenge_t challenge = challenge_for(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  uint8_t mac[AUTH_MAC_BYTES];
  answer_for(test_keys[ROLE_TECHNICIAN - ROLE_REPROCESSING], challenge.nonce, TEST_SERIAL, MSG_SET_DEPTH_CALIBRATION, mac);
  send_answer(mac);
  EXPECT_OK(MSG_ANSWER_CHALLENGE);
  send_answer(mac);
  EXPECT_ERROR(MSG_ANSWER_CHALLENGE, ERROR_CODE_NO_CHALLENGE, 0);
  send_depth_calibration(STEPS_PER_MM * 100 + 1, 0);
  EXPECT_ERROR(MSG_SET_DEPTH_CALIBRATION, ERROR_CODE_ROLE_REQUIRED, ROLE_TECHNICIAN);
  // A new challenge carries a new nonce: the old answer is wrong for it.
  msg_challenge_t next = challenge_for(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  CHECK(memcmp(next.nonce, challenge.nonce, AUTH_NONCE_BYTES) != 0);
  send_answer(mac);
  EXPECT_ERROR(MSG_ANSWER_CHALLENGE, ERROR_CODE_WRONG_ANSWER, AUTH_LOCKOUT_BASE_MS);
  send_answer(mac);
  EXPECT_ERROR(MSG_ANSWER_CHALLENGE, ERROR_CODE_NO_CHALLENGE, 0);
  CHECK_EQ(auth_status_now().consecutive_failures, 1);
  CHECK_EQ(get_calibration().stored_count, 0);
}

// A challenge waits for the very next frame, and for AUTH_CHALLENGE_TIMEOUT_MS at most; a grant likewise.
static void challenge_and_grant_expire(int late) {
  pen_start();
  uint32_t wait_ms = late ? AUTH_CHALLENGE_TIMEOUT_MS : AUTH_CHALLENGE_TIMEOUT_MS - 1;
  msg_challenge_t challenge = challenge_for(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  uint8_t mac[AUTH_MAC_BYTES];
  answer_for(test_keys[ROLE_TECHNICIAN - ROLE_REPROCESSING], challenge.nonce, TEST_SERIAL, MSG_SET_DEPTH_CALIBRATION, mac);
  fake_pen_advance_ms(wait_ms);
  send_answer(mac);
  if (late) {
    EXPECT_ERROR(MSG_ANSWER_CHALLENGE, ERROR_CODE_NO_CHALLENGE, 0);
    grant(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  } else {
    EXPECT_OK(MSG_ANSWER_CHALLENGE);
  }
  fake_pen_advance_ms(wait_ms);
  send_depth_calibration(STEPS_PER_MM * 100 + 1, 0);
  if (late) EXPECT_ERROR(MSG_SET_DEPTH_CALIBRATION, ERROR_CODE_ROLE_REQUIRED, ROLE_TECHNICIAN);
  else EXPECT_OK(MSG_SET_DEPTH_CALIBRATION);
  // Another frame between the challenge and the answer drops the challenge.
  drain_writes();
  challenge = challenge_for(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  answer_for(test_keys[ROLE_TECHNICIAN - ROLE_REPROCESSING], challenge.nonce, TEST_SERIAL, MSG_SET_DEPTH_CALIBRATION, mac);
  send_id(MSG_HEARTBEAT);
  send_answer(mac);
  EXPECT_ERROR(MSG_ANSWER_CHALLENGE, ERROR_CODE_NO_CHALLENGE, 0);
}

// The wrong answer is in EEPROM before the reply: a restart right after it (the second copy unwritten) keeps the
// lockout, at its full length again.
static void lockout_survives_restart(int unused) {
  (void)unused;
  pen_start();
  uint8_t zeros[AUTH_MAC_BYTES] = { 0 };
  challenge_for(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  uint32_t writes_before = fake.eeprom_writes;
  send_answer(zeros);
  EXPECT_ERROR(MSG_ANSWER_CHALLENGE, ERROR_CODE_WRONG_ANSWER, AUTH_LOCKOUT_BASE_MS);
  CHECK(storage_busy());  // the second copy is still to come
  CHECK(fake.eeprom_writes > writes_before);
  fake_pen_advance_ms(AUTH_LOCKOUT_BASE_MS / 2);
  auth_init();  // the restart: RAM and the queued write lost, the EEPROM as it is
  msg_auth_status_t status;
  auth_status(&status);
  CHECK_EQ(status.consecutive_failures, 1);
  CHECK_EQ(status.wrong_answers, 1);
  CHECK_EQ(status.boot_count, 2);
  CHECK_EQ(status.lockout_ms, AUTH_LOCKOUT_BASE_MS);
  drain_writes();
  send_request_challenge(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  EXPECT_ERROR(MSG_REQUEST_CHALLENGE, ERROR_CODE_LOCKED_OUT, AUTH_LOCKOUT_BASE_MS);
  // A right answer restarted before the counters are next written counts as a wrong one: the safe direction.
  fake_pen_advance_ms(AUTH_LOCKOUT_BASE_MS);
  grant(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  CHECK(!storage_busy());  // the copy saying "wrong" is not followed by a second one
  auth_init();
  auth_status(&status);
  CHECK_EQ(status.consecutive_failures, 2);
  CHECK_EQ(status.lockout_ms, 2 * AUTH_LOCKOUT_BASE_MS);
}

// After a right answer and its command, the count it was written as is undone in EEPROM at once (after the command's
// own write): a restart then finds no wrong answer and no lockout.
static void right_answer_undone_promptly(int unused) {
  (void)unused;
  pen_start();
  drain_writes();
  // A refusal first, written at once: the next write of refusals alone would wait AUTH_COUNTER_WRITE_PERIOD_MS.
  send_depth_calibration(STEPS_PER_MM * 100 + 1, 0);
  EXPECT_ERROR(MSG_SET_DEPTH_CALIBRATION, ERROR_CODE_ROLE_REQUIRED, ROLE_TECHNICIAN);
  fake_pen_advance_ms(1);
  REQUIRE(storage_busy());
  drain_writes();
  grant(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  send_depth_calibration(STEPS_PER_MM * 100 + 1, 0);
  REQUIRE_OK(MSG_SET_DEPTH_CALIBRATION);
  int passes = 0;
  for (; passes < 200 && (storage_busy() || auth_status_now().write_pending); passes++) fake_pen_advance_ms(1);
  fake_pen_advance_ms(1);
  drain_writes();
  CHECK(passes < 100);
  auth_init();
  msg_auth_status_t status;
  auth_status(&status);
  CHECK_EQ(status.consecutive_failures, 0);
  CHECK_EQ(status.wrong_answers, 0);
  CHECK_EQ(status.refusals, 1);
  CHECK_EQ(status.lockout_ms, 0);
  CHECK_EQ(get_calibration().stored_count, 1);
}

// The EEPROM does not take the write: nothing is compared, no grant even for the right answer, and the lockout holds.
static void answer_refused_when_eeprom_stuck(int unused) {
  (void)unused;
  pen_start();
  msg_challenge_t challenge = challenge_for(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  uint8_t mac[AUTH_MAC_BYTES];
  answer_for(test_keys[ROLE_TECHNICIAN - ROLE_REPROCESSING], challenge.nonce, TEST_SERIAL, MSG_SET_DEPTH_CALIBRATION, mac);
  fake.eeprom_busy = 1;
  send_answer(mac);
  EXPECT_ERROR(MSG_ANSWER_CHALLENGE, ERROR_CODE_EEPROM_BUSY, AUTH_LOCKOUT_BASE_MS);
  fake.eeprom_busy = 0;
  send_depth_calibration(STEPS_PER_MM * 100 + 1, 0);
  EXPECT_ERROR(MSG_SET_DEPTH_CALIBRATION, ERROR_CODE_ROLE_REQUIRED, ROLE_TECHNICIAN);
}

// Nonces never repeat: within a boot, across restarts, and across a restart during the boot count's own write.
#define NONCE_BOOTS 12
static void nonce_never_repeats(int unused) {
  (void)unused;
  pen_start();
  static uint8_t seen[NONCE_BOOTS * 3][AUTH_NONCE_BYTES];
  int count = 0;
  uint32_t last_boot = 0;
  for (int boot = 0; boot < NONCE_BOOTS; boot++) {
    if (boot > 0) {
      // A restart cut short (boot - 1) bytes into the boot count's write, then a clean one.
      for (int pass = 0; pass < boot - 1 && storage_busy(); pass++) storage_poll();
      auth_init();
    }
    for (int i = 0; i < 3; i++) {
      msg_challenge_t challenge = challenge_for(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
      for (int j = 0; j < count; j++) CHECK(memcmp(seen[j], challenge.nonce, AUTH_NONCE_BYTES) != 0);
      memcpy(seen[count++], challenge.nonce, AUTH_NONCE_BYTES);
      uint32_t boot_count, issued;
      memcpy(&boot_count, challenge.nonce, 4);
      memcpy(&issued, challenge.nonce + 4, 4);
      CHECK(boot_count > last_boot || (boot_count == last_boot && i > 0));
      CHECK_EQ(issued, i + 1);
      last_boot = boot_count;
    }
    auth_init();  // a restart with the boot count durable
    drain_writes();
  }
}

// Counters at their extremes saturate; the longest lockout holds.
static void counters_saturate(int unused) {
  (void)unused;
  struct auth_counters extreme = { UINT32_MAX - 1, UINT16_MAX, UINT16_MAX, UINT8_MAX };
  storage_save_record(STORAGE_AUTH_COUNTERS, &extreme);
  while (storage_busy()) storage_poll();
  pen_start_at_once();
  drain_writes();
  send_request_challenge(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  EXPECT_ERROR(MSG_REQUEST_CHALLENGE, ERROR_CODE_LOCKED_OUT, AUTH_LOCKOUT_MAX_MS);
  fake_pen_advance_ms(AUTH_LOCKOUT_MAX_MS);
  uint8_t zeros[AUTH_MAC_BYTES] = { 0 };
  msg_challenge_t challenge = challenge_for(ROLE_TECHNICIAN, MSG_SET_DEPTH_CALIBRATION);
  uint32_t boot_count;
  memcpy(&boot_count, challenge.nonce, 4);
  CHECK_EQ(boot_count, UINT32_MAX);
  send_answer(zeros);
  EXPECT_ERROR(MSG_ANSWER_CHALLENGE, ERROR_CODE_WRONG_ANSWER, AUTH_LOCKOUT_MAX_MS);
  msg_auth_status_t status = auth_status_now();
  CHECK_EQ(status.wrong_answers, UINT16_MAX);
  CHECK_EQ(status.refusals, UINT16_MAX);
  CHECK_EQ(status.consecutive_failures, UINT8_MAX);
  CHECK_EQ(status.boot_count, UINT32_MAX);
}

// Both copies of the counters unreadable: the count goes on above the higher boot count, at the longest lockout.
static void counters_corrupt(int unused) {
  (void)unused;
  struct auth_counters stored = { 700, 3, 9, 0 };
  storage_save_record(STORAGE_AUTH_COUNTERS, &stored);
  while (storage_busy()) storage_poll();
  fake.eeprom[0x040 + 5] ^= 0x01;
  fake.eeprom[0x060 + 5] ^= 0x01;
  pen_start_at_once();
  msg_auth_status_t status = auth_status_now();
  CHECK(status.boot_count > 700);
  CHECK_EQ(status.lockout_ms, AUTH_LOCKOUT_MAX_MS);
}

// Refusals are counted in RAM at once and written at most every AUTH_COUNTER_WRITE_PERIOD_MS, so a flood of them does
// not wear the EEPROM out; they survive a restart once written.
static void refusals_written_lazily(int unused) {
  (void)unused;
  pen_start();
  drain_writes();
  uint32_t writes_before = fake.eeprom_writes;
  for (int i = 0; i < 100; i++) {
    send_depth_calibration(STEPS_PER_MM * 100, 0);
    EXPECT_ERROR(MSG_SET_DEPTH_CALIBRATION, ERROR_CODE_ROLE_REQUIRED, ROLE_TECHNICIAN);
    fake_pen_advance_ms(10);
  }
  CHECK_EQ(auth_status_now().refusals, 100);
  fake_pen_advance_ms(AUTH_COUNTER_WRITE_PERIOD_MS);
  CHECK(!storage_busy());
  uint32_t writes = fake.eeprom_writes - writes_before;
  CHECK(writes > 0);
  CHECK(writes <= 2 * 8);  // a write or two of the few bytes that changed, not a hundred
  auth_init();
  msg_auth_status_t status;
  auth_status(&status);
  CHECK_EQ(status.refusals, 100);
}

// Every new frame at each wrong length, and every field at and beyond its bounds.
static const struct { uint8_t id, length; } auth_messages[] = {
  { MSG_REQUEST_CHALLENGE, sizeof(msg_request_challenge_t) }, { MSG_ANSWER_CHALLENGE, sizeof(msg_answer_challenge_t) },
  { MSG_PROVISION_KEY, sizeof(msg_provision_key_t) }, { MSG_PROVISION, sizeof(msg_provision_t) },
  { MSG_GET_AUTH_STATUS, sizeof(msg_get_auth_status_t) },
};

static void auth_frame_lengths(int index) {
  pen_start();
  drain_writes();
  uint8_t id = auth_messages[index].id, expected = auth_messages[index].length;
  uint8_t request[FRAME_MAX_PAYLOAD];
  memset(request, 0x5A, sizeof request);
  request[0] = id;
  for (uint8_t length = 1; length <= FRAME_MAX_PAYLOAD; length++) {
    if (length == expected) continue;
    send_bytes(request, length);
    EXPECT_ERROR(id, ERROR_CODE_BAD_LENGTH, expected);
  }
  msg_auth_status_t status = auth_status_now();
  CHECK_EQ(status.wrong_answers, 0);
  CHECK_EQ(status.staged_keys, 0);
  CHECK_EQ(status.consecutive_failures, 0);
}

static void auth_field_bounds(int unused) {
  (void)unused;
  pen_start();
  drain_writes();
  static const uint8_t bad_roles[] = { ROLE_OPERATOR, ROLE_ENGINEER + 1, 0x7F, 0x80, 0xFF };
  for (unsigned i = 0; i < sizeof bad_roles; i++) {
    send_request_challenge(bad_roles[i], MSG_SET_DEPTH_CALIBRATION);
    EXPECT_ERROR(MSG_REQUEST_CHALLENGE, ERROR_CODE_OUT_OF_RANGE, bad_roles[i]);
    msg_provision_key_t key = { MSG_PROVISION_KEY, bad_roles[i], { 1 } };
    send_bytes(&key, sizeof key);
    EXPECT_ERROR(MSG_PROVISION_KEY, ERROR_CODE_OUT_OF_RANGE, bad_roles[i]);
  }
  // Commands that need no role (or do not exist, or come from the pen) have no challenge.
  static const uint8_t ungated[] = { 0x00, MSG_IDENTIFY, MSG_HOME, MSG_MOVE_TO, MSG_START_NEEDLE, MSG_REQUEST_CHALLENGE,
                                     MSG_ANSWER_CHALLENGE, MSG_PROVISION_KEY, MSG_GET_AUTH_STATUS, 0x60, 0x7F, MSG_OK,
                                     MSG_CHALLENGE, MSG_ERROR };
  for (unsigned i = 0; i < sizeof ungated; i++) {
    send_request_challenge(ROLE_ENGINEER, ungated[i]);
    EXPECT_ERROR(MSG_REQUEST_CHALLENGE, ERROR_CODE_OUT_OF_RANGE, ungated[i]);
  }
  // Blank keys are refused; the first and last key values that are not are taken.
  msg_provision_key_t key = { MSG_PROVISION_KEY, ROLE_ENGINEER, { 0 } };
  send_bytes(&key, sizeof key);
  EXPECT_ERROR(MSG_PROVISION_KEY, ERROR_CODE_OUT_OF_RANGE, ROLE_ENGINEER);
  memset(key.key, 0xFF, sizeof key.key);
  send_bytes(&key, sizeof key);
  EXPECT_ERROR(MSG_PROVISION_KEY, ERROR_CODE_OUT_OF_RANGE, ROLE_ENGINEER);
  key.key[AUTH_KEY_BYTES - 1] = 0xFE;
  send_bytes(&key, sizeof key);
  EXPECT_OK(MSG_PROVISION_KEY);
  memset(key.key, 0, sizeof key.key);
  key.key[0] = 1;
  key.role = ROLE_REPROCESSING;
  send_bytes(&key, sizeof key);
  EXPECT_OK(MSG_PROVISION_KEY);
  CHECK_EQ(auth_status_now().staged_keys, (1 << ROLE_REPROCESSING) | (1 << ROLE_ENGINEER));
  // Answers of all zeros and all ones are just wrong.
  uint8_t mac[AUTH_MAC_BYTES];
  memset(mac, 0xFF, sizeof mac);
  challenge_for(ROLE_ENGINEER, MSG_SET_SENSOR_CALIBRATION);
  send_answer(mac);
  EXPECT_ERROR(MSG_ANSWER_CHALLENGE, ERROR_CODE_WRONG_ANSWER, AUTH_LOCKOUT_BASE_MS);
}

// A reset at any byte of the identity's write leaves the old identity or the new one, never a mix.
#define IDENTITY_RESET_POINTS (2 * (3 + (int)sizeof(struct auth_identity) + 2) + 2)

static int same_identity(const struct auth_identity *a, const struct auth_identity *b) { return memcmp(a, b, sizeof *a) == 0; }

// arg: bit 0 torn (the byte being written at the reset holds garbage), bit 1 over an existing identity.
static void identity_reset_during_write(int arg) {
  int torn = arg & 1, over_existing = (arg >> 1) & 1;
  struct auth_identity old_identity, new_identity;
  memset(&old_identity, 0, sizeof old_identity);
  memset(&new_identity, 0, sizeof new_identity);
  strncpy(old_identity.serial, "PN-OLD", sizeof old_identity.serial);
  memcpy(old_identity.keys, test_keys, sizeof old_identity.keys);
  memcpy(new_identity.serial, "PN-NEW-0123456789", sizeof new_identity.serial);
  memcpy(new_identity.keys, other_keys, sizeof new_identity.keys);
  for (int writes = 0; writes < IDENTITY_RESET_POINTS; writes++) {
    fake_board_reset();
    struct auth_identity loaded;
    storage_load(STORAGE_IDENTITY, &loaded);  // blank: where the first write goes depends on nothing before
    if (over_existing) {
      storage_save_record(STORAGE_IDENTITY, &old_identity);
      while (storage_busy()) storage_poll();
      REQUIRE(storage_load(STORAGE_IDENTITY, &loaded) & STORAGE_LOADED);
    }
    storage_save_record(STORAGE_IDENTITY, &new_identity);
    uint32_t base = fake.eeprom_writes;
    while (storage_busy() && fake.eeprom_writes - base < (uint32_t)writes) storage_poll();
    if (torn && storage_busy()) {
      fake.eeprom_tear_next = 1;
      uint32_t before = fake.eeprom_writes;
      while (storage_busy() && fake.eeprom_writes == before) storage_poll();
      fake.eeprom_tear_next = 0;
    }
    uint8_t completed = !storage_busy();
    memset(&loaded, 0xA5, sizeof loaded);
    uint8_t found = storage_load(STORAGE_IDENTITY, &loaded);  // the restart
    uint8_t is_new = (found & STORAGE_LOADED) && same_identity(&loaded, &new_identity);
    uint8_t is_old = over_existing ? (found & STORAGE_LOADED) && same_identity(&loaded, &old_identity) : !(found & STORAGE_LOADED);
    if (!is_new && !is_old) fail_at(__FILE__, __LINE__, "after %d writes%s: neither the old identity nor the new one", writes, torn ? " and a torn one" : "");
    if (completed && !is_new) fail_at(__FILE__, __LINE__, "after %d writes the write completed, yet the new identity was not loaded", writes);
  }
}

int main(void) {
  case_setup = fake_board_reset;
  setvbuf(stdout, 0, _IOLBF, 0);
  // The depth window.
  static const int inside[] = { DEPTH_MIN_UM, DEPTH_MAX_UM, 1000 };
  for (unsigned i = 0; i < sizeof inside / sizeof inside[0]; i++) run_case("move_to %d um accepted", move_inside_window_accepted, inside[i]);
  static const int outside[] = { DEPTH_MIN_UM - 1, DEPTH_MAX_UM + 1, 0, 65535 };
  for (unsigned i = 0; i < sizeof outside / sizeof outside[0]; i++) {
    run_case("move_to %d um refused out_of_range", move_outside_window_refused, outside[i]);
    run_case("move_to %d um refused out_of_range while running", move_outside_window_refused_running, outside[i]);
  }
  run_case("move_to refused before homing", move_refused_not_homed, 0);
  run_case("move_to accepted while running", move_while_running_accepted, 0);
  static const char *where[] = { "step position low", "step position high", "target low", "target high", "sensor low", "sensor high" };
  for (int i = 0; i < 6; i++) {
    char name[96];
    snprintf(name, sizeof name, "arm refused depth_outside_window: %s", where[i]);
    run_case(name, arm_refused_outside_window, i);
    snprintf(name, sizeof name, "start_needle refused depth_outside_window: %s", where[i]);
    run_case(name, start_refused_outside_window, i);
  }
  run_case("arm refused at home (0 um)", arm_refused_at_home, 0);
  run_case("arm accepted with the sensor at the band edge (high=%d)", arm_accepted_sensor_at_band_edge, 0);
  run_case("arm accepted with the sensor at the band edge (high=%d)", arm_accepted_sensor_at_band_edge, 1);
  for (int i = 0; i < 4; i++) run_case("window inside the step limit at calibration corner %d", window_at_calibration_corner, i);

  // Every arming refusal.
  run_case("arm refused not_homed", arm_refused_not_homed, 0);
  run_case("arm refused not_allowed_in_state (HOMING)", arm_refused_while_homing, 0);
  run_case("arm refused in FAULT", arm_refused_in_fault, 0);
  run_case("arm refused calibration_invalid", arm_refused_calibration_invalid, 0);
  for (int i = 0; i < TRIP_COUNT; i++) {
    run_case("arm refused interlock_active (interlock %d)", arm_refused_interlock, i);
    run_case("home refused interlock_active (interlock %d)", home_refused_interlock, i);
  }
  for (int i = 0; i < 3; i++) run_case("arm accepted at limit %d", arm_accepted_at_limits, i);
  run_case("arm refused cartridge_missing", arm_refused_cartridge_missing, 0);
  run_case("arm refused cartridge_not_cleared", arm_refused_cartridge_not_cleared, 0);
  run_case("arm refused cartridge_not_cleared after reinsertion", arm_refused_cartridge_reinserted, 0);
  run_case("arm refused heartbeat_stale (never sent)", arm_refused_no_heartbeat_yet, 0);
  run_case("arm after %d ms of host silence", arm_after_silence, HEARTBEAT_TIMEOUT_MS);
  run_case("arm after %d ms of host silence", arm_after_silence, HEARTBEAT_TIMEOUT_MS + 1);
  run_case("arm accepted again (running=%d)", arm_when_armed_or_running, 0);
  run_case("arm accepted again (running=%d)", arm_when_armed_or_running, 1);

  // The parts' ID chips.
  static const char *unfit_names[UNFIT_COUNT] = {
    "cartridge chip absent: cartridge_unreadable", "cartridge used: cartridge_used", "nosecone chip absent: nosecone_unreadable",
    "nosecone never sterilized: nosecone_not_sterilized", "nosecone used since its sterilization: nosecone_not_sterilized",
    "nosecone at its cycle limit: nosecone_at_limit", "nosecone one under its cycle limit: armed",
  };
  for (int i = 0; i < UNFIT_COUNT; i++) {
    char name[128];
    snprintf(name, sizeof name, "arm with %s", unfit_names[i]);
    run_case(name, arm_refused_part, i);
  }
  for (int i = 0; i < (int)(sizeof arm_days / sizeof arm_days[0]); i++) {
    char name[96];
    snprintf(name, sizeof name, "arm on day %u (code %u)", arm_days[i].day, arm_days[i].code);
    run_case(name, arm_on_day, i);
  }
  run_case("clear_cartridge refused for another id or an unreadable chip", clear_cartridge_refused, 0);
  run_case("clear_cartridge refused before the chips are read", clear_cartridge_before_read, 0);
  run_case("the session's first start burns both marks (parts_busy until then)", start_burns_marks, 0);
  run_case("the marks hold for the fitting; refitted, the cartridge is used", marks_hold_for_the_fitting, 0);
  run_case("a failed burn is reported once, then burnt again (copy acknowledged=%d)", mark_failure_reported_once, 0);
  run_case("a failed burn is reported once, then burnt again (copy acknowledged=%d)", mark_failure_reported_once, 1);
  run_case("record_sterilization at the cycle limit: nosecone_at_limit", sterilization_at_limit, 0);
  run_case("record_sterilization one under the cycle limit: burnt", sterilization_at_limit, 1);
  run_case("record_sterilization naming another part: part_mismatch", sterilization_wrong_nosecone, 0);
  run_case("record_sterilization refused while a session holds the nosecone", sterilization_refused_in_session, 0);
  run_case("the first start checks the parts again before burning", start_checks_parts_again, 0);

  // Every fault and its clear rule.
  run_case("fault catalogue matches faults.h", fault_catalogue_matches, 0);
  for (int code = 1; code < FAULT_COUNT; code++) run_case("fault %d latched, refused while its cause persists, cleared by its rule", fault_and_clear, code);
  run_case("clear fault before homing returns to HOMING_REQUIRED", clear_fault_unhomed, 0);
  run_case("clear refused while an interrupt's fault waits", clear_refused_while_flagged, 0);
  run_case("home switch stuck while homing (by the depth sensor: %d)", home_switch_stuck_while_homing, 0);
  run_case("home switch stuck while homing (by the depth sensor: %d)", home_switch_stuck_while_homing, 1);
  run_case("the first cause is reported", first_cause_reported, 0);
  run_case("depth mismatch is debounced", depth_mismatch_debounced, 0);

  // The transition table.
  for (int from = 0; from < 7; from++) {
    for (int t = 0; t < TARGET_COUNT; t++) {
      char name[96];
      snprintf(name, sizeof name, "safety_enter %s -> %u", state_name(from), targets[t]);
      run_case(name, safety_enter_follows_table, from * TARGET_COUNT + t);
    }
  }
  for (int edge = 0; edge < EDGE_COUNT; edge++) run_case("allowed transition %d reached through the wire", transition_reachable, edge);
  for (int state = PEN_STATE_HOMING_REQUIRED; state <= PEN_STATE_RUNNING; state++) run_case("FAULT reached from state %d", fault_from_state, state);

  // The motor-start veto.
  run_case("start_needle vetoed by the e-stop interrupt", start_with_veto, VETO_ESTOP_EDGE);
  run_case("start_needle vetoed by the cartridge interrupt", start_with_veto, VETO_CARTRIDGE_EDGE);
  run_case("start_needle vetoed by the heartbeat tick", start_with_veto, VETO_HEARTBEAT_TICK);
  run_case("start_needle runs with no veto", start_with_veto, VETO_NONE);
  run_case("start_needle refused when the supply left its range since the last pass", start_refused_supply_between_passes, 0);
  static const int speeds[] = { 0, NEEDLE_DRIVE_MIN_STROKES_PER_SECOND - 1, NEEDLE_DRIVE_MAX_STROKES_PER_SECOND + 1, 65535 };
  for (unsigned i = 0; i < 4; i++) run_case("start_needle refused at %d strokes/s", start_refused_speed, speeds[i]);
  run_case("start_needle refused when not armed", start_refused_not_armed, 0);

  // Calibration bounds.
  for (int i = 0; i < VALUES * VALUES; i++) {
    char name[128];
    snprintf(name, sizeof name, "set_depth_calibration steps_per_mm_x100=%lu zero_offset_um=%d", (unsigned long)step_values[i / VALUES], offset_values[i % VALUES]);
    run_case(name, depth_calibration_bounds, i);
    snprintf(name, sizeof name, "set_sensor_calibration zero_mv=%u mv_per_mm=%u", zero_mv_values[i / VALUES], slope_values[i % VALUES]);
    run_case(name, sensor_calibration_bounds, i);
  }
  static const char *refusal_when[] = { "armed", "moving", "writing", "in fault", "running", "homing" };
  for (int i = 0; i < 6; i++) {
    char name[96];
    snprintf(name, sizeof name, "calibration refused %s", refusal_when[i]);
    run_case(name, calibration_refused, i);
  }

  // Storage.
  run_case("blank EEPROM gives the nominal calibration", storage_blank_is_default, 0);
  run_case("a save is durable from midway (after %d saves)", storage_save_durable_from_midway, 1);
  run_case("a save is durable from midway (after %d saves)", storage_save_durable_from_midway, 32767);
  run_case("a save is durable from midway (after %d saves, the sequence wraps)", storage_save_durable_from_midway, 65535);
  run_case("one corrupt copy (slot %d) falls back to the other", storage_one_copy_corrupt, 0);
  run_case("one corrupt copy (slot %d) falls back to the other", storage_one_copy_corrupt, 1);
  static const char *scenarios[] = { "the first save", "a save over a stored record", "a save after a cut-short save" };
  for (int arg = 0; arg < 6 * RESET_POINTS; arg++) {
    char name[128];
    snprintf(name, sizeof name, "reset after %d EEPROM writes of %s%s", arg % RESET_POINTS, scenarios[arg / RESET_POINTS / 2],
             (arg / RESET_POINTS) % 2 ? ", the next write torn" : "");
    run_case(name, reset_during_save, arg);
  }

  // Roles: provisioning and the challenge–response.
  run_case("service commands refused on a pen that is not provisioned", unprovisioned_refuses_service, 0);
  run_case("provisioned once; again only with the engineer's grant", provision_once, 0);
  for (int i = 0; i < SERIAL_CASES; i++) run_case("provision serial format, case %d", provision_serial_format, i);
  run_case("a grant is used by one execution of its command", grant_used_once, 0);
  for (int i = 0; i < BETWEEN_COUNT; i++) run_case("a grant is ended by any other frame (%d)", grant_ended_by_other_frame, i);
  run_case("a grant and an answer are for their command, role and pen only", grant_for_its_command_only, 0);
  run_case("wrong answers lock challenges out, doubling to the longest", lockout_after_wrong_answers, 0);
  run_case("an answer is not replayed", answer_not_replayed, 0);
  run_case("a challenge and a grant expire (late=%d)", challenge_and_grant_expire, 0);
  run_case("a challenge and a grant expire (late=%d)", challenge_and_grant_expire, 1);
  run_case("the lockout survives a restart", lockout_survives_restart, 0);
  run_case("no grant when the EEPROM does not take the wrong-answer count", answer_refused_when_eeprom_stuck, 0);
  run_case("a right answer's count is undone in EEPROM right after its command", right_answer_undone_promptly, 0);
  run_case("a nonce never repeats, across restarts and restarts during the boot count's write", nonce_never_repeats, 0);
  run_case("auth counters saturate at their extremes", counters_saturate, 0);
  run_case("corrupt auth counters: boot count goes on, longest lockout", counters_corrupt, 0);
  run_case("refusals are counted at once and written lazily", refusals_written_lazily, 0);
  for (int i = 0; i < (int)(sizeof auth_messages / sizeof auth_messages[0]); i++) run_case("auth frame %d at every wrong length", auth_frame_lengths, i);
  run_case("auth fields at and beyond their bounds", auth_field_bounds, 0);
  for (int arg = 0; arg < 4; arg++) run_case("identity write reset at every byte (torn, over existing: %d)", identity_reset_during_write, arg);
  run_case("calibration refused after a grant when a fault came between", calibration_refused_after_grant, 0);

  // Link and dispatcher.
  run_case("a replayed sequence number is answered, not executed", replay_not_executed, 0);
  run_case("commands need identify with our protocol version", protocol_version_required, 0);
  for (int i = 0; i < HOST_MESSAGE_COUNT; i++) run_case("FAULT whitelist, message %d", fault_whitelist, i);
  run_case("bad length and unknown messages", bad_length_and_unknown, 0);
  run_case("STOP byte inside a frame", stop_byte_inside_frame, 0);

  run_case("STOP during the retract after home_switch_stuck keeps the switch untrusted", stop_keeps_stuck_switch_untrusted, 0);

  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
