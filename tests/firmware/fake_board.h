// Fake register layer: the functions of board.h, uart.h, stepper.h, motor.h and sensors.h over plain state that tests
// and the fuzzer set and read, so the firmware's logic files build and run on this machine unmodified.
#pragma once
#include <stdint.h>    // uint8_t, int32_t
#include "stepper.h"   // enum homing_result

#define FAKE_EEPROM_BYTES 1024
#define FAKE_TX_BYTES 4096

struct fake_board {
  // Board: the clock and timebase advance only when the test says so (fake_pen_advance_ms).
  uint32_t now_ms;
  uint32_t ticks;
  uint8_t reset_cause;
  uint32_t outputs_safe_calls;
  uint8_t status_led;

  // EEPROM: writes land at once unless eeprom_busy; eeprom_tear_next turns the next write into garbage (a reset
  // during the byte's write).
  uint8_t eeprom[FAKE_EEPROM_BYTES];
  uint8_t eeprom_busy;
  uint8_t eeprom_tear_next;
  uint32_t eeprom_writes;

  // UART: what the pen wrote, and the receive ring (uart_read) for a caller that wants main()'s path.
  uint8_t tx[FAKE_TX_BYTES];
  uint32_t tx_length;
  uint8_t rx[256];
  uint8_t rx_head, rx_tail;
  uint16_t rx_overruns;

  // Sensors: what the ADC and the pins report.
  uint8_t inputs;  // input_bit set (protocol.h): estop, home switch, cartridge present, footswitch
  uint16_t current_ma;
  int16_t temperature_deci_c;
  uint16_t supply_mv;
  uint8_t ntc_plausible, depth_sensor_plausible, settled;
  // 1: the depth sensor reads the carriage (the nominal sensor); 0: it reads depth_mv.
  uint8_t depth_sensor_follows;
  uint16_t depth_mv;

  // Stepper: a move sets the target; the step count (position) reaches it on fake_complete_move (or steps_per_ms
  // per stepper_update_1ms when set). Homing ends on fake_finish_homing. carriage is where the carriage really is, in
  // steps from home: it moves with the step count, but homing and a retract by the sensor re-zero only the count.
  int32_t position, target, carriage;
  uint8_t moving, homing, homed, retracting;
  uint8_t retract_trusts_switch;  // the last retract's: 0 after stepper_retract_untrusted_switch
  int32_t retract_sensed_position;
  enum homing_result homing_outcome;
  uint16_t steps_per_ms;
  uint32_t moves, retracts, homings;  // calls of stepper_move_to, stepper_retract, stepper_start_homing
  int32_t last_move_target;

  // Motor: on/off exactly as src/avr/motor.c decides it (motor_start honours *veto); motor_fault is what
  // motor_update_1ms reports while the motor runs.
  uint8_t motor_running;
  uint16_t motor_setpoint;
  uint8_t motor_fault;
  uint32_t motor_starts, motor_vetoes;

  // Called inside stepper_move_to / stepper_retract with the target the logic asked for (the fuzzer's checks).
  void (*on_move)(int32_t target_steps);
  void (*on_retract)(int32_t target_steps, uint8_t trust_switch);

  // The hooks the logic registered through board_init, uart_init and sensors_init (the interrupt handlers).
  void (*tick_1khz)(void);
  void (*on_stop_byte)(void);
  void (*on_interlock)(uint8_t fault_code);
};

extern struct fake_board fake;

// A healthy plant: cartridge in, 25.0 degC, 12 V, sensors settled and plausible, depth sensor on the carriage,
// EEPROM blank, power-on reset. Hooks and counters cleared.
void fake_board_reset(void);
// The move or retract in progress reaches its end by the step interrupt's rules: toward home it stops at once when a
// trusted switch reads pressed, and a retract trusting the switch ends where the carriage reaches home (the switch
// closes there); deeper it never passes DEPTH_LIMIT_STEPS once homed.
void fake_complete_move(void);
// Puts the needle at steps, by the step count and in fact (both depth channels agree).
void fake_place_needle(int32_t steps);
// Homing ends: done (at home, homed), switch not found (count 0, not homed) or switch stuck (backed off, not homed).
void fake_finish_homing(enum homing_result result);
// An input changes; for the e-stop and the cartridge switch the pin interrupt runs, as sensors.c's ISRs do.
void fake_set_input(uint8_t input_bit, uint8_t active);
// The nominal depth sensor's output with the carriage at steps (what the sensor reads when it follows).
uint16_t fake_depth_mv_for_steps(int32_t steps);
