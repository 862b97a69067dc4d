// Depth axis: step generation in the Timer1 compare interrupt with acceleration, homing, an absolute deep limit, position.
#include <avr/io.h>        // TCCR1B, OCR1A, TIMSK1
#include <avr/interrupt.h> // ISR
#include <util/atomic.h>   // ATOMIC_BLOCK
#include "stepper.h"       // stepper_move_to
#include "board.h"         // TIMEBASE_TICKS_PER_MS
#include "pen_config.h"    // PIN_STEPPER_*, DEPTH_AXIS_*, STEPS_PER_MM, DEPTH_LIMIT_STEPS

#define TIMER1_HZ (TIMEBASE_TICKS_PER_MS * 1000)  // Timer1 runs free; board.c extends it to 32 bits
#define START_STEPS_PER_SECOND 800
#define ACCELERATION_PER_MS (DEPTH_AXIS_ACCELERATION_STEPS_PER_S2 / 1000)
#define HOMING_TRAVEL_STEPS ((int32_t)DEPTH_AXIS_HOMING_TRAVEL_UM * STEPS_PER_MM / 1000)
#define SENSOR_TOLERANCE_STEPS ((int32_t)DEPTH_AXIS_MISMATCH_TOLERANCE_UM * STEPS_PER_MM / 1000)
#define BACKOFF_MAX_STEPS ((int32_t)DEPTH_AXIS_BACKOFF_MAX_UM * STEPS_PER_MM / 1000)

enum phase { PHASE_IDLE, PHASE_MOVE, PHASE_SEEK_SWITCH, PHASE_BACKOFF };

static volatile int32_t position, target;
static volatile uint8_t phase;
static volatile uint16_t interval_ticks;
static volatile uint8_t homed;
static volatile uint8_t homing_outcome;
static volatile uint8_t switch_trusted = 1;  // cleared to retract past a switch known to be stuck
static uint16_t rate_steps_per_second, max_rate_steps_per_second;

static uint8_t home_pressed(void) {
  uint8_t level = (PIN_HOME_SWITCH_PIN >> PIN_HOME_SWITCH_BIT) & 1;
  return PIN_HOME_SWITCH_ACTIVE_LOW ? !level : level;
}

static void driver_enable(uint8_t on) {
  if (on == PIN_STEPPER_ENABLE_ACTIVE_LOW) PIN_STEPPER_ENABLE_PORT &= (uint8_t)~_BV(PIN_STEPPER_ENABLE_BIT);
  else PIN_STEPPER_ENABLE_PORT |= _BV(PIN_STEPPER_ENABLE_BIT);
}

void stepper_init(void) {
  TCCR1A = 0;
  TCCR1B = _BV(CS11);  // free running, clk/8
}

static void finish(void) {
  TIMSK1 &= (uint8_t)~_BV(OCIE1A);
  phase = PHASE_IDLE;
}

// One step per compare match. Never steps past DEPTH_LIMIT_STEPS, whatever the target, and never toward home with the
// switch closed.
ISR(TIMER1_COMPA_vect) {
  int32_t here = position;
  uint8_t deeper = target > here;
  uint8_t switch_closed = home_pressed();
  if (phase == PHASE_BACKOFF && !switch_closed) {
    position = 0;  // the switch opens here: this is 0 mm
    homed = 1;
    homing_outcome = HOMING_DONE;
    finish();
    return;
  }
  if (here == target || (!deeper && switch_closed && switch_trusted) || (deeper && homed && here >= DEPTH_LIMIT_STEPS)) {
    if (phase == PHASE_SEEK_SWITCH) {
      if (switch_closed) {
        // Found it: back off slowly until it opens.
        phase = PHASE_BACKOFF;
        position = 0;
        target = BACKOFF_MAX_STEPS;
        interval_ticks = TIMER1_HZ / DEPTH_AXIS_BACKOFF_STEPS_PER_SECOND;
        OCR1A += interval_ticks;
        return;
      }
      homing_outcome = HOMING_SWITCH_NOT_FOUND;
    } else if (phase == PHASE_BACKOFF) {
      homing_outcome = HOMING_SWITCH_STUCK;
    }
    finish();
    return;
  }
  if (deeper) PIN_STEPPER_DIR_PORT |= _BV(PIN_STEPPER_DIR_BIT);
  else PIN_STEPPER_DIR_PORT &= (uint8_t)~_BV(PIN_STEPPER_DIR_BIT);
  PIN_STEPPER_STEP_PORT |= _BV(PIN_STEPPER_STEP_BIT);
  position = deeper ? here + 1 : here - 1;
  OCR1A += interval_ticks;
  PIN_STEPPER_STEP_PORT &= (uint8_t)~_BV(PIN_STEPPER_STEP_BIT);  // the pulse spans the update above (> 2 us)
}

static void start(uint8_t new_phase, int32_t new_target, uint16_t max_rate) {
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    switch_trusted = 1;
    target = new_target;
    max_rate_steps_per_second = max_rate;
    if (phase == PHASE_IDLE) {
      rate_steps_per_second = START_STEPS_PER_SECOND < max_rate ? START_STEPS_PER_SECOND : max_rate;
      interval_ticks = TIMER1_HZ / rate_steps_per_second;
      OCR1A = TCNT1 + interval_ticks;
      TIFR1 = _BV(OCF1A);
      TIMSK1 |= _BV(OCIE1A);
    }
    phase = new_phase;
  }
  driver_enable(1);
}

void stepper_move_to(int32_t target_steps) {
  start(PHASE_MOVE, target_steps, DEPTH_AXIS_MAX_STEPS_PER_SECOND);
}

void stepper_start_homing(void) {
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    homed = 0;
    homing_outcome = HOMING_BUSY;
    position = HOMING_TRAVEL_STEPS;  // unknown: assume the far end, then seek the switch from there
  }
  start(PHASE_SEEK_SWITCH, 0, DEPTH_AXIS_HOMING_STEPS_PER_SECOND);
}

enum homing_result stepper_poll_homing(void) { return homing_outcome; }

void stepper_retract(void) {
  // Toward home until the switch closes; past 0 by the homing travel in case steps were lost.
  int32_t here = stepper_position();
  start(PHASE_MOVE, (homed ? 0 : here) - HOMING_TRAVEL_STEPS, DEPTH_AXIS_MAX_STEPS_PER_SECOND);
}

void stepper_retract_untrusted_switch(int32_t sensed_position) {
  // The switch reads pressed where it cannot be, so neither it nor the step count (it may have been zeroed at the
  // stuck switch) says where home is: take the depth sensor's word for the position and retract by steps, past 0 by
  // the sensor's tolerance into the mechanical stop, so the needle is in whatever the sensor's error.
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { position = sensed_position; }
  start(PHASE_MOVE, -SENSOR_TOLERANCE_STEPS, DEPTH_AXIS_MAX_STEPS_PER_SECOND);
  switch_trusted = 0;
}

void stepper_update_1ms(void) {
  if (phase == PHASE_IDLE) return;
  int32_t remaining = stepper_target() - stepper_position();
  if (remaining < 0) remaining = -remaining;
  uint32_t rate = rate_steps_per_second;
  uint32_t stopping_steps = rate * rate / (2UL * DEPTH_AXIS_ACCELERATION_STEPS_PER_S2);
  if ((uint32_t)remaining <= stopping_steps || rate > max_rate_steps_per_second) {
    rate = rate > START_STEPS_PER_SECOND + ACCELERATION_PER_MS ? rate - ACCELERATION_PER_MS : START_STEPS_PER_SECOND;
  } else if (rate < max_rate_steps_per_second) {
    rate += ACCELERATION_PER_MS;
    if (rate > max_rate_steps_per_second) rate = max_rate_steps_per_second;
  }
  rate_steps_per_second = (uint16_t)rate;
  uint16_t ticks = (uint16_t)(TIMER1_HZ / rate);
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    if (phase != PHASE_BACKOFF) interval_ticks = ticks;  // the back-off creeps at its own fixed rate
  }
}

int32_t stepper_position(void) {
  int32_t value;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { value = position; }
  return value;
}

int32_t stepper_target(void) {
  int32_t value;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { value = target; }
  return value;
}

uint8_t stepper_moving(void) { return phase != PHASE_IDLE; }
uint8_t stepper_homed(void) { return homed; }
void stepper_forget_home(void) { homed = 0; }
