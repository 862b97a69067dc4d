// Command dispatcher: checks each command's length, the protocol handshake and the FAULT whitelist, then answers it.
#include <string.h>   // memcpy, strncpy
#include "commands.h" // commands_telemetry
#include "link.h"     // link_execute, LINK_REPLY_MAX
#include "safety.h"   // safety_state, safety_arm
#include "stepper.h"  // stepper_position
#include "motor.h"    // motor_speed_x100
#include "sensors.h"  // sensors_inputs
#include "calibration.h" // calibration_um_for_steps
#include "storage.h"  // storage_sequence
#include "protocol.h" // msg_*_t, HOST_MESSAGES
#include "pen_config.h" // BOARD_NAME, FIRMWARE_VERSION_*

_Static_assert(sizeof(msg_identify_reply_t) <= LINK_REPLY_MAX, "identify reply must fit the replay buffer");
_Static_assert(sizeof(msg_telemetry_t) <= LINK_REPLY_MAX, "telemetry must fit the replay buffer");
_Static_assert(sizeof(msg_calibration_t) <= LINK_REPLY_MAX, "the calibration reply must fit the replay buffer");

// Set by an identify carrying our protocol version; until then only identify and stop are served.
static uint8_t host_compatible;

struct command_rule { uint8_t id; uint8_t length; uint8_t allowed_in_fault; };
#define COMMAND_RULE(name, length, allowed_in_fault) { MSG_##name, length, allowed_in_fault },
static const struct command_rule command_rules[] = { HOST_MESSAGES(COMMAND_RULE) };

static uint8_t reply_error(uint8_t *reply, uint8_t request_id, uint8_t code, int32_t detail) {
  msg_error_t error = { MSG_ERROR, request_id, code, detail };
  memcpy(reply, &error, sizeof error);
  return sizeof error;
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
    .sensed_depth_um = sensors_depth_um(),
    .target_depth_um = calibration_um_for_steps(stepper_target()),
    .strokes_per_second_x100 = motor_speed_x100(),
    .needle_setpoint = motor_setpoint(),
    .motor_current_ma = sensors_current_ma(),
    .temperature_deci_c = sensors_temperature_deci_c(),
    .supply_mv = sensors_supply_mv(),
    .motor_duty = motor_duty(),
    .rx_frames_bad = link_bad_frames(),
    .rx_bytes_dropped = link_dropped_bytes(),
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
  memcpy(reply, &identity, sizeof identity);
  return sizeof identity;
}

uint8_t link_execute(const uint8_t *request, uint8_t length, uint8_t *reply) {
  uint8_t id = request[0];
  const struct command_rule *rule = 0;
  for (uint8_t i = 0; i < sizeof command_rules / sizeof command_rules[0]; i++) {
    if (command_rules[i].id == id) rule = &command_rules[i];
  }
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
  switch (id) {
    case MSG_HEARTBEAT: safety_heartbeat(); break;
    case MSG_GET_STATUS: return commands_telemetry(reply);
    case MSG_HOME: error = safety_home(&detail); break;
    case MSG_MOVE_TO: {
      msg_move_to_t move;
      memcpy(&move, request, sizeof move);
      error = safety_move_to(move.depth_um, &detail);
      break;
    }
    case MSG_ARM: error = safety_arm(&detail); break;
    case MSG_DISARM: safety_disarm(); break;
    case MSG_START_NEEDLE: {
      msg_start_needle_t start;
      memcpy(&start, request, sizeof start);
      error = safety_start_needle(start.strokes_per_second, &detail);
      break;
    }
    case MSG_STOP_NEEDLE: safety_stop_needle(); break;
    case MSG_CLEAR_FAULT: error = safety_clear_fault(&detail); break;
    case MSG_CLEAR_CARTRIDGE: {
      msg_clear_cartridge_t cartridge;
      memcpy(&cartridge, request, sizeof cartridge);
      error = safety_clear_cartridge(cartridge.cartridge_id, &detail);
      break;
    }
    case MSG_SET_CALIBRATION: {
      msg_set_calibration_t set;
      memcpy(&set, request, sizeof set);
      struct calibration calibration = { set.steps_per_mm_x100, set.zero_offset_um, set.sensor_zero_mv, set.sensor_mv_per_mm };
      error = safety_set_calibration(&calibration, &detail);
      break;
    }
    case MSG_GET_CALIBRATION: {
      const struct calibration *c = calibration_current();
      msg_calibration_t answer = {
        MSG_CALIBRATION, c->steps_per_mm_x100, c->zero_offset_um, c->sensor_zero_mv, c->sensor_mv_per_mm,
        calibration_source(), storage_sequence(),
      };
      memcpy(reply, &answer, sizeof answer);
      return sizeof answer;
    }
    default: return reply_error(reply, id, ERROR_CODE_UNKNOWN_MESSAGE, id);
  }
  return error ? reply_error(reply, id, error, detail) : reply_ok(reply, id);
}
