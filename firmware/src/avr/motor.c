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
#define SPEED_GAIN_P 0.8   // duty counts per stroke/s of error
#define SPEED_GAIN_I 0.02  // duty counts per stroke/s of error, per ms
// Fixed point, for an MCU without floating point: a gain in duty counts per stroke/s becomes a multiplier applied to
// strokes/s x100 with a right shift, folded at compile time (no division at run time). With floats the loop took a
// median 4320 cycles a call, now 1605 (`npm run bench`, speed_loop_median_cycles); most of the rest is the tach division.
#define FIXED_GAIN(gain, q_bits, shift) ((int32_t)((gain) / 100 * (1L << (q_bits)) * (1L << (shift)) + 0.5))
#define P_SHIFT 10
#define I_SHIFT 6
#define FEEDFORWARD_SHIFT 10
#define P_GAIN_Q8 FIXED_GAIN(SPEED_GAIN_P, 8, P_SHIFT)
#define I_GAIN_Q16 FIXED_GAIN(SPEED_GAIN_I, 16, I_SHIFT)
#define FEEDFORWARD_Q8 FIXED_GAIN((double)MAX_DUTY / NEEDLE_DRIVE_PWM_FULL_SCALE_STROKES_PER_SECOND, 8, FEEDFORWARD_SHIFT)
#define INTEGRAL_LIMIT_Q16 ((int32_t)(MAX_DUTY / 2) << 16)
#define MAX_DUTY 255
#define HELD_TOLERANCE_PERCENT 5

static volatile uint32_t last_tach_ticks, tach_period_ticks;
static volatile uint8_t tach_seen;
static uint8_t running, duty, at_speed;
static uint16_t setpoint, ms_without_tach, ms_over_current, ms_off_speed;
static uint32_t ramped_x100;  // the soft-start setpoint, climbing to setpoint * 100
static int32_t integral_q16;  // duty counts x65536

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
  integral_q16 = 0;
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
  int32_t error_x100 = (int32_t)ramped_x100 - speed_x100;
  int32_t feedforward_q8 = ((int32_t)ramped_x100 * FEEDFORWARD_Q8) >> FEEDFORWARD_SHIFT;
  integral_q16 += (error_x100 * I_GAIN_Q16) >> I_SHIFT;
  if (integral_q16 > INTEGRAL_LIMIT_Q16) integral_q16 = INTEGRAL_LIMIT_Q16;
  if (integral_q16 < -INTEGRAL_LIMIT_Q16) integral_q16 = -INTEGRAL_LIMIT_Q16;
  int32_t output_q8 = feedforward_q8 + ((error_x100 * P_GAIN_Q8) >> P_SHIFT) + (integral_q16 >> 8);
  duty = output_q8 < 0 ? 0 : output_q8 >= ((int32_t)MAX_DUTY << 8) ? MAX_DUTY : (uint8_t)(output_q8 >> 8);
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
