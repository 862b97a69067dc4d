// Fake register layer: the functions of board.h, uart.h, stepper.h, motor.h and sensors.h over plain state that tests
// and the fuzzer set and read, so the firmware's logic files build and run on this machine unmodified.
#include <string.h>      // memset
#include "fake_board.h"  // struct fake_board
#include "fake_chips.h"  // fake_chips_reset
#include "board.h"       // board_init, clock_ms, eeprom_byte_*
#include "uart.h"        // uart_init, uart_write
#include "stepper.h"     // stepper_move_to, stepper_retract_untrusted_switch
#include "motor.h"       // motor_start
#include "sensors.h"     // sensors_inputs
#include "protocol.h"    // INPUT_BIT_*, RESET_CAUSE_*
#include "faults.h"      // FAULT_ESTOP, FAULT_CARTRIDGE_REMOVED
#include "pen_config.h"  // STEPS_PER_MM, DEPTH_LIMIT_STEPS, DEPTH_AXIS_*, SENSORS_*, LIMITS_*

// As in src/avr/stepper.c.
#define HOMING_TRAVEL_STEPS ((int32_t)DEPTH_AXIS_HOMING_TRAVEL_UM * STEPS_PER_MM / 1000)
#define BACKOFF_MAX_STEPS ((int32_t)DEPTH_AXIS_BACKOFF_MAX_UM * STEPS_PER_MM / 1000)
#define SENSOR_TOLERANCE_STEPS ((int32_t)DEPTH_AXIS_MISMATCH_TOLERANCE_UM * STEPS_PER_MM / 1000)

struct fake_board fake;

void fake_board_reset(void) {
  memset(&fake, 0, sizeof fake);
  fake_chips_reset();  // the ID chips (fake_chips.c): none fitted
  memset(fake.eeprom, 0xFF, sizeof fake.eeprom);
  fake.reset_cause = RESET_CAUSE_POWER_ON;
  fake.inputs = 1 << INPUT_BIT_CARTRIDGE_PRESENT;
  fake.temperature_deci_c = 250;
  fake.supply_mv = 12000;
  fake.ntc_plausible = 1;
  fake.depth_sensor_plausible = 1;
  fake.settled = 1;
  fake.depth_sensor_follows = 1;
  fake.current_ma = 300;
  fake.homing_outcome = HOMING_BUSY;
  fake.retract_trusts_switch = 1;
}

static uint8_t input_active(uint8_t bit) { return (fake.inputs >> bit) & 1; }

void fake_set_input(uint8_t input_bit, uint8_t active) {
  uint8_t was = input_active(input_bit);
  if (active) fake.inputs |= (uint8_t)(1 << input_bit);
  else fake.inputs &= (uint8_t)~(1 << input_bit);
  if (was == active || !fake.on_interlock) return;
  // sensors.c: INT1 on any e-stop edge acts when the loop is open; PCINT0 acts when the cartridge is gone.
  if (input_bit == INPUT_BIT_ESTOP && active) fake.on_interlock(FAULT_ESTOP);
  if (input_bit == INPUT_BIT_CARTRIDGE_PRESENT && !active) fake.on_interlock(FAULT_CARTRIDGE_REMOVED);
}

uint16_t fake_depth_mv_for_steps(int32_t steps) {
  int32_t mv = SENSORS_DEPTH_SENSOR_ZERO_MV + (steps * SENSORS_DEPTH_SENSOR_MV_PER_MM + STEPS_PER_MM / 2) / STEPS_PER_MM;
  // The ADC reads 0 to its reference.
  if (mv < 0) mv = 0;
  if (mv > SENSORS_ADC_REFERENCE_MV) mv = SENSORS_ADC_REFERENCE_MV;
  return (uint16_t)mv;
}

// ---- board.h ----
void board_init(void (*tick_1khz)(void)) { fake.tick_1khz = tick_1khz; }
void board_watchdog_kick(void) {}
void board_status_led(uint8_t on) { fake.status_led = on; }
void board_outputs_safe(void) {
  fake.outputs_safe_calls++;
  fake.motor_running = 0;
}
uint8_t board_reset_cause(void) { return fake.reset_cause; }
uint32_t board_build_id(void) { return 0x0F4CE0B0UL; }
uint32_t clock_ms(void) { return fake.now_ms; }
uint32_t timebase_ticks(void) { return fake.ticks; }

uint8_t eeprom_byte_read(uint16_t address) { return address < FAKE_EEPROM_BYTES ? fake.eeprom[address] : 0xFF; }
uint8_t eeprom_byte_ready(void) { return !fake.eeprom_busy; }
void eeprom_byte_start_write(uint16_t address, uint8_t value) {
  if (address >= FAKE_EEPROM_BYTES) return;
  fake.eeprom[address] = fake.eeprom_tear_next ? (uint8_t)(value ^ 0xA5) : value;
  fake.eeprom_tear_next = 0;
  fake.eeprom_writes++;
}

// ---- uart.h ----
void uart_init(void (*on_stop_byte)(void)) { fake.on_stop_byte = on_stop_byte; }

uint8_t uart_read(uint8_t *byte) {
  if (fake.rx_head == fake.rx_tail) return 0;
  *byte = fake.rx[fake.rx_tail++];
  return 1;
}

uint8_t uart_tx_free(void) { return 127; }  // the host side drains the ring at once

void uart_write(const uint8_t *data, uint8_t length) {
  if (fake.tx_length + length > FAKE_TX_BYTES) fake.tx_length = 0;  // nobody read it: start over
  memcpy(fake.tx + fake.tx_length, data, length);
  fake.tx_length += length;
}

uint16_t uart_rx_overruns(void) { return fake.rx_overruns; }

// ---- stepper.h ----
void stepper_init(void) {}

void stepper_move_to(int32_t target_steps) {
  fake.moves++;
  fake.last_move_target = target_steps;
  fake.target = target_steps;
  fake.moving = 1;
  fake.homing = 0;
  fake.retracting = 0;
  if (fake.on_move) fake.on_move(target_steps);
}

void stepper_start_homing(void) {
  fake.homings++;
  fake.homed = 0;
  fake.homing_outcome = HOMING_BUSY;
  fake.position = HOMING_TRAVEL_STEPS;  // as stepper.c: assume the far end, then seek the switch
  fake.target = 0;
  fake.moving = 1;
  fake.homing = 1;
  fake.retracting = 0;
}

enum homing_result stepper_poll_homing(void) { return fake.homing_outcome; }

static void start_retract(int32_t target, uint8_t trust_switch) {
  fake.retracts++;
  fake.retract_trusts_switch = trust_switch;
  fake.target = target;
  fake.moving = 1;
  fake.homing = 0;
  fake.retracting = 1;
  if (fake.on_retract) fake.on_retract(target, trust_switch);
}

// The targets stepper.c sets.
void stepper_retract(void) { start_retract((fake.homed ? 0 : fake.position) - HOMING_TRAVEL_STEPS, 1); }

void stepper_retract_untrusted_switch(int32_t sensed_position) {
  fake.retract_sensed_position = sensed_position;
  fake.position = sensed_position;  // the count takes the sensor's word; the carriage stays where it is
  start_retract(-SENSOR_TOLERANCE_STEPS, 0);
}

// Where the motion in progress stops (a step count), by the step interrupt's rules.
static int32_t motion_end(void) {
  int32_t here = fake.position, target = fake.target;
  uint8_t deeper = target > here;
  uint8_t trusted = fake.retracting ? fake.retract_trusts_switch : 1;
  if (!deeper && target != here && input_active(INPUT_BIT_HOME_SWITCH) && trusted) return here;
  if (deeper && fake.homed && target > DEPTH_LIMIT_STEPS) return here > DEPTH_LIMIT_STEPS ? here : DEPTH_LIMIT_STEPS;
  // Toward home with the switch trusted: it closes when the carriage gets there.
  if (!deeper && trusted && here - fake.carriage > target) return here - fake.carriage;
  return target;
}

static void step_to(int32_t steps) {
  fake.carriage += steps - fake.position;
  fake.position = steps;
}

void fake_complete_move(void) {
  if (!fake.moving || fake.homing) return;
  step_to(motion_end());
  fake.moving = 0;
  fake.retracting = 0;
}

void fake_place_needle(int32_t steps) { fake.position = fake.target = fake.carriage = steps; }

void fake_finish_homing(enum homing_result result) {
  if (!fake.homing || result == HOMING_BUSY) return;
  fake.homing = 0;
  fake.moving = 0;
  fake.homing_outcome = result;
  if (result == HOMING_DONE) {
    fake.position = fake.carriage = 0;  // the switch opened here
    fake.target = BACKOFF_MAX_STEPS;    // stepper.c leaves the back-off target in place
    fake.homed = 1;
  } else if (result == HOMING_SWITCH_NOT_FOUND) {
    fake.position = fake.target = fake.carriage = 0;  // ran the whole homing travel into the stop
  } else {
    // stepper.c: the switch read pressed at once, so the count was zeroed there and the back-off ran out with it
    // still pressed.
    fake.carriage += BACKOFF_MAX_STEPS;
    fake.position = fake.target = BACKOFF_MAX_STEPS;
  }
}

void stepper_update_1ms(void) {
  if (!fake.steps_per_ms || !fake.moving || fake.homing) return;
  int32_t end = motion_end();
  int32_t step = fake.steps_per_ms;
  if (end > fake.position) step_to(end - fake.position > step ? fake.position + step : end);
  else step_to(fake.position - end > step ? fake.position - step : end);
  if (fake.position == end) {
    fake.moving = 0;
    fake.retracting = 0;
  }
}

int32_t stepper_position(void) { return fake.position; }
int32_t stepper_target(void) { return fake.target; }
uint8_t stepper_moving(void) { return fake.moving; }
uint8_t stepper_homed(void) { return fake.homed; }
void stepper_forget_home(void) { fake.homed = 0; }

// ---- motor.h ----
void motor_init(void) { motor_off_now(); }
void motor_off_now(void) { fake.motor_running = 0; }

uint8_t motor_start(uint16_t strokes_per_second, const volatile uint8_t *veto) {
  // As src/avr/motor.c: a running motor is retargeted; a stopped one starts only when nothing vetoes it.
  if (fake.motor_running) {
    fake.motor_setpoint = strokes_per_second;
    return 1;
  }
  if (*veto != 0) {
    fake.motor_vetoes++;
    return 0;
  }
  fake.motor_setpoint = strokes_per_second;
  fake.motor_running = 1;
  fake.motor_starts++;
  return 1;
}

void motor_stop(void) {
  motor_off_now();
  fake.motor_setpoint = 0;
}

uint8_t motor_update_1ms(uint16_t current_ma) {
  (void)current_ma;
  return fake.motor_running ? fake.motor_fault : 0;
}

uint16_t motor_speed_x100(void) { return fake.motor_running ? (uint16_t)(fake.motor_setpoint * 100U) : 0; }
uint16_t motor_setpoint(void) { return fake.motor_setpoint; }
uint8_t motor_duty(void) {
  if (!fake.motor_running) return 0;
  uint32_t duty = (uint32_t)fake.motor_setpoint * 255 / NEEDLE_DRIVE_PWM_FULL_SCALE_STROKES_PER_SECOND;
  return duty > 255 ? 255 : (uint8_t)duty;
}
uint8_t motor_on(void) { return fake.motor_running; }

// ---- sensors.h ----
void sensors_init(void (*on_interlock)(uint8_t fault_code)) { fake.on_interlock = on_interlock; }
uint16_t sensors_current_ma(void) { return fake.current_ma; }
int16_t sensors_temperature_deci_c(void) { return fake.temperature_deci_c; }
uint16_t sensors_supply_mv(void) { return fake.supply_mv; }
uint16_t sensors_depth_mv(void) { return fake.depth_sensor_follows ? fake_depth_mv_for_steps(fake.carriage) : fake.depth_mv; }
uint8_t sensors_ntc_plausible(void) { return fake.ntc_plausible; }
// Implausible when told so, and (as sensors.c decides it) whenever the reading is outside its plausible range.
uint8_t sensors_depth_sensor_plausible(void) {
  uint16_t mv = sensors_depth_mv();
  return fake.depth_sensor_plausible && mv >= LIMITS_DEPTH_SENSOR_MIN_MV && mv <= LIMITS_DEPTH_SENSOR_MAX_MV;
}
uint8_t sensors_settled(void) { return fake.settled; }
uint8_t sensors_inputs(void) { return fake.inputs; }
