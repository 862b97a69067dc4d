// 1-Wire master at standard speed, one bus per part (open drain: DDR pulls the line low, the board's pull-up raises
// it), run by Timer1's compare B interrupt: a reset with its presence sample, then time slots a bit at a time, each
// interrupt scheduling the next from the slot's own falling edge. The main loop only starts an operation and polls for
// its end, so it is never held. An interrupt here masks the others for at most one slot's critical part: a read's low
// pulse and sample (10 µs), a write-one's low pulse (6 µs), or an edge. How late each edge really came (another
// interrupt may delay this one) is checked against the DS2431's windows; a stretched reset is tried again and a
// stretched write-zero fails the operation (ONEWIRE_TIMING). Compare B only raises the interrupt: its output bits
// (COM1B in TCCR1A) stay 0, so OC1B's pin, the stepper enable, is never driven by the timer.
#include <avr/io.h>        // TCNT1, OCR1B, TIMSK1, TIFR1, DDRC, PINC
#include <avr/interrupt.h> // ISR, cli, sei
#include <util/atomic.h>   // ATOMIC_BLOCK
#include <util/delay.h>    // _delay_us
#include "onewire.h"       // onewire_reset, onewire_poll, enum onewire_result
#include "board.h"         // timebase_ticks, TIMEBASE_TICKS_PER_MS
#include "pen_config.h"    // PIN_CARTRIDGE_CHIP_*, PIN_NOSECONE_CHIP_*, ONEWIRE_*

#define TICKS_PER_US (TIMEBASE_TICKS_PER_MS / 1000)  // Timer1 runs free at 2 MHz (stepper.c)
#define TICKS(us) ((uint16_t)((us) * TICKS_PER_US))
#define SOONEST_TICKS 8       // a compare set closer than this to TCNT1 might be missed (and wait a whole wrap)
#define RESET_ATTEMPTS 3      // resets stretched by other interrupts before giving up with ONEWIRE_TIMING
#define SHORTED_AFTER_US 1000 // an idle line low this long is no chip's presence pulse (those last 240 µs at most)

enum op { OP_NONE, OP_RESET, OP_WRITE, OP_READ };
// Where the operation stands: the main loop's part first, then the interrupt's.
enum phase {
  PHASE_IDLE, PHASE_START, PHASE_LOW_AT_START,  // main loop
  PHASE_RESET_RELEASE, PHASE_PRESENCE_SAMPLE, PHASE_RESET_RECOVERED, PHASE_SLOT, PHASE_WRITE_ZERO_RELEASE, // interrupt
};

static struct {
  volatile uint8_t phase, result;
  uint8_t op, attempts, presence, stretched;
  const uint8_t *out;
  uint8_t *in;
  uint8_t count, index, bit;
  uint16_t edge;      // TCNT1 at the last falling edge (a slot's or the reset's start) or the reset's release
  uint16_t released;  // TCNT1 when the line was last released
  uint32_t low_since; // timebase ticks: since when an idle line has read low
} bus;

// The bus's pin: its DDR and PIN registers and its bit, taken when an operation starts.
static volatile uint8_t *line_ddr, *line_pin;
static uint8_t line_mask;

static inline __attribute__((always_inline)) void line_low(void) { *line_ddr |= line_mask; }
static inline __attribute__((always_inline)) void line_release(void) { *line_ddr &= (uint8_t)~line_mask; }
static inline __attribute__((always_inline)) uint8_t line_high(void) { return (*line_pin & line_mask) != 0; }

void onewire_init(void) {
  // PORT bits stay 0 for good: setting DDR then pulls low, and the pin never drives the line high against a chip.
  PIN_CARTRIDGE_CHIP_PORT &= (uint8_t)~_BV(PIN_CARTRIDGE_CHIP_BIT);
  PIN_NOSECONE_CHIP_PORT &= (uint8_t)~_BV(PIN_NOSECONE_CHIP_BIT);
  PIN_CARTRIDGE_CHIP_DDR &= (uint8_t)~_BV(PIN_CARTRIDGE_CHIP_BIT);
  PIN_NOSECONE_CHIP_DDR &= (uint8_t)~_BV(PIN_NOSECONE_CHIP_BIT);
  bus.phase = PHASE_IDLE;
}

// Called from the interrupt (or with interrupts off): the next compare at `at`, or as soon as possible if that has
// passed. OCR1B's 16-bit write goes through the latch the other Timer1 registers share, so never with interrupts on.
static inline __attribute__((always_inline)) void next_edge_at(uint16_t at) {
  uint16_t now = TCNT1;
  if ((int16_t)(at - now) < SOONEST_TICKS) at = now + SOONEST_TICKS;
  OCR1B = at;
}

static inline __attribute__((always_inline)) void finish(uint8_t result) {
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    TIMSK1 &= (uint8_t)~_BV(OCIE1B);  // shared with the stepper's and the timebase's enable bits
    bus.result = result;
    bus.phase = PHASE_IDLE;
  }
}

static void start(uint8_t op, uint8_t which, uint8_t count) {
  if (which == ONEWIRE_BUS_CARTRIDGE) {
    line_ddr = &PIN_CARTRIDGE_CHIP_DDR;
    line_pin = &PIN_CARTRIDGE_CHIP_PIN;
    line_mask = _BV(PIN_CARTRIDGE_CHIP_BIT);
  } else {
    line_ddr = &PIN_NOSECONE_CHIP_DDR;
    line_pin = &PIN_NOSECONE_CHIP_PIN;
    line_mask = _BV(PIN_NOSECONE_CHIP_BIT);
  }
  bus.op = op;
  bus.count = count;
  bus.index = 0;
  bus.bit = 1;
  bus.attempts = 0;
  bus.stretched = 0;
  bus.result = ONEWIRE_BUSY;
  bus.phase = PHASE_START;
}

void onewire_reset(uint8_t which) { start(OP_RESET, which, 0); }

void onewire_write(uint8_t which, const uint8_t *bytes, uint8_t count) {
  bus.out = bytes;
  start(OP_WRITE, which, count);
}

void onewire_read(uint8_t which, uint8_t *bytes, uint8_t count) {
  bus.in = bytes;
  for (uint8_t i = 0; i < count; i++) bytes[i] = 0;
  start(OP_READ, which, count);
}

// The main loop's part of a reset: the line must be idle high, then the reset pulse starts and the interrupt takes
// over. Low before the reset: a chip just plugged in announces itself with a presence pulse; longer is a short.
static void start_reset(void) {
  if (!line_high()) {
    if (bus.phase != PHASE_LOW_AT_START) {
      bus.phase = PHASE_LOW_AT_START;
      bus.low_since = timebase_ticks();
    } else if (timebase_ticks() - bus.low_since >= TICKS(SHORTED_AFTER_US)) {
      bus.result = ONEWIRE_SHORTED;
      bus.phase = PHASE_IDLE;
    }
    return;
  }
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    // Not before a slot would be allowed: tSLOT after the last one began, the recovery time after its release.
    uint16_t earliest = bus.edge + TICKS(ONEWIRE_SLOT_US), after_release = bus.released + TICKS(ONEWIRE_RECOVERY_US);
    uint16_t now = TCNT1;
    if ((int16_t)(earliest - now) > 0 || (int16_t)(after_release - now) > 0) return;  // next pass
    line_low();
    bus.edge = TCNT1;
    bus.phase = PHASE_RESET_RELEASE;
    next_edge_at(bus.edge + TICKS(ONEWIRE_RESET_LOW_US));
    TIFR1 = _BV(OCF1B);
    TIMSK1 |= _BV(OCIE1B);
  }
}

// The main loop's part of a run of bytes: the first slot, tSLOT after the last edge and the recovery time after the
// release (a reset's release included).
static void start_slots(void) {
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    uint16_t at = bus.edge + TICKS(ONEWIRE_SLOT_US), after_release = bus.released + TICKS(ONEWIRE_RECOVERY_US);
    if ((int16_t)(after_release - at) > 0) at = after_release;
    bus.phase = PHASE_SLOT;
    next_edge_at(at);
    TIFR1 = _BV(OCF1B);
    TIMSK1 |= _BV(OCIE1B);
  }
}

uint8_t onewire_poll(void) {
  uint8_t phase = bus.phase;
  if (phase == PHASE_START || phase == PHASE_LOW_AT_START) {
    if (bus.op == OP_RESET) start_reset();
    else start_slots();
  }
  return bus.result;
}

// After a slot: the next one tSLOT after this one's edge (and the recovery time after the release), or the end.
static inline __attribute__((always_inline)) void next_slot(void) {
  uint8_t bit = (uint8_t)(bus.bit << 1);
  if (bit == 0) {
    bit = 1;
    if (++bus.index == bus.count) {
      finish(bus.stretched ? ONEWIRE_TIMING : ONEWIRE_DONE);
      return;
    }
  }
  bus.bit = bit;
  uint16_t at = bus.edge + TICKS(ONEWIRE_SLOT_US), after_release = bus.released + TICKS(ONEWIRE_RECOVERY_US);
  if ((int16_t)(after_release - at) > 0) at = after_release;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    bus.phase = PHASE_SLOT;
    next_edge_at(at);
  }
}

// One time slot, from its falling edge (the first thing the interrupt does): the next bit, least significant first.
static inline __attribute__((always_inline)) void slot(void) {
  line_low();
  uint16_t edge = TCNT1;
  uint8_t high = 0;
  if (bus.op == OP_READ) {
    // Low for tRL, release, sample before tMSR (15 µs): a chip sending 0 holds the line low through it.
    _delay_us(ONEWIRE_READ_LOW_US);
    line_release();
    _delay_us(ONEWIRE_READ_SAMPLE_US - ONEWIRE_READ_LOW_US);
    high = line_high();
  } else if (bus.out[bus.index] & bus.bit) {
    // A one: a short low pulse, released well before the chip samples (15 µs at the earliest).
    _delay_us(ONEWIRE_WRITE_ONE_LOW_US);
    line_release();
  } else {
    // A zero: low past the chip's latest sampling time; the release is the next interrupt.
    bus.edge = edge;
    bus.phase = PHASE_WRITE_ZERO_RELEASE;
    next_edge_at(edge + TICKS(ONEWIRE_WRITE_ZERO_LOW_US));
    return;
  }
  // The slot's critical part is over: the bookkeeping runs with interrupts on, so a STOP byte or an e-stop edge
  // waits only for the part above. Nothing else touches the bus state, and this interrupt's own flag stays clear
  // until next_slot sets the next compare (with interrupts off again: OCR1B and TCNT1 share a latch).
  sei();
  if (high) bus.in[bus.index] |= bus.bit;
  bus.edge = edge;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { bus.released = TCNT1; }
  next_slot();
  cli();
}

ISR(TIMER1_COMPB_vect) {
  // Slots first: the falling edge is the interrupt's first act, so its lateness shifts the slot but not its timing.
  if (bus.phase == PHASE_SLOT) {
    slot();
    return;
  }
  switch (bus.phase) {
    case PHASE_RESET_RELEASE: {
      line_release();
      uint16_t released = TCNT1;
      if ((uint16_t)(released - bus.edge) > TICKS(ONEWIRE_DATASHEET_RESET_LOW_MAX_US)) bus.stretched = 1;
      bus.edge = bus.released = released;
      bus.phase = PHASE_PRESENCE_SAMPLE;
      next_edge_at(released + TICKS(ONEWIRE_PRESENCE_SAMPLE_US));
      return;
    }
    case PHASE_PRESENCE_SAMPLE: {
      bus.presence = !line_high();
      uint16_t after = (uint16_t)(TCNT1 - bus.released);
      if (after < TICKS(ONEWIRE_DATASHEET_PRESENCE_SAMPLE_MIN_US) || after > TICKS(ONEWIRE_DATASHEET_PRESENCE_SAMPLE_MAX_US)) {
        bus.stretched = 1;  // sampled outside tMSP: the sample proves nothing
      }
      bus.phase = PHASE_RESET_RECOVERED;
      next_edge_at(bus.released + TICKS(ONEWIRE_RESET_HIGH_US));
      return;
    }
    case PHASE_RESET_RECOVERED:
      // Any presence pulse has ended by now: a line still low is held low.
      if (!line_high()) {
        finish(ONEWIRE_SHORTED);
      } else if (!bus.stretched) {
        finish(bus.presence ? ONEWIRE_DONE : ONEWIRE_NO_PRESENCE);
      } else if (++bus.attempts >= RESET_ATTEMPTS) {
        finish(ONEWIRE_TIMING);
      } else {
        // Once more from the main loop's start (which checks the line is idle high first).
        TIMSK1 &= (uint8_t)~_BV(OCIE1B);
        bus.stretched = 0;
        bus.phase = PHASE_START;
      }
      return;
    case PHASE_WRITE_ZERO_RELEASE: {
      line_release();
      bus.released = TCNT1;
      if ((uint16_t)(bus.released - bus.edge) > TICKS(ONEWIRE_DATASHEET_WRITE_ZERO_LOW_MAX_US)) bus.stretched = 1;
      next_slot();
      return;
    }
    default:
      TIMSK1 &= (uint8_t)~_BV(OCIE1B);  // nothing under way
      return;
  }
}
