// Safety supervisor: the pen's one state variable and its transition table, interlocks, heartbeat, the depth window
// at run time, the latched fault with its clear rules, and the one safe path.
#include "safety.h"      // safety_state
#include "board.h"       // board_outputs_safe
#include "stepper.h"     // stepper_retract, stepper_position
#include "motor.h"       // motor_off_now
#include "sensors.h"     // sensors_inputs
#include "calibration.h" // calibration_um_for_steps
#include "protocol.h"    // enum pen_state, enum error_code, INPUT_BIT_*
#include "faults.h"      // enum fault_code, FAULT_NEEDS_HOME_MASK, FAULT_CRITICAL_MASK
#include "pen_config.h"  // HEARTBEAT_TIMEOUT_MS, LIMITS_*, DEPTH_*

#define STATE_BIT(name) (1U << PEN_STATE_##name)
// Where each state may go on a command or an event. FAULT is not listed: go_safe() is the one way in, from anywhere.
static const uint8_t allowed_next[] = {
  [PEN_STATE_BOOT] = STATE_BIT(HOMING_REQUIRED),
  [PEN_STATE_HOMING_REQUIRED] = STATE_BIT(HOMING),
  [PEN_STATE_HOMING] = STATE_BIT(IDLE) | STATE_BIT(HOMING_REQUIRED),
  [PEN_STATE_IDLE] = STATE_BIT(HOMING) | STATE_BIT(ARMED),
  [PEN_STATE_ARMED] = STATE_BIT(IDLE) | STATE_BIT(RUNNING),
  [PEN_STATE_RUNNING] = STATE_BIT(IDLE) | STATE_BIT(ARMED),
  [PEN_STATE_FAULT] = STATE_BIT(IDLE) | STATE_BIT(HOMING_REQUIRED),
};

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
static uint8_t fault_needs_home(uint8_t code) { return (FAULT_NEEDS_HOME_MASK >> code) & 1; }
static uint8_t fault_is_critical(uint8_t code) { return (FAULT_CRITICAL_MASK >> code) & 1; }

uint8_t safety_enter(uint8_t next_state) {
  if (next_state == state) return 1;
  if (next_state >= sizeof allowed_next || !((allowed_next[state] >> next_state) & 1)) return 0;
  state = next_state;
  return 1;
}

// Home by the switch, unless the switch is latched as stuck: then by the depth sensor's position (STOP included, so a
// STOP during that retract cannot hand the needle back to a switch that reads pressed wherever it is).
static void retract_needle(void) {
  if (state == PEN_STATE_FAULT && fault == FAULT_HOME_SWITCH_STUCK) {
    stepper_retract_untrusted_switch(calibration_sensor_steps(sensors_depth_mv()));
  } else {
    stepper_retract();
  }
}

// The one safe path: motor off, needle home, fault latched and reported.
static void go_safe(uint8_t code) {
  motor_off_now();
  motor_stop();
  if (state != PEN_STATE_FAULT) fault = code;  // the first cause is the one reported
  state = PEN_STATE_FAULT;
  retract_needle();
  if (fault_needs_home(code)) stepper_forget_home();
  // A hazard interrupted the treatment: the cartridge must be inspected and cleared again before arming.
  if (fault_is_critical(code)) cartridge_cleared = 0;
  report_pending = 1;
}

void safety_init(uint8_t reset_cause) {
  board_outputs_safe();
  safety_enter(PEN_STATE_HOMING_REQUIRED);  // position is unknown after any reset
  if (reset_cause == RESET_CAUSE_WATCHDOG) go_safe(FAULT_WATCHDOG_RESET);
}

uint8_t safety_state(void) { return state; }
uint8_t safety_fault(void) { return fault; }
uint8_t safety_cartridge_cleared(void) { return cartridge_cleared; }
void safety_clear_cartridge(void) { cartridge_cleared = 1; }
const volatile uint8_t *safety_flagged_fault(void) { return &flagged_fault; }

// Motor on, armed, or the needle moving on the host's command: what the heartbeat must keep alive.
static uint8_t outputs_active(void) {
  return state == PEN_STATE_ARMED || state == PEN_STATE_RUNNING || (state == PEN_STATE_IDLE && stepper_moving());
}

static void flag_fault(uint8_t code) {
  if (flagged_fault == FAULT_NONE) flagged_fault = code;
}

void safety_on_interlock(uint8_t fault_code) {
  // A cartridge taken out while nothing can move is not a fault; arming checks for it.
  if (fault_code == FAULT_CARTRIDGE_REMOVED && !outputs_active()) return;
  motor_off_now();
  flag_fault(fault_code);
}

void safety_on_stop_byte(void) {
  motor_off_now();
  stop_requested = 1;
}

void safety_tick_1khz(void) {
  if (heartbeat_seen) {
    heartbeat_seen = 0;
    silence_ms = 1;  // it came during the millisecond that just ended
  } else if (silence_ms < UINT16_MAX) {
    silence_ms++;
  }
  heartbeat_fresh = silence_ms <= HEARTBEAT_TIMEOUT_MS;
  if (!heartbeat_fresh && outputs_active()) {
    motor_off_now();
    flag_fault(FAULT_HEARTBEAT_LOST);
  }
}

void safety_heartbeat(void) {
  heartbeat_seen = 1;
  heartbeat_fresh = 1;
}

uint8_t safety_heartbeat_fresh(void) { return heartbeat_fresh; }

static uint8_t over_temperature(void) { return sensors_temperature_deci_c() > LIMITS_TEMPERATURE_LIMIT_DECI_C; }

static uint8_t supply_out_of_range(void) {
  uint16_t supply = sensors_supply_mv();
  return supply < LIMITS_SUPPLY_MIN_MV || supply > LIMITS_SUPPLY_MAX_MV;
}

uint8_t safety_interlock(void) {
  if (input(INPUT_BIT_ESTOP)) return FAULT_ESTOP;
  if (!sensors_settled()) return FAULT_NONE;
  if (!sensors_ntc_plausible()) return FAULT_TEMPERATURE_SENSOR;
  if (over_temperature()) return FAULT_OVER_TEMPERATURE;
  if (supply_out_of_range()) return FAULT_SUPPLY_OUT_OF_RANGE;
  if (!sensors_depth_sensor_plausible()) return FAULT_DEPTH_SENSOR;
  return FAULT_NONE;
}

// Each cause on its own, so a fault is not cleared while its cause persists behind another one.
static uint8_t cause_present(uint8_t code) {
  switch (code) {
    case FAULT_ESTOP: return input(INPUT_BIT_ESTOP);
    case FAULT_CARTRIDGE_REMOVED: return !input(INPUT_BIT_CARTRIDGE_PRESENT);
    case FAULT_OVER_TEMPERATURE: return sensors_temperature_deci_c() > LIMITS_TEMPERATURE_CLEAR_DECI_C;
    case FAULT_TEMPERATURE_SENSOR: return !sensors_ntc_plausible();
    case FAULT_SUPPLY_OUT_OF_RANGE: return supply_out_of_range();
    case FAULT_DEPTH_SENSOR: return !sensors_depth_sensor_plausible();
  }
  return 0;
}

// Both depth channels in um, converted once per use: the conversions are the main loop's costliest arithmetic.
struct depth_now { int16_t steps_um, sensed_um; };

static int16_t sensed_depth_um(void) { return calibration_um_for_steps(calibration_sensor_steps(sensors_depth_mv())); }

static struct depth_now depth_now(void) {
  struct depth_now now = { calibration_um_for_steps(stepper_position()), sensed_depth_um() };
  return now;
}

static uint8_t depth_refusal(struct depth_now depth, int32_t *detail) {
  int16_t target_um = calibration_um_for_steps(stepper_target());
  *detail = depth.steps_um;
  if (depth.steps_um < DEPTH_MIN_UM || depth.steps_um > DEPTH_MAX_UM) return ERROR_CODE_DEPTH_OUTSIDE_WINDOW;
  *detail = target_um;
  if (target_um < DEPTH_MIN_UM || target_um > DEPTH_MAX_UM) return ERROR_CODE_DEPTH_OUTSIDE_WINDOW;
  *detail = depth.sensed_um;
  if (depth.sensed_um < DEPTH_MIN_UM - DEPTH_AXIS_MISMATCH_TOLERANCE_UM ||
      depth.sensed_um > DEPTH_MAX_UM + DEPTH_AXIS_MISMATCH_TOLERANCE_UM) {
    return ERROR_CODE_DEPTH_OUTSIDE_WINDOW;
  }
  return 0;
}

uint8_t safety_depth_refusal(int32_t *detail) { return depth_refusal(depth_now(), detail); }

// Step count against the independent depth sensor: lost steps or slipping mechanics.
static void check_depth_agreement(struct depth_now depth) {
  int16_t difference = depth.steps_um - depth.sensed_um;
  if (difference < 0) difference = -difference;
  mismatch_ms = difference > DEPTH_AXIS_MISMATCH_TOLERANCE_UM ? mismatch_ms + 1 : 0;
  if (mismatch_ms >= DEPTH_AXIS_MISMATCH_DEBOUNCE_MS) {
    go_safe(FAULT_DEPTH_MISMATCH);
    return;
  }
  // Both channels say the needle is out, yet the switch says home: the switch is stuck.
  if (input(INPUT_BIT_HOME_SWITCH) && depth.steps_um > DEPTH_AXIS_HOME_SWITCH_STUCK_UM &&
      depth.sensed_um > DEPTH_AXIS_HOME_SWITCH_STUCK_UM) {
    go_safe(FAULT_HOME_SWITCH_STUCK);
  }
}

static void every_millisecond(void) {
  stepper_update_1ms();
  uint8_t cartridge_in = input(INPUT_BIT_CARTRIDGE_PRESENT);
  if (!cartridge_in) cartridge_cleared = 0;  // a cartridge put back must be cleared again
  if (state == PEN_STATE_FAULT) return;
  uint8_t interlock = safety_interlock();
  if (interlock != FAULT_NONE) {
    go_safe(interlock);
    return;
  }
  if (!cartridge_in && (state == PEN_STATE_ARMED || state == PEN_STATE_RUNNING)) {
    go_safe(FAULT_CARTRIDGE_REMOVED);
    return;
  }
  if (state == PEN_STATE_HOMING) {
    // The switch pressed while the depth sensor sees the needle out: a stuck switch, which homing would take for home.
    if (input(INPUT_BIT_HOME_SWITCH) && sensors_settled() && sensed_depth_um() > DEPTH_AXIS_HOME_SWITCH_STUCK_UM) {
      go_safe(FAULT_HOME_SWITCH_STUCK);
      return;
    }
    enum homing_result result = stepper_poll_homing();
    if (result == HOMING_DONE) safety_enter(PEN_STATE_IDLE);
    else if (result == HOMING_SWITCH_NOT_FOUND) go_safe(FAULT_HOMING_FAILED);
    else if (result == HOMING_SWITCH_STUCK) go_safe(FAULT_HOME_SWITCH_STUCK);
    return;
  }
  struct depth_now depth = depth_now();
  if (stepper_homed() && sensors_settled()) {
    check_depth_agreement(depth);
    if (state == PEN_STATE_FAULT) return;
  }
  int32_t depth_um;
  if ((state == PEN_STATE_ARMED || state == PEN_STATE_RUNNING) && depth_refusal(depth, &depth_um)) {
    go_safe(FAULT_DEPTH_OUTSIDE_WINDOW);
    return;
  }
  if (state == PEN_STATE_RUNNING) {
    uint8_t motor_fault = motor_update_1ms(sensors_current_ma());
    if (motor_fault != FAULT_NONE) go_safe(motor_fault);
  }
}

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

uint8_t safety_clear_fault(int32_t *detail) {
  *detail = fault;
  if (state != PEN_STATE_FAULT) return 0;
  if (cause_present(fault) || flagged_fault != FAULT_NONE) return ERROR_CODE_FAULT_CAUSE_PRESENT;
  fault = FAULT_NONE;
  safety_enter(stepper_homed() ? PEN_STATE_IDLE : PEN_STATE_HOMING_REQUIRED);
  return 0;
}

void safety_stop(void) {
  motor_off_now();
  motor_stop();
  if (state == PEN_STATE_ARMED || state == PEN_STATE_RUNNING) safety_enter(PEN_STATE_IDLE);
  if (state == PEN_STATE_HOMING) safety_enter(PEN_STATE_HOMING_REQUIRED);
  retract_needle();
}
