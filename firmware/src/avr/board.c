// Board: reset-cause capture, safe output levels from the first instruction, watchdog, clock tick, timebase, EEPROM
// access, status LED.
#include <avr/io.h>        // MCUSR, DDRx, PORTx, TCCR2A
#include <avr/wdt.h>       // wdt_enable, wdt_reset, wdt_disable
#include <avr/eeprom.h>    // eeprom_read_byte, eeprom_write_byte, eeprom_is_ready
#include <avr/interrupt.h> // ISR
#include <avr/pgmspace.h>  // PROGMEM, pgm_read_dword
#include <util/atomic.h>   // ATOMIC_BLOCK
#include "board.h"         // board_init, board_outputs_safe, clock_ms, timebase_ticks, eeprom_byte_read
#include "protocol.h"      // enum reset_cause, PROTOCOL_VERSION
#include "pen_config.h"    // PIN_*, WATCHDOG_TIMEOUT_MS, BOARD_NAME

#define PIN_INACTIVE(name)                                                        \
  do {                                                                            \
    if (PIN_##name##_ACTIVE_LOW) PIN_##name##_PORT |= _BV(PIN_##name##_BIT);      \
    else PIN_##name##_PORT &= (uint8_t)~_BV(PIN_##name##_BIT);                    \
  } while (0)
#define PIN_SAFE_OUTPUT(name) do { PIN_INACTIVE(name); PIN_##name##_DDR |= _BV(PIN_##name##_BIT); } while (0)
#define PIN_PULLED_UP_INPUT(name)                                                 \
  do { PIN_##name##_DDR &= (uint8_t)~_BV(PIN_##name##_BIT); PIN_##name##_PORT |= _BV(PIN_##name##_BIT); } while (0)

#ifndef RESET_HANDOFF_ADDRESS
#error "RESET_HANDOFF_ADDRESS (the RAM byte the bootloader leaves the reset flags in) comes from the Makefile"
#endif
// Where the bootloader (firmware/bootloader/reset-handoff.h) leaves the reset flags it cleared from MCUSR. The linker
// starts this program's stack below it (Makefile: __stack), so nothing here but board_early_init touches it.
#define RESET_HANDOFF (*(volatile uint8_t *)RESET_HANDOFF_ADDRESS)
#define RESET_FLAG_BITS (_BV(WDRF) | _BV(BORF) | _BV(EXTRF) | _BV(PORF))

// The image's identity in flash, where `pen flash` finds it in a .hex before writing it to a board (src/cli/flash.ts
// reads this layout): an 8-byte tag, the layout's version, the board name (8 bytes, NUL padded), the protocol version
// and the build id (little-endian). board_build_id reads the id from here, which also keeps the record in the image.
_Static_assert(sizeof BOARD_NAME <= 9, "the board name fills at most 8 bytes");
static const struct {
  char tag[8];
  uint8_t layout;
  char board_name[8];
  uint8_t protocol_version;
  uint32_t build_id;
} image_identity PROGMEM = { "PENFW-ID", 1, BOARD_NAME, PROTOCOL_VERSION, BUILD_ID };

// Survives the C runtime's .bss clearing: written in .init3, before it.
static uint8_t reset_flags __attribute__((section(".noinit")));
static volatile uint32_t uptime_ms;
static volatile uint16_t timer1_overflows;
static void (*tick_hook)(void);

void board_outputs_safe(void) {
  PIN_SAFE_OUTPUT(MOTOR_ENABLE);
  PIN_SAFE_OUTPUT(MOTOR_PWM);
  PIN_SAFE_OUTPUT(STEPPER_ENABLE);
  PIN_SAFE_OUTPUT(STEPPER_STEP);
  PIN_SAFE_OUTPUT(STEPPER_DIR);
  PIN_SAFE_OUTPUT(BUZZER);
}

// Runs before main and before .data/.bss setup: outputs safe, watchdog off, reset cause kept. Started by a bootloader,
// MCUSR reads 0 (it cleared the flags) and the flags are in the handoff byte; flashed without one, MCUSR holds them and
// the handoff byte is stale or power-on garbage. Either way the byte is cleared for the next reset.
void board_early_init(void) __attribute__((naked, used, section(".init3")));
void board_early_init(void) {
  uint8_t flags = MCUSR;
  MCUSR = 0;
  if (flags == 0) flags = RESET_HANDOFF;
  RESET_HANDOFF = 0;
  reset_flags = flags & RESET_FLAG_BITS;
  wdt_disable();  // a watchdog reset leaves it running at its shortest period
  board_outputs_safe();
}

void board_init(void (*tick_1khz)(void)) {
  tick_hook = tick_1khz;
  PIN_SAFE_OUTPUT(STATUS_LED);
  PIN_PULLED_UP_INPUT(ESTOP);
  PIN_PULLED_UP_INPUT(HOME_SWITCH);
  PIN_PULLED_UP_INPUT(CARTRIDGE_PRESENT);
  PIN_PULLED_UP_INPUT(FOOTSWITCH);
  // Timer2, CTC at 1 kHz: 16 MHz / 64 / 250.
  TCCR2A = _BV(WGM21);
  TCCR2B = _BV(CS22);
  OCR2A = (uint8_t)(F_CPU / 64 / 1000 - 1);
  TIMSK2 = _BV(OCIE2A);
  TIMSK1 |= _BV(TOIE1);
  _Static_assert(WATCHDOG_TIMEOUT_MS == 60, "watchdog period below assumes 60 ms");
  wdt_enable(WDTO_60MS);
}

// The 1 kHz tick: uptime, and the logic's tick hook (the heartbeat expiry, so host silence is caught within 1 ms).
ISR(TIMER2_COMPA_vect) {
  uint32_t now = uptime_ms + 1;
  uptime_ms = now;
  tick_hook();
}

// Timer1 (free running at 2 MHz, set up by stepper.c) extended to 32 bits for tach periods.
ISR(TIMER1_OVF_vect) { timer1_overflows++; }

uint32_t timebase_ticks(void) {
  uint16_t low, high;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) {
    low = TCNT1;
    high = timer1_overflows;
    // An overflow that happened since the last interrupt has not been counted yet.
    if ((TIFR1 & _BV(TOV1)) && low < 0x8000) high++;
  }
  return ((uint32_t)high << 16) | low;
}

uint32_t clock_ms(void) {
  uint32_t now;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { now = uptime_ms; }
  return now;
}

void board_watchdog_kick(void) { wdt_reset(); }

void board_status_led(uint8_t on) {
  if (on) PIN_STATUS_LED_PORT |= _BV(PIN_STATUS_LED_BIT);
  else PIN_STATUS_LED_PORT &= (uint8_t)~_BV(PIN_STATUS_LED_BIT);
}

// Power-on and brown-out first: SRAM is garbage after them, so other bits the handoff byte held mean nothing. An
// external reset seen through the bootloader also carries WDRF (its timeout leaves by a watchdog reset), so EXTRF wins
// over WDRF; WDRF alone is this program's watchdog biting.
uint8_t board_reset_cause(void) {
  if (reset_flags & _BV(PORF)) return RESET_CAUSE_POWER_ON;
  if (reset_flags & _BV(BORF)) return RESET_CAUSE_BROWN_OUT;
  if (reset_flags & _BV(EXTRF)) return RESET_CAUSE_EXTERNAL;
  if (reset_flags & _BV(WDRF)) return RESET_CAUSE_WATCHDOG;
  return RESET_CAUSE_UNKNOWN;
}

uint32_t board_build_id(void) { return pgm_read_dword(&image_identity.build_id); }

uint8_t eeprom_byte_read(uint16_t address) { return eeprom_read_byte((const uint8_t *)address); }
uint8_t eeprom_byte_ready(void) { return eeprom_is_ready(); }
void eeprom_byte_start_write(uint16_t address, uint8_t value) { eeprom_write_byte((uint8_t *)address, value); }
