// Depth axis: step generation in the Timer1 compare interrupt with acceleration, homing, an absolute deep limit, position.
#pragma once
#include <stdint.h> // int32_t

enum homing_result { HOMING_BUSY, HOMING_DONE, HOMING_SWITCH_NOT_FOUND, HOMING_SWITCH_STUCK };

void stepper_init(void);
// Moves to an absolute position in microsteps; the caller has checked it against the depth window. Whatever it asks,
// the step interrupt never steps past DEPTH_LIMIT_STEPS (pen_config.h), a limit no calibration moves.
void stepper_move_to(int32_t target_steps);
void stepper_start_homing(void);
enum homing_result stepper_poll_homing(void);
// The safe path: retract toward home at full speed until the home switch closes.
void stepper_retract(void);
// The safe path when the home switch is stuck: the depth sensor's position (in microsteps from home) replaces the
// step count, and the needle retracts to 0 by steps, past the switch.
void stepper_retract_untrusted_switch(int32_t sensed_position);
// Ramps the step rate; call once per millisecond from the main loop.
void stepper_update_1ms(void);

int32_t stepper_position(void);
int32_t stepper_target(void);
uint8_t stepper_moving(void);
uint8_t stepper_homed(void);
void stepper_forget_home(void);
