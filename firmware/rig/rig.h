// The rig as a Firmata board: pin modes and states, the host's messages acted on, digital and analog reports. Pure
// logic over the board (rig_board.h) and the encoders (firmata.h): it builds for the host too.
#pragma once
#include <stdint.h>  // uint8_t, uint16_t, uint32_t

#define RIG_FIRMWARE_NAME "pen-rig"
#define RIG_FIRMWARE_MAJOR 1
#define RIG_FIRMWARE_MINOR 0

#define RIG_PINS 20             // D0-D13, A0-A5 (14-19), as on an Arduino Uno
#define RIG_PORTS 3             // Firmata ports: 8 pins each (the last holds 16-19)
#define RIG_ANALOG_CHANNELS 6   // A0-A5
#define RIG_FIRST_ANALOG_PIN 14
#define RIG_FIRST_PIN 2         // D0 and D1 are the UART the host speaks through: Firmata leaves them alone
#define RIG_PWM_PINS ((1u << 3) | (1u << 5) | (1u << 6) | (1u << 9) | (1u << 10) | (1u << 11))
#define RIG_PWM_BITS 8
#define RIG_ADC_BITS 10
#define RIG_DEFAULT_SAMPLING_INTERVAL_MS 19  // Firmata's default
#define RIG_MIN_SAMPLING_INTERVAL_MS 1

// Power-on: every pin to its reset mode, then REPORT_VERSION and REPORT_FIRMWARE, unasked, as Firmata boards do.
void rig_start(void);
// SYSTEM_RESET: pins 2-13 inputs without pull-up, A0-A5 analog inputs, no reports, the default sampling interval.
// Unlike StandardFirmata (digital pins outputs, low) nothing is driven: the rig must not press the pen's footswitch or
// trip its e-stop until the host asks.
void rig_reset(void);
// One byte from the host.
void rig_receive(uint8_t byte);
// Each main-loop pass: digital ports with reporting on are reported when their input levels change; analog channels
// with reporting on are reported every sampling interval.
void rig_poll(uint32_t now_ms);

uint8_t rig_pin_mode(uint8_t pin);
uint16_t rig_pin_state(uint8_t pin);
uint16_t rig_sampling_interval_ms(void);
