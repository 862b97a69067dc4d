// Board: reset-cause capture, safe output levels from the first instruction, watchdog, clock tick, status LED.
#pragma once
#include <stdint.h> // uint8_t

void board_init(void);
void board_watchdog_kick(void);
void board_status_led(uint8_t on);
