// Board: reset-cause capture, safe output levels from the first instruction, watchdog, clock tick, timebase, EEPROM
// access, status LED. The register layer; the logic above it registers the tick hook it wants called.
#pragma once
#include <stdint.h> // uint8_t, uint32_t

#define TIMEBASE_TICKS_PER_MS 2000UL  // Timer1 at F_CPU / 8

// tick_1khz runs inside the 1 kHz timer interrupt.
void board_init(void (*tick_1khz)(void));
void board_watchdog_kick(void);
void board_status_led(uint8_t on);
// Drive every output to its safe level.
void board_outputs_safe(void);
uint8_t board_reset_cause(void);
uint32_t board_build_id(void);
// Milliseconds since reset, from the 1 kHz tick.
uint32_t clock_ms(void);
// Timer1 extended to 32 bits: TIMEBASE_TICKS_PER_MS per millisecond.
uint32_t timebase_ticks(void);

uint8_t eeprom_byte_read(uint16_t address);
uint8_t eeprom_byte_ready(void);
void eeprom_byte_start_write(uint16_t address, uint8_t value);
