// Needle drive: Timer0 PWM with soft start and ramp, tach period on INT0, closed-loop speed, stall and current checks.
#include <avr/io.h>        // TCCR0A, OCR0A, EICRA, EIMSK
#include <avr/interrupt.h> // ISR
#include <util/atomic.h>   // ATOMIC_BLOCK
#include "motor.h"         // motor_start
#include "board.h"         // timebase_ticks
#include "faults.h"        // FAULT_MOTOR_*
#include "pen_config.h"    // NEEDLE_DRIVE_*, PIN_MOTOR_*

#define TICKS_PER_SECOND (TIMEBASE_TICKS_PER_MS * 1000)
#define RAMP_X100_PER_MS (NEEDLE_DRIVE_RAMP_STROKES_PER_S2 * 100UL / 1000)
#define SPEED_GAIN_P 0.8f   // duty counts per stroke/s of error
#define SPEED_GAIN_I 0.02f  // duty counts per stroke/s of error, per ms
#define MAX_DUTY 255
#define HELD_TOLERANCE_PERCENT 5

static volatile uint32_t last_tach_ticks, tach_period_ticks;
static volatile uint8_t tach_seen;
static uint8_t running, duty, at_speed;
static uint16_t setpoint, ms_without_tach, ms_over_current, ms_off_speed;
static uint32_t ramped_x100;  // the soft-start setpoint, climbing to setpoint * 100
static float integral;

void motor_init(void) {
  motor_off_now();
  TCCR0A = _BV(WGM01) | _BV(WGM00);  // fast PWM; output connected only while running
  TCCR0B = _BV(CS01);                // clk/8: 7.8 kHz PWM
  EICRA |= _BV(ISC01) | _BV(ISC00);  // INT0 on the tach's rising edge
  EIMSK |= _BV(INT0);
}

void motor_off_now(void) {
  TCCR0A &= (uint8_t)~(_BV(COM0A1) | _BV(COM0A0));
  PIN_MOTOR_PWM_PORT &= (uint8_t)~_BV(PIN_MOTOR_PWM_BIT);
  PIN_MOTOR_ENABLE_PORT &= (uint8_t)~_BV(PIN_MOTOR_ENABLE_BIT);
  OCR0A = 0;
  running = 0;
}

ISR(INT0_vect) {
  uint32_t now = timebase_ticks();
  tach_period_ticks = now - last_tach_ticks;
  last_tach_ticks = now;
  tach_seen = 1;
}

uint8_t motor_start(uint16_t strokes_per_second, const volatile uint8_t *veto) {
  if (strokes_per_second != setpoint) at_speed = 0;
  if (running) {
    setpoint = strokes_per_second;  // a new setpoint while running: the ramp carries on from here
    return 1;
  }
  ramped_x100 = 0;
  integral = 0;
  ms_without_tach = ms_over_current = ms_off_speed = 0;
  at_speed = 0;
  uint8_t started = 0;
  // One step for the interlock interrupts: they either see the motor off (and veto it) or fully on (and turn it off).
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    if (*veto == 0) {
      tach_period_ticks = 0;
      tach_seen = 0;
      setpoint = strokes_per_second;
      running = 1;
      OCR0A = 0;
      PIN_MOTOR_ENABLE_PORT |= _BV(PIN_MOTOR_ENABLE_BIT);
      TCCR0A |= _BV(COM0A1);
      started = 1;
    }
  }
  return started;
}

void motor_stop(void) {
  motor_off_now();
  setpoint = 0;
}

uint16_t motor_speed_x100(void) {
  uint32_t period;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { period = tach_period_ticks; }
  if (period == 0 || !running || ms_without_tach >= NEEDLE_DRIVE_STALL_TIMEOUT_MS) return 0;
  return (uint16_t)(TICKS_PER_SECOND * 100UL / period);
}

static uint8_t outside_percent(uint16_t speed_x100, uint32_t wanted_x100, uint8_t percent) {
  uint32_t error = speed_x100 > wanted_x100 ? speed_x100 - wanted_x100 : wanted_x100 - speed_x100;
  return error * 100 > wanted_x100 * percent;
}

uint8_t motor_update_1ms(uint16_t current_ma) {
  if (!running) return 0;
  uint8_t pulse;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { pulse = tach_seen; tach_seen = 0; }
  ms_without_tach = pulse ? 0 : ms_without_tach + 1;

  // Soft start: the setpoint climbs at the ramp rate; the loop follows it.
  uint32_t wanted_x100 = setpoint * 100UL;
  if (ramped_x100 + RAMP_X100_PER_MS < wanted_x100) ramped_x100 += RAMP_X100_PER_MS;
  else if (ramped_x100 > wanted_x100 + RAMP_X100_PER_MS) ramped_x100 -= RAMP_X100_PER_MS;
  else ramped_x100 = wanted_x100;

  uint16_t speed_x100 = motor_speed_x100();
  float error = ((float)ramped_x100 - (float)speed_x100) / 100.0f;
  float feedforward = (float)ramped_x100 / 100.0f * MAX_DUTY / NEEDLE_DRIVE_PWM_FULL_SCALE_STROKES_PER_SECOND;
  integral += SPEED_GAIN_I * error;
  if (integral > MAX_DUTY / 2) integral = MAX_DUTY / 2;
  if (integral < -MAX_DUTY / 2) integral = -MAX_DUTY / 2;
  float output = feedforward + SPEED_GAIN_P * error + integral;
  duty = output < 0 ? 0 : output > MAX_DUTY ? MAX_DUTY : (uint8_t)output;
  OCR0A = duty;

  ms_over_current = current_ma > NEEDLE_DRIVE_CURRENT_LIMIT_MA ? ms_over_current + 1 : 0;
  if (ms_over_current >= NEEDLE_DRIVE_CURRENT_DEBOUNCE_MS) return FAULT_MOTOR_OVERCURRENT;
  // Commanded with real drive but no rotation: stalled, jammed or the tach is gone.
  if (ms_without_tach >= NEEDLE_DRIVE_STALL_TIMEOUT_MS && duty > MAX_DUTY / 4) return FAULT_MOTOR_STALL;
  // Within the tolerance by the at-speed timeout after the ramp, then held (a wider band rides out load steps).
  if (ramped_x100 != wanted_x100) {
    ms_off_speed = 0;
  } else if (!at_speed) {
    if (!outside_percent(speed_x100, wanted_x100, NEEDLE_DRIVE_SPEED_TOLERANCE_PERCENT)) at_speed = 1;
    else if (++ms_off_speed >= NEEDLE_DRIVE_AT_SPEED_TIMEOUT_MS) return FAULT_SPEED_TOLERANCE;
  } else if (outside_percent(speed_x100, wanted_x100, HELD_TOLERANCE_PERCENT)) {
    if (++ms_off_speed >= NEEDLE_DRIVE_AT_SPEED_TIMEOUT_MS / 2) return FAULT_SPEED_TOLERANCE;
  } else {
    ms_off_speed = 0;
  }
  return 0;
}

uint16_t motor_setpoint(void) { return setpoint; }
uint8_t motor_duty(void) { return running ? duty : 0; }
uint8_t motor_on(void) { return running; }
