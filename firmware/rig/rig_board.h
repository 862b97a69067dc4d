// What the rig's Firmata logic (rig.c) needs of the board: pin modes, levels, PWM duty and ADC readings, by Arduino pin
// number (D0-D13 = 0-13, A0-A5 = 14-19). avr/pins.c on the ATmega328P; a fake in tests/firmware/rig_tests.c.
#pragma once
#include <stdint.h>  // uint8_t, uint16_t

void pins_init(void);
// Puts pin (2-19) in a Firmata mode it supports (rig.c checks): FIRMATA_MODE_INPUT (no pull-up), _PULLUP, _OUTPUT
// (driven low), _ANALOG (input, no pull-up, digital buffer off) or _PWM (duty 0). A PWM output is let go first.
void pins_set_mode(uint8_t pin, uint8_t mode);
void pins_write(uint8_t pin, uint8_t level);
void pins_set_duty(uint8_t pin, uint8_t duty);
uint8_t pins_read(uint8_t pin);
// One conversion of analog channel (0-5) against AVcc: 0-1023.
uint16_t pins_analog_read(uint8_t channel);
