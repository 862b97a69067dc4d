// Firmata protocol: the MIDI-style parser of what the host sends and the encoders of what the rig answers.
#include <stddef.h>   // NULL
#include "firmata.h"  // struct firmata_parser, FIRMATA_*, firmata_send

void firmata_parser_reset(struct firmata_parser *parser) {
  parser->status = 0;
  parser->count = 0;
  parser->in_sysex = 0;
  parser->sysex_overflow = 0;
  parser->sysex_length = 0;
}

// Data bytes a command takes; 0 for one that takes none or means nothing (its data bytes are then dropped).
static uint8_t data_bytes_of(uint8_t status) {
  switch (status & 0xF0) {
    case 0x80: case 0x90: case 0xA0: case 0xB0: case 0xE0: return 2;
    case 0xC0: case 0xD0: return 1;
    default: break;
  }
  return status == FIRMATA_SET_PIN_MODE || status == FIRMATA_SET_DIGITAL_PIN_VALUE ? 2 : 0;
}

static int sysex_end(struct firmata_parser *parser, struct firmata_message *message) {
  parser->in_sysex = 0;
  // An empty sysex (F0 F7) has no command; an overflowed one is not the message its sender meant.
  if (parser->sysex_overflow || parser->sysex_length == 0) return 0;
  message->kind = FIRMATA_SYSEX;
  message->command = parser->sysex[0];
  message->channel = 0;
  message->sysex = parser->sysex + 1;
  message->sysex_length = (uint8_t)(parser->sysex_length - 1);
  return 1;
}

int firmata_parse(struct firmata_parser *parser, uint8_t byte, struct firmata_message *message) {
  message->kind = FIRMATA_NONE;
  message->sysex = NULL;
  message->sysex_length = 0;
  if (byte >= 0xF8) {
    // Real-time: leaves any message in progress alone, except SYSTEM_RESET, which starts everything afresh.
    if (byte == FIRMATA_SYSTEM_RESET) firmata_parser_reset(parser);
    if (byte != FIRMATA_SYSTEM_RESET && byte != FIRMATA_REPORT_VERSION) return 0;
    message->kind = FIRMATA_REALTIME;
    message->command = byte;
    return 1;
  }
  if (parser->in_sysex) {
    if (byte == FIRMATA_END_SYSEX) return sysex_end(parser, message);
    if (byte < 0x80) {
      if (parser->sysex_length < sizeof parser->sysex) parser->sysex[parser->sysex_length++] = byte;
      else parser->sysex_overflow = 1;
      return 0;
    }
    parser->in_sysex = 0;  // a command before END_SYSEX: the sysex is abandoned, the command starts
  }
  if (byte >= 0x80) {
    parser->count = 0;
    parser->status = 0;
    if (byte == FIRMATA_START_SYSEX) {
      parser->in_sysex = 1;
      parser->sysex_overflow = 0;
      parser->sysex_length = 0;
    } else if (data_bytes_of(byte) != 0) {
      parser->status = byte;
    }
    return 0;
  }
  if (parser->status == 0) return 0;  // a data byte no command asked for
  parser->data[parser->count++] = byte;
  if (parser->count < data_bytes_of(parser->status)) return 0;
  uint8_t status = parser->status;
  parser->count = 0;
  if (status >= 0xF0) parser->status = 0;  // system commands have no running status
  uint8_t command = status >= 0xF0 ? status : (uint8_t)(status & 0xF0);
  if (command == 0x80 || command == 0xA0 || command == 0xB0) return 0;  // MIDI messages Firmata does not use
  message->kind = status >= 0xF0 ? FIRMATA_TWO_BYTE : FIRMATA_CHANNEL;
  message->command = command;
  message->channel = status >= 0xF0 ? 0 : (uint8_t)(status & 0x0F);
  message->data[0] = parser->data[0];
  message->data[1] = data_bytes_of(status) > 1 ? parser->data[1] : 0;
  return 1;
}

void firmata_send_7bit(uint32_t value, uint8_t min_bytes) {
  uint8_t sent = 0;
  do {
    firmata_send((uint8_t)(value & 0x7F));
    value >>= 7;
    sent++;
  } while (value != 0 || sent < min_bytes);
}

void firmata_send_version(void) {
  firmata_send(FIRMATA_REPORT_VERSION);
  firmata_send(FIRMATA_PROTOCOL_MAJOR);
  firmata_send(FIRMATA_PROTOCOL_MINOR);
}

// Characters go as two 7-bit bytes each (LSB first), as Firmata's strings do.
static void send_chars(const char *text) {
  for (; *text; text++) firmata_send_7bit((uint8_t)*text, 2);
}

void firmata_send_firmware(uint8_t major, uint8_t minor, const char *name) {
  firmata_send(FIRMATA_START_SYSEX);
  firmata_send(FIRMATA_REPORT_FIRMWARE);
  firmata_send(major & 0x7F);
  firmata_send(minor & 0x7F);
  send_chars(name);
  firmata_send(FIRMATA_END_SYSEX);
}

void firmata_send_string(const char *text) {
  firmata_send(FIRMATA_START_SYSEX);
  firmata_send(FIRMATA_STRING_DATA);
  send_chars(text);
  firmata_send(FIRMATA_END_SYSEX);
}

void firmata_send_digital_port(uint8_t port, uint8_t levels) {
  firmata_send((uint8_t)(FIRMATA_DIGITAL_MESSAGE | (port & 0x0F)));
  firmata_send(levels & 0x7F);
  firmata_send(levels >> 7);
}

void firmata_send_analog(uint8_t channel, uint16_t value) {
  firmata_send((uint8_t)(FIRMATA_ANALOG_MESSAGE | (channel & 0x0F)));
  firmata_send(value & 0x7F);
  firmata_send((value >> 7) & 0x7F);
}

void firmata_send_sampling_interval(uint16_t interval_ms) {
  firmata_send(FIRMATA_START_SYSEX);
  firmata_send(FIRMATA_SAMPLING_INTERVAL);
  firmata_send(interval_ms & 0x7F);
  firmata_send((interval_ms >> 7) & 0x7F);
  firmata_send(FIRMATA_END_SYSEX);
}
