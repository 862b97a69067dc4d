// Millisecond clock: Timer0 in 8-bit fast PWM at clk/64 overflows every 1024 µs (the PWM of D5 and D6 runs on the same
// count, 976 Hz); the overflow interrupt counts whole milliseconds and carries the 24 µs left over each time.
#include <avr/io.h>        // TCCR0A, TCCR0B, TIMSK0
#include <avr/interrupt.h> // ISR
#include <util/atomic.h>   // ATOMIC_BLOCK
#include "clock.h"         // clock_init, clock_ms

#define OVERFLOW_US 1024
#define FRACTION_UNIT_US 8  // the carry in units of 8 µs: 24 µs is 3 of them, a millisecond 125
#define FRACTION_PER_OVERFLOW ((OVERFLOW_US % 1000) / FRACTION_UNIT_US)
#define FRACTION_PER_MS (1000 / FRACTION_UNIT_US)

static volatile uint32_t milliseconds;
static uint8_t fraction;

void clock_init(void) {
  TCCR0A = _BV(WGM01) | _BV(WGM00);  // fast PWM, TOP 0xFF; OC0A/OC0B are connected by avr/pins.c when a pin is PWM
  TCCR0B = _BV(CS01) | _BV(CS00);    // clk/64
  TIMSK0 = _BV(TOIE0);
}

ISR(TIMER0_OVF_vect) {
  uint32_t ms = milliseconds + OVERFLOW_US / 1000;
  fraction += FRACTION_PER_OVERFLOW;
  if (fraction >= FRACTION_PER_MS) {
    fraction -= FRACTION_PER_MS;
    ms++;
  }
  milliseconds = ms;
}

uint32_t clock_ms(void) {
  uint32_t ms;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { ms = milliseconds; }
  return ms;
}
