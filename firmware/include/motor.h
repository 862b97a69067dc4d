// Needle drive: Timer0 PWM with soft start and ramp, tach period on INT0, closed-loop speed, stall and current checks.
#pragma once
#include <stdint.h> // uint16_t

void motor_init(void);
// Safe from interrupts: PWM output disconnected and driver disabled at once.
void motor_off_now(void);
// Starts (or retargets) the motor unless *veto is set, checked with interrupts off so that an interlock interrupt
// either sees the motor off or fully on. Returns 1 when the motor runs.
uint8_t motor_start(uint16_t strokes_per_second, const volatile uint8_t *veto);
void motor_stop(void);
// Runs the speed loop and the motor checks; returns a fault code, or 0. Call once per millisecond.
uint8_t motor_update_1ms(uint16_t current_ma);

uint16_t motor_speed_x100(void);
uint16_t motor_setpoint(void);
uint8_t motor_duty(void);
uint8_t motor_on(void);
