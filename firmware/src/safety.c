// Safety supervisor: the pen's one state variable, interlocks, heartbeat, the latched fault and the one safe path.
#include "safety.h"     // safety_state
#include "stepper.h"    // stepper_retract, stepper_position
#include "motor.h"      // motor_off_now
#include "sensors.h"    // sensors_inputs
#include "calibration.h" // calibration_steps_for_um
#include "storage.h"  // storage_save
#include "protocol.h"   // enum pen_state, enum error_code, INPUT_BIT_*
#include "faults.h"     // enum fault_code, FAULT_NEEDS_HOME_MASK
#include "pen_config.h" // HEARTBEAT_TIMEOUT_MS, LIMITS_*, DEPTH_*

static volatile uint8_t state = PEN_STATE_BOOT;
static volatile uint8_t flagged_fault;
static volatile uint8_t stop_requested;
// Byte-sized so the main loop and the tick interrupt share them without tearing: the main loop raises
// heartbeat_seen, the tick counts the silence and publishes whether the host is fresh.
static volatile uint8_t heartbeat_seen;
static volatile uint8_t heartbeat_fresh;
static uint16_t silence_ms = UINT16_MAX;  // tick interrupt only
static uint8_t fault = FAULT_NONE;
static uint8_t report_pending;
static uint8_t cartridge_cleared;
static uint16_t mismatch_ms;
static uint32_t last_poll_ms;

static uint8_t input(uint8_t bit) { return (sensors_inputs() >> bit) & 1; }

static int16_t step_depth_um(void) { return calibration_um_for_steps(stepper_position()); }

// The one safe path: motor off, needle home, fault latched and reported.
static void go_safe(uint8_t code) {
  motor_off_now();
  motor_stop();
  if (state != PEN_STATE_FAULT) fault = code;  // the first cause is the one reported
  state = PEN_STATE_FAULT;
  stepper_retract(fault != FAULT_HOME_SWITCH_STUCK);
  if ((FAULT_NEEDS_HOME_MASK >> code) & 1) stepper_forget_home();
  report_pending = 1;
}

void safety_init(uint8_t reset_cause) {
  board_outputs_safe();
  state = PEN_STATE_HOMING_REQUIRED;  // position is unknown after any reset
  if (reset_cause == RESET_CAUSE_WATCHDOG) go_safe(FAULT_WATCHDOG_RESET);
}

uint8_t safety_state(void) { return state; }
uint8_t safety_fault(void) { return fault; }
uint8_t safety_cartridge_cleared(void) { return cartridge_cleared; }

uint8_t safety_outputs_active(void) {
  return state == PEN_STATE_ARMED || state == PEN_STATE_RUNNING || (state == PEN_STATE_IDLE && stepper_moving());
}

void safety_flag_fault(uint8_t code) {
  if (flagged_fault == FAULT_NONE) flagged_fault = code;
}

void safety_tick_1khz(void) {
  if (heartbeat_seen) {
    heartbeat_seen = 0;
    silence_ms = 1;  // it came during the millisecond that just ended
  } else if (silence_ms < UINT16_MAX) {
    silence_ms++;
  }
  heartbeat_fresh = silence_ms <= HEARTBEAT_TIMEOUT_MS;
  if (!heartbeat_fresh && safety_outputs_active()) {
    motor_off_now();
    safety_flag_fault(FAULT_HEARTBEAT_LOST);
  }
}

void safety_heartbeat(void) {
  heartbeat_seen = 1;
  heartbeat_fresh = 1;
}

// An interlock that forbids operating, whatever the state; FAULT_NONE when all is well.
static uint8_t interlock_tripped(void) {
  if (input(INPUT_BIT_ESTOP)) return FAULT_ESTOP;
  if (!sensors_settled()) return FAULT_NONE;
  if (!sensors_ntc_plausible()) return FAULT_TEMPERATURE_SENSOR;
  if (sensors_temperature_deci_c() > LIMITS_TEMPERATURE_LIMIT_DECI_C) return FAULT_OVER_TEMPERATURE;
  uint16_t supply = sensors_supply_mv();
  if (supply < LIMITS_SUPPLY_MIN_MV || supply > LIMITS_SUPPLY_MAX_MV) return FAULT_SUPPLY_OUT_OF_RANGE;
  if (!sensors_depth_sensor_plausible()) return FAULT_DEPTH_SENSOR;
  return FAULT_NONE;
}

static uint8_t cause_present(uint8_t code) {
  switch (code) {
    case FAULT_ESTOP: return input(INPUT_BIT_ESTOP);
    case FAULT_CARTRIDGE_REMOVED: return !input(INPUT_BIT_CARTRIDGE_PRESENT);
    case FAULT_OVER_TEMPERATURE: return sensors_temperature_deci_c() > LIMITS_TEMPERATURE_CLEAR_DECI_C;
    case FAULT_TEMPERATURE_SENSOR: return !sensors_ntc_plausible();
    case FAULT_SUPPLY_OUT_OF_RANGE: return interlock_tripped() == FAULT_SUPPLY_OUT_OF_RANGE;
    case FAULT_DEPTH_SENSOR: return !sensors_depth_sensor_plausible();
  }
  return 0;
}

// Step count against the independent depth sensor: lost steps or slipping mechanics.
static void check_depth_agreement(void) {
  int16_t difference = step_depth_um() - sensors_depth_um();
  if (difference < 0) difference = -difference;
  mismatch_ms = difference > DEPTH_AXIS_MISMATCH_TOLERANCE_UM ? mismatch_ms + 1 : 0;
  if (mismatch_ms >= DEPTH_AXIS_MISMATCH_DEBOUNCE_MS) {
    go_safe(FAULT_DEPTH_MISMATCH);
    return;
  }
  // Both channels say the needle is out, yet the switch says home: the switch is stuck.
  if (input(INPUT_BIT_HOME_SWITCH) && step_depth_um() > DEPTH_AXIS_HOME_SWITCH_STUCK_UM &&
      sensors_depth_um() > DEPTH_AXIS_HOME_SWITCH_STUCK_UM) {
    go_safe(FAULT_HOME_SWITCH_STUCK);
  }
}

static void every_millisecond(void) {
  stepper_update_1ms();
  uint8_t cartridge_in = input(INPUT_BIT_CARTRIDGE_PRESENT);
  if (!cartridge_in) cartridge_cleared = 0;  // a cartridge put back must be cleared again
  if (state == PEN_STATE_FAULT) return;
  uint8_t interlock = interlock_tripped();
  if (interlock != FAULT_NONE) {
    go_safe(interlock);
    return;
  }
  if (!cartridge_in && (state == PEN_STATE_ARMED || state == PEN_STATE_RUNNING)) {
    go_safe(FAULT_CARTRIDGE_REMOVED);
    return;
  }
  if (state == PEN_STATE_HOMING) {
    enum homing_result result = stepper_poll_homing();
    if (result == HOMING_DONE) state = PEN_STATE_IDLE;
    else if (result == HOMING_SWITCH_NOT_FOUND) go_safe(FAULT_HOMING_FAILED);
    else if (result == HOMING_SWITCH_STUCK) go_safe(FAULT_HOME_SWITCH_STUCK);
    return;
  }
  if (stepper_homed() && sensors_settled()) {
    check_depth_agreement();
    if (state == PEN_STATE_FAULT) return;
  }
  if (state == PEN_STATE_RUNNING) {
    uint8_t motor_fault = motor_update_1ms(sensors_current_ma());
    if (motor_fault != FAULT_NONE) go_safe(motor_fault);
  }
}

void safety_request_stop(void) { stop_requested = 1; }

void safety_poll(uint32_t now_ms) {
  if (stop_requested) {
    stop_requested = 0;
    safety_stop();
  }
  uint8_t flagged = flagged_fault;
  if (flagged != FAULT_NONE) {
    flagged_fault = FAULT_NONE;
    go_safe(flagged);
  }
  if (now_ms != last_poll_ms) {
    last_poll_ms = now_ms;
    every_millisecond();
  }
}

uint8_t safety_take_report(void) {
  uint8_t pending = report_pending;
  report_pending = 0;
  return pending;
}

uint8_t safety_home(int32_t *detail) {
  *detail = state;
  if (state != PEN_STATE_HOMING_REQUIRED && state != PEN_STATE_IDLE) return ERROR_CODE_NOT_ALLOWED_IN_STATE;
  uint8_t interlock = interlock_tripped();
  if (interlock != FAULT_NONE) {
    *detail = interlock;
    return ERROR_CODE_INTERLOCK_ACTIVE;
  }
  state = PEN_STATE_HOMING;
  stepper_start_homing();
  return 0;
}

uint8_t safety_move_to(uint16_t depth_um, int32_t *detail) {
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


uint8_t safety_arm(int32_t *detail) {
  *detail = state;
  if (state == PEN_STATE_ARMED || state == PEN_STATE_RUNNING) return 0;
  if (state == PEN_STATE_HOMING_REQUIRED) return ERROR_CODE_NOT_HOMED;
  if (state != PEN_STATE_IDLE) return ERROR_CODE_NOT_ALLOWED_IN_STATE;
  if (calibration_source() == CALIBRATION_SOURCE_INVALID) return ERROR_CODE_CALIBRATION_INVALID;
  uint8_t interlock = interlock_tripped();
  if (interlock != FAULT_NONE) {
    *detail = interlock;
    return ERROR_CODE_INTERLOCK_ACTIVE;
  }
  if (!input(INPUT_BIT_CARTRIDGE_PRESENT)) return ERROR_CODE_CARTRIDGE_MISSING;
  if (!cartridge_cleared) return ERROR_CODE_CARTRIDGE_NOT_CLEARED;
  if (!heartbeat_fresh) return ERROR_CODE_HEARTBEAT_STALE;
  state = PEN_STATE_ARMED;
  return 0;
}

void safety_disarm(void) {
  motor_stop();
  if (state == PEN_STATE_ARMED || state == PEN_STATE_RUNNING) state = PEN_STATE_IDLE;
}

uint8_t safety_start_needle(uint16_t strokes_per_second, int32_t *detail) {
  *detail = strokes_per_second;
  if (strokes_per_second < NEEDLE_DRIVE_MIN_STROKES_PER_SECOND || strokes_per_second > NEEDLE_DRIVE_MAX_STROKES_PER_SECOND) {
    return ERROR_CODE_OUT_OF_RANGE;
  }
  if (state != PEN_STATE_ARMED && state != PEN_STATE_RUNNING) {
    *detail = state;
    return ERROR_CODE_NOT_ALLOWED_IN_STATE;
  }
  if (flagged_fault != FAULT_NONE) {
    // An interlock interrupt fired since the last poll: the safe path runs next, not the motor.
    *detail = flagged_fault;
    return ERROR_CODE_INTERLOCK_ACTIVE;
  }
  motor_start(strokes_per_second);
  state = PEN_STATE_RUNNING;
  return 0;
}

void safety_stop_needle(void) {
  motor_stop();
  if (state == PEN_STATE_RUNNING) state = PEN_STATE_ARMED;
}

uint8_t safety_clear_fault(int32_t *detail) {
  *detail = fault;
  if (state != PEN_STATE_FAULT) return 0;
  if (cause_present(fault) || flagged_fault != FAULT_NONE) return ERROR_CODE_FAULT_CAUSE_PRESENT;
  fault = FAULT_NONE;
  state = stepper_homed() ? PEN_STATE_IDLE : PEN_STATE_HOMING_REQUIRED;
  return 0;
}

uint8_t safety_clear_cartridge(uint32_t cartridge_id, int32_t *detail) {
  *detail = (int32_t)cartridge_id;
  if (!input(INPUT_BIT_CARTRIDGE_PRESENT)) return ERROR_CODE_CARTRIDGE_MISSING;
  cartridge_cleared = 1;
  return 0;
}

void safety_stop(void) {
  motor_off_now();
  motor_stop();
  if (state == PEN_STATE_ARMED || state == PEN_STATE_RUNNING) state = PEN_STATE_IDLE;
  if (state == PEN_STATE_HOMING) state = PEN_STATE_HOMING_REQUIRED;
  stepper_retract(1);
}

uint8_t safety_set_calibration(const struct calibration *calibration, int32_t *detail) {
  *detail = state;
  if ((state != PEN_STATE_HOMING_REQUIRED && state != PEN_STATE_IDLE) || stepper_moving() || storage_busy()) {
    return ERROR_CODE_NOT_ALLOWED_IN_STATE;
  }
  *detail = 0;
  if (!calibration_plausible(calibration)) return ERROR_CODE_OUT_OF_RANGE;
  calibration_use(calibration, CALIBRATION_SOURCE_STORED);
  stepper_set_limit_steps(calibration_window_max_steps());
  storage_save(calibration);
  return 0;
}
