// Firmata protocol 2.x: the message constants, a byte-at-a-time parser and the encoders of what the rig sends.
// Pure logic (no AVR header): it builds for the host too (tests/firmware/rig_tests.c).
#pragma once
#include <stdint.h>  // uint8_t, uint16_t

// Commands: MIDI channel messages carry their port, pin or channel in the low nibble.
#define FIRMATA_DIGITAL_MESSAGE 0x90         // port, bits 0-6, bit 7
#define FIRMATA_REPORT_ANALOG 0xC0           // analog channel, enable
#define FIRMATA_REPORT_DIGITAL 0xD0          // port, enable
#define FIRMATA_ANALOG_MESSAGE 0xE0          // pin (or analog channel, reports), value LSB, value MSB
#define FIRMATA_START_SYSEX 0xF0
#define FIRMATA_SET_PIN_MODE 0xF4            // pin, mode
#define FIRMATA_SET_DIGITAL_PIN_VALUE 0xF5   // pin, value
#define FIRMATA_END_SYSEX 0xF7
#define FIRMATA_REPORT_VERSION 0xF9          // major, minor (answer); nothing (request)
#define FIRMATA_SYSTEM_RESET 0xFF

// Sysex commands (the byte after START_SYSEX).
#define FIRMATA_ANALOG_MAPPING_QUERY 0x69
#define FIRMATA_ANALOG_MAPPING_RESPONSE 0x6A
#define FIRMATA_CAPABILITY_QUERY 0x6B
#define FIRMATA_CAPABILITY_RESPONSE 0x6C
#define FIRMATA_PIN_STATE_QUERY 0x6D
#define FIRMATA_PIN_STATE_RESPONSE 0x6E
#define FIRMATA_EXTENDED_ANALOG 0x6F
#define FIRMATA_STRING_DATA 0x71
#define FIRMATA_REPORT_FIRMWARE 0x79
#define FIRMATA_SAMPLING_INTERVAL 0x7A
#define FIRMATA_SAMPLING_INTERVAL_QUERY 0x7C

// Pin modes (SET_PIN_MODE, CAPABILITY_RESPONSE, PIN_STATE_RESPONSE).
#define FIRMATA_MODE_INPUT 0x00
#define FIRMATA_MODE_OUTPUT 0x01
#define FIRMATA_MODE_ANALOG 0x02
#define FIRMATA_MODE_PWM 0x03
#define FIRMATA_MODE_PULLUP 0x0B
#define FIRMATA_MODE_IGNORE 0x7F   // a pin Firmata leaves alone (the rig's UART pins)
#define FIRMATA_CAPABILITY_END 0x7F // ends one pin's list in CAPABILITY_RESPONSE
#define FIRMATA_NOT_ANALOG 0x7F     // ANALOG_MAPPING_RESPONSE: the pin has no analog channel

// The protocol version this firmware speaks (REPORT_VERSION): 2.8 added SAMPLING_INTERVAL_QUERY, the newest message
// implemented here.
#define FIRMATA_PROTOCOL_MAJOR 2
#define FIRMATA_PROTOCOL_MINOR 8

// The longest sysex payload kept (after the command byte): the rig's longest inbound message is EXTENDED_ANALOG (pin
// and a 32-bit value in five 7-bit bytes). A longer one is read to its end and dropped.
#define FIRMATA_SYSEX_MAX 16

// A whole message, as the parser hands it over.
enum firmata_kind {
  FIRMATA_NONE,
  FIRMATA_CHANNEL,      // command (0x90, 0xC0, 0xD0, 0xE0), channel (the low nibble), data[0..1]
  FIRMATA_TWO_BYTE,     // command (0xF4 or 0xF5), data[0..1]
  FIRMATA_REALTIME,     // command (0xF9 or 0xFF): a single byte, acted on wherever it comes
  FIRMATA_SYSEX,        // command (the sysex command), sysex[0..sysex_length - 1] (its payload)
};

struct firmata_message {
  uint8_t kind;  // enum firmata_kind
  uint8_t command;
  uint8_t channel;
  uint8_t data[2];
  uint8_t sysex_length;
  const uint8_t *sysex;  // into the parser's buffer: valid until its next byte
};

struct firmata_parser {
  uint8_t status;         // the command whose data bytes are expected (MIDI running status); 0: none
  uint8_t count;          // data bytes of the message in progress so far
  uint8_t data[2];
  uint8_t in_sysex;       // between START_SYSEX and END_SYSEX
  uint8_t sysex_overflow; // the sysex in progress outgrew the buffer: dropped at its end
  uint8_t sysex_length;   // bytes after START_SYSEX, the command included
  uint8_t sysex[FIRMATA_SYSEX_MAX + 1];
};

void firmata_parser_reset(struct firmata_parser *parser);
// Feeds one received byte; returns 1 and fills *message when it completes a message, 0 otherwise. The rules (MIDI's):
// - A channel command (0x80-0xEF) starts a message and becomes the running status: further data bytes without a new
//   command repeat it (two per message for 0x80, 0x90, 0xA0, 0xB0, 0xE0; one for 0xC0, 0xD0). 0x80, 0xA0 and 0xB0 mean
//   nothing in Firmata: their messages are read and dropped.
// - A system command (0xF0-0xF7) ends the running status. SET_PIN_MODE and SET_DIGITAL_PIN_VALUE take two data bytes;
//   0xF1-0xF3 and 0xF6 mean nothing in Firmata: data bytes after them are dropped up to the next command.
// - A real-time byte (0xF8-0xFF) is a message of its own wherever it comes, even inside another message, which goes on
//   after it: REPORT_VERSION is answered, SYSTEM_RESET also resets the parser (it is the only way back from anything).
// - A command byte in the middle of a message abandons that message (and a sysex without its END_SYSEX).
// - Data bytes that belong to no message (no running status) are dropped.
int firmata_parse(struct firmata_parser *parser, uint8_t byte, struct firmata_message *message);

// What the encoders send with, one byte at a time: avr/uart.c on the board, a capture buffer in the tests.
void firmata_send(uint8_t byte);

void firmata_send_version(void);
void firmata_send_firmware(uint8_t major, uint8_t minor, const char *name);
void firmata_send_string(const char *text);
void firmata_send_digital_port(uint8_t port, uint8_t levels);
void firmata_send_analog(uint8_t channel, uint16_t value);
void firmata_send_sampling_interval(uint16_t interval_ms);
// A 14-bit or wider value as little-endian 7-bit bytes, at least min_bytes of them, more while bits remain.
void firmata_send_7bit(uint32_t value, uint8_t min_bytes);
