// Command dispatcher and handlers: each command's length, the protocol handshake, the FAULT whitelist, the role a
// service command needs (a grant from the challenge–response), then the command itself (home, move, arm, needle,
// calibration, provisioning), its preconditions checked against the safety supervisor.
#include <string.h>      // memcpy, memset, strncpy
#include "commands.h"    // commands_telemetry
#include "link.h"        // link_execute, LINK_REPLY_MAX
#include "safety.h"      // safety_state, safety_enter, safety_interlock
#include "stepper.h"     // stepper_position, stepper_move_to
#include "motor.h"       // motor_start, motor_speed_x100
#include "sensors.h"     // sensors_inputs
#include "calibration.h" // calibration_um_for_steps
#include "storage.h"     // storage_save, storage_sequence
#include "auth.h"        // auth_take_grant, auth_refusal, auth_request_challenge, auth_serial
#include "parts.h"       // parts_report, parts_request_read, parts_record_sterilization
#include "usage.h"       // usage_report
#include "board.h"       // clock_ms, board_reset_cause, board_build_id
#include "uart.h"        // uart_rx_overruns
#include "protocol.h"    // msg_*_t, HOST_MESSAGES
#include "faults.h"      // FAULT_NONE
#include "pen_config.h"  // BOARD_NAME, FIRMWARE_VERSION_*, DEPTH_*

_Static_assert(sizeof(msg_identify_reply_t) <= LINK_REPLY_MAX, "identify reply must fit the replay buffer");
_Static_assert(sizeof(msg_telemetry_t) <= LINK_REPLY_MAX, "telemetry must fit the replay buffer");
_Static_assert(sizeof(msg_calibration_t) <= LINK_REPLY_MAX, "the calibration reply must fit the replay buffer");
_Static_assert(sizeof(msg_challenge_t) <= LINK_REPLY_MAX, "the challenge must fit the replay buffer");
_Static_assert(sizeof(msg_auth_status_t) <= LINK_REPLY_MAX, "the auth status must fit the replay buffer");
_Static_assert(sizeof(msg_parts_t) <= LINK_REPLY_MAX, "the parts reply must fit the replay buffer");
_Static_assert(sizeof(msg_part_refused_t) <= LINK_REPLY_MAX, "the part refusal must fit the replay buffer");
_Static_assert(sizeof(msg_usage_t) <= LINK_REPLY_MAX, "the usage reply must fit the replay buffer");

// Set by an identify carrying our protocol version; until then only identify and stop are served.
static uint8_t host_compatible;
static const struct link_parser *link_parser;
// The part a refusal is about (PART_COUNT: none); set by the handlers that check parts.
static uint8_t refused_part;

struct command_rule { uint8_t id; uint8_t length; uint8_t allowed_in_fault; uint8_t role; };
#define COMMAND_RULE(name, length, allowed_in_fault, role) { MSG_##name, length, allowed_in_fault, role },
static const struct command_rule command_rules[] = { HOST_MESSAGES(COMMAND_RULE) };

static const struct command_rule *rule_for(uint8_t id) {
  for (uint8_t i = 0; i < sizeof command_rules / sizeof command_rules[0]; i++) {
    if (command_rules[i].id == id) return &command_rules[i];
  }
  return 0;
}

void commands_init(const struct link_parser *parser) { link_parser = parser; }

static uint8_t reply_error(uint8_t *reply, uint8_t request_id, uint8_t code, int32_t detail) {
  msg_error_t error = { MSG_ERROR, request_id, code, detail };
  memcpy(reply, &error, sizeof error);
  return sizeof error;
}

// A refusal about a fitted part carries the part and its ROM id, so the host can name the part refused.
static uint8_t reply_part_refused(uint8_t *reply, uint8_t request_id, uint8_t code, uint8_t part, int32_t detail) {
  msg_part_refused_t refused = { .msg_id = MSG_PART_REFUSED, .request_id = request_id, .code = code, .part = part, .detail = detail };
  memcpy(refused.rom, parts_record(part)->rom, PART_ROM_BYTES);
  memcpy(reply, &refused, sizeof refused);
  return sizeof refused;
}

static uint8_t reply_ok(uint8_t *reply, uint8_t request_id) {
  msg_ok_t ok = { MSG_OK, request_id };
  memcpy(reply, &ok, sizeof ok);
  return sizeof ok;
}

uint8_t commands_telemetry(uint8_t *out) {
  int32_t position = stepper_position();
  msg_telemetry_t telemetry = {
    .msg_id = MSG_TELEMETRY,
    .state = safety_state(),
    .fault_code = safety_fault(),
    .uptime_ms = clock_ms(),
    .flags = (stepper_homed() << TELEMETRY_FLAG_HOMED) | (safety_cartridge_cleared() << TELEMETRY_FLAG_CARTRIDGE_CLEARED) |
             (stepper_moving() << TELEMETRY_FLAG_MOVING) | (motor_on() << TELEMETRY_FLAG_NEEDLE_ON),
    .inputs = sensors_inputs(),
    .depth_um = calibration_um_for_steps(position),
    .sensed_depth_um = calibration_um_for_steps(calibration_sensor_steps(sensors_depth_mv())),
    .target_depth_um = calibration_um_for_steps(stepper_target()),
    .strokes_per_second_x100 = motor_speed_x100(),
    .needle_setpoint = motor_setpoint(),
    .motor_current_ma = sensors_current_ma(),
    .temperature_deci_c = sensors_temperature_deci_c(),
    .supply_mv = sensors_supply_mv(),
    .motor_duty = motor_duty(),
    .rx_frames_bad = link_parser->bad_frames,
    .rx_bytes_dropped = link_parser->dropped_bytes + uart_rx_overruns(),
  };
  memcpy(out, &telemetry, sizeof telemetry);
  return sizeof telemetry;
}

static uint8_t identify(const msg_identify_t *request, uint8_t *reply) {
  host_compatible = request->host_protocol_version == PROTOCOL_VERSION;
  msg_identify_reply_t identity = {
    .msg_id = MSG_IDENTIFY_REPLY,
    .protocol_version = PROTOCOL_VERSION,
    .firmware_major = FIRMWARE_VERSION_MAJOR,
    .firmware_minor = FIRMWARE_VERSION_MINOR,
    .firmware_patch = FIRMWARE_VERSION_PATCH,
    .reset_cause = board_reset_cause(),
    .build_id = board_build_id(),
  };
  strncpy(identity.board_name, BOARD_NAME, sizeof identity.board_name);
  memcpy(identity.serial, auth_serial(), sizeof identity.serial);
  memcpy(reply, &identity, sizeof identity);
  return sizeof identity;
}

static uint8_t home(int32_t *detail) {
  uint8_t state = safety_state();
  *detail = state;
  if (state != PEN_STATE_HOMING_REQUIRED && state != PEN_STATE_IDLE) return ERROR_CODE_NOT_ALLOWED_IN_STATE;
  uint8_t interlock = safety_interlock();
  if (interlock != FAULT_NONE) {
    *detail = interlock;
    return ERROR_CODE_INTERLOCK_ACTIVE;
  }
  safety_enter(PEN_STATE_HOMING);
  stepper_start_homing();
  return 0;
}

static uint8_t move_to(uint16_t depth_um, int32_t *detail) {
  uint8_t state = safety_state();
  *detail = depth_um;
  if (depth_um < DEPTH_MIN_UM || depth_um > DEPTH_MAX_UM) return ERROR_CODE_OUT_OF_RANGE;
  if (!stepper_homed()) return ERROR_CODE_NOT_HOMED;
  if (state != PEN_STATE_IDLE && state != PEN_STATE_ARMED && state != PEN_STATE_RUNNING) {
    *detail = state;
    return ERROR_CODE_NOT_ALLOWED_IN_STATE;
  }
  stepper_move_to(calibration_steps_for_um(depth_um));
  return 0;
}

static uint8_t arm(uint16_t today_day, int32_t *detail) {
  uint8_t state = safety_state();
  *detail = state;
  if (state == PEN_STATE_ARMED || state == PEN_STATE_RUNNING) return 0;
  if (state == PEN_STATE_HOMING_REQUIRED) return ERROR_CODE_NOT_HOMED;
  if (state != PEN_STATE_IDLE) return ERROR_CODE_NOT_ALLOWED_IN_STATE;
  if (calibration_source() == CALIBRATION_SOURCE_INVALID) return ERROR_CODE_CALIBRATION_INVALID;
  uint8_t interlock = safety_interlock();
  if (interlock != FAULT_NONE) {
    *detail = interlock;
    return ERROR_CODE_INTERLOCK_ACTIVE;
  }
  if (!(sensors_inputs() & (1 << INPUT_BIT_CARTRIDGE_PRESENT))) return ERROR_CODE_CARTRIDGE_MISSING;
  if (!safety_cartridge_cleared()) return ERROR_CODE_CARTRIDGE_NOT_CLEARED;
  uint8_t part;
  uint8_t unfit = parts_arm_refusal(today_day, detail, &part);
  if (unfit) {
    refused_part = part;
    return unfit;
  }
  if (!safety_heartbeat_fresh()) return ERROR_CODE_HEARTBEAT_STALE;
  uint8_t outside = safety_depth_refusal(detail);
  if (outside) return outside;
  safety_enter(PEN_STATE_ARMED);
  return 0;
}

static void disarm(void) {
  motor_stop();
  uint8_t state = safety_state();
  if (state == PEN_STATE_ARMED || state == PEN_STATE_RUNNING) safety_enter(PEN_STATE_IDLE);
}

static uint8_t start_needle(uint16_t strokes_per_second, int32_t *detail) {
  uint8_t state = safety_state();
  *detail = strokes_per_second;
  if (strokes_per_second < NEEDLE_DRIVE_MIN_STROKES_PER_SECOND || strokes_per_second > NEEDLE_DRIVE_MAX_STROKES_PER_SECOND) {
    return ERROR_CODE_OUT_OF_RANGE;
  }
  if (state != PEN_STATE_ARMED && state != PEN_STATE_RUNNING) {
    *detail = state;
    return ERROR_CODE_NOT_ALLOWED_IN_STATE;
  }
  uint8_t outside = safety_depth_refusal(detail);
  if (outside) return outside;
  // The polled interlocks (temperature, supply, sensors) may have tripped since the last pass: check them now.
  uint8_t interlock = safety_interlock();
  if (interlock != FAULT_NONE) {
    *detail = interlock;
    return ERROR_CODE_INTERLOCK_ACTIVE;
  }
  // The session's first start burns the parts' marks first: no needle on a part that could still read fresh.
  uint8_t part;
  uint8_t unmarked = parts_session_marks(detail, &part);
  if (unmarked) {
    refused_part = part;
    return unmarked;
  }
  // An interlock interrupt that fired since the last poll vetoes the start, inside the motor's atomic step.
  const volatile uint8_t *flagged = safety_flagged_fault();
  if (!motor_start(strokes_per_second, flagged)) {
    *detail = *flagged;
    return ERROR_CODE_INTERLOCK_ACTIVE;
  }
  safety_enter(PEN_STATE_RUNNING);
  return 0;
}

static void stop_needle(void) {
  motor_stop();
  if (safety_state() == PEN_STATE_RUNNING) safety_enter(PEN_STATE_ARMED);
}

static uint8_t clear_cartridge(const uint8_t *rom, int32_t *detail) {
  *detail = 0;
  if (!(sensors_inputs() & (1 << INPUT_BIT_CARTRIDGE_PRESENT))) return ERROR_CODE_CARTRIDGE_MISSING;
  refused_part = PART_CARTRIDGE;
  uint8_t refused = parts_cartridge_refusal(rom, detail);
  if (refused) return refused;
  safety_clear_cartridge();
  return 0;
}

// A calibration changes what the step count means: only while nothing moves and no earlier write is pending.
static uint8_t calibration_refusal(int32_t *detail) {
  uint8_t state = safety_state();
  *detail = state;
  if ((state != PEN_STATE_HOMING_REQUIRED && state != PEN_STATE_IDLE) || stepper_moving() || storage_busy()) {
    return ERROR_CODE_NOT_ALLOWED_IN_STATE;
  }
  return 0;
}

// Service work (a challenge's HMAC holds the main loop about 13 ms, an answer's EEPROM write about 20 ms more): only
// while nothing can move, so the loop's 1 ms duties have nothing to do. Interlocks, STOP and the heartbeat expiry act
// in interrupts meanwhile.
static uint8_t service_refusal(int32_t *detail) {
  uint8_t state = safety_state();
  *detail = state;
  if ((state != PEN_STATE_HOMING_REQUIRED && state != PEN_STATE_IDLE) || stepper_moving() || motor_on()) {
    return ERROR_CODE_NOT_ALLOWED_IN_STATE;
  }
  return 0;
}

static uint8_t request_challenge(const msg_request_challenge_t *request, uint8_t *reply, int32_t *detail) {
  *detail = request->role;
  if (request->role < ROLE_REPROCESSING || request->role > ROLE_ENGINEER) return ERROR_CODE_OUT_OF_RANGE;
  const struct command_rule *rule = rule_for(request->command_id);
  if (!rule || rule->role == ROLE_OPERATOR) {
    *detail = request->command_id;
    return ERROR_CODE_OUT_OF_RANGE;
  }
  if (rule->role != request->role) {
    *detail = rule->role;
    return ERROR_CODE_ROLE_REQUIRED;
  }
  uint8_t refused = service_refusal(detail);
  if (refused) return refused;
  msg_challenge_t challenge;
  refused = auth_request_challenge(request->role, request->command_id, &challenge, detail);
  if (refused) return refused;
  memcpy(reply, &challenge, sizeof challenge);
  return 0;
}

static uint8_t auth_status_reply(uint8_t *reply) {
  msg_auth_status_t status;
  auth_status(&status);
  memcpy(reply, &status, sizeof status);
  return sizeof status;
}

static void store_calibration(const struct calibration *calibration) {
  calibration_use(calibration, CALIBRATION_SOURCE_STORED);
  storage_save(calibration);
}

static uint8_t set_depth_calibration(const msg_set_depth_calibration_t *request, int32_t *detail) {
  uint8_t refused = calibration_refusal(detail);
  if (refused) return refused;
  struct calibration calibration = *calibration_current();
  calibration.depth.steps_per_mm_x100 = request->steps_per_mm_x100;
  calibration.depth.zero_offset_um = request->zero_offset_um;
  *detail = 0;
  if (!calibration_depth_plausible(&calibration.depth)) return ERROR_CODE_OUT_OF_RANGE;
  store_calibration(&calibration);
  return 0;
}

static uint8_t set_sensor_calibration(const msg_set_sensor_calibration_t *request, int32_t *detail) {
  uint8_t refused = calibration_refusal(detail);
  if (refused) return refused;
  struct calibration calibration = *calibration_current();
  calibration.sensor.zero_mv = request->sensor_zero_mv;
  calibration.sensor.mv_per_mm = request->sensor_mv_per_mm;
  *detail = 0;
  if (!calibration_sensor_plausible(&calibration.sensor)) return ERROR_CODE_OUT_OF_RANGE;
  store_calibration(&calibration);
  return 0;
}

static uint8_t calibration_reply(uint8_t *reply) {
  const struct calibration *c = calibration_current();
  msg_calibration_t answer = {
    MSG_CALIBRATION, c->depth.steps_per_mm_x100, c->depth.zero_offset_um, c->sensor.zero_mv, c->sensor.mv_per_mm,
    calibration_source(), storage_sequence(),
  };
  memcpy(reply, &answer, sizeof answer);
  return sizeof answer;
}

uint8_t link_execute(const uint8_t *request, uint8_t length, uint8_t *reply) {
  uint8_t id = request[0];
  // Every frame ends a grant, and any but an answer drops a waiting challenge: a grant is for the very next frame.
  uint8_t granted_role = auth_take_grant(id);
  const struct command_rule *rule = rule_for(id);
  if (!rule) return reply_error(reply, id, id >= 0x80 ? ERROR_CODE_NOT_HOST_MESSAGE : ERROR_CODE_UNKNOWN_MESSAGE, id);
  if (length != rule->length) return reply_error(reply, id, ERROR_CODE_BAD_LENGTH, rule->length);
  if (id == MSG_IDENTIFY) {
    msg_identify_t identify_request;
    memcpy(&identify_request, request, sizeof identify_request);
    return identify(&identify_request, reply);
  }
  if (id == MSG_STOP) return reply_ok(reply, id);  // already acted on by the link layer
  if (!host_compatible) return reply_error(reply, id, ERROR_CODE_PROTOCOL_MISMATCH, PROTOCOL_VERSION);
  if (safety_state() == PEN_STATE_FAULT && !rule->allowed_in_fault) {
    return reply_error(reply, id, ERROR_CODE_NOT_ALLOWED_IN_FAULT, safety_fault());
  }
  int32_t detail = 0;
  uint8_t error = 0;
  refused_part = PART_COUNT;
  if (rule->role != ROLE_OPERATOR) {
    error = auth_refusal(id, rule->role, granted_role, &detail);
    if (error) return reply_error(reply, id, error, detail);
  }
  // Each request is copied into its packed struct: the frame buffer has no alignment to rely on.
  switch (id) {
    case MSG_HEARTBEAT: safety_heartbeat(); break;
    case MSG_GET_STATUS: return commands_telemetry(reply);
    case MSG_HOME: error = home(&detail); break;
    case MSG_MOVE_TO: {
      msg_move_to_t move;
      memcpy(&move, request, sizeof move);
      error = move_to(move.depth_um, &detail);
      break;
    }
    case MSG_ARM: {
      msg_arm_t arm_request;
      memcpy(&arm_request, request, sizeof arm_request);
      error = arm(arm_request.today_day, &detail);
      break;
    }
    case MSG_DISARM: disarm(); break;
    case MSG_START_NEEDLE: {
      msg_start_needle_t start;
      memcpy(&start, request, sizeof start);
      error = start_needle(start.strokes_per_second, &detail);
      break;
    }
    case MSG_STOP_NEEDLE: stop_needle(); break;
    case MSG_CLEAR_FAULT: error = safety_clear_fault(&detail); break;
    case MSG_CLEAR_CARTRIDGE: {
      msg_clear_cartridge_t clear;
      memcpy(&clear, request, sizeof clear);
      error = clear_cartridge(clear.cartridge_rom, &detail);
      break;
    }
    case MSG_SET_DEPTH_CALIBRATION: {
      msg_set_depth_calibration_t set;
      memcpy(&set, request, sizeof set);
      error = set_depth_calibration(&set, &detail);
      break;
    }
    case MSG_SET_SENSOR_CALIBRATION: {
      msg_set_sensor_calibration_t set;
      memcpy(&set, request, sizeof set);
      error = set_sensor_calibration(&set, &detail);
      break;
    }
    case MSG_GET_CALIBRATION: return calibration_reply(reply);
    case MSG_REQUEST_CHALLENGE: {
      msg_request_challenge_t challenge_request;
      memcpy(&challenge_request, request, sizeof challenge_request);
      error = request_challenge(&challenge_request, reply, &detail);
      if (!error) return sizeof(msg_challenge_t);
      break;
    }
    case MSG_ANSWER_CHALLENGE: {
      msg_answer_challenge_t answer;
      memcpy(&answer, request, sizeof answer);
      error = service_refusal(&detail);
      if (!error) error = auth_answer(answer.mac, &detail);
      break;
    }
    case MSG_PROVISION_KEY: {
      msg_provision_key_t key;
      memcpy(&key, request, sizeof key);
      error = auth_stage_key(key.role, key.key, &detail);
      memset(&key, 0, sizeof key);
      break;
    }
    case MSG_PROVISION: {
      msg_provision_t provision;
      memcpy(&provision, request, sizeof provision);
      error = service_refusal(&detail);
      if (!error) error = auth_provision(provision.serial, &detail);
      break;
    }
    case MSG_GET_AUTH_STATUS: return auth_status_reply(reply);
    case MSG_GET_PARTS: {
      msg_get_parts_t get;
      memcpy(&get, request, sizeof get);
      detail = get.reread;
      if (get.reread & (uint8_t)~PARTS_ALL_BITS) {
        error = ERROR_CODE_OUT_OF_RANGE;
        break;
      }
      parts_request_read(get.reread);
      return parts_report(reply);
    }
    case MSG_RECORD_STERILIZATION: {
      msg_record_sterilization_t record;
      memcpy(&record, request, sizeof record);
      refused_part = PART_NOSECONE;
      error = parts_record_sterilization(record.nosecone_rom, &detail);
      break;
    }
    case MSG_GET_USAGE: return usage_report(reply);
    default: return reply_error(reply, id, ERROR_CODE_UNKNOWN_MESSAGE, id);
  }
  if (!error) return reply_ok(reply, id);
  if (refused_part != PART_COUNT) return reply_part_refused(reply, id, error, refused_part, detail);
  return reply_error(reply, id, error, detail);
}
