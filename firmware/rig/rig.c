// The rig as a Firmata board: the host's messages acted on over the board's pins, the capability, analog-mapping and
// pin-state answers, and the digital (on change) and analog (every sampling interval) reports.
#include "rig.h"        // rig_*, RIG_*
#include "rig_board.h"  // pins_set_mode, pins_write, pins_set_duty, pins_read, pins_analog_read
#include "firmata.h"    // firmata_parse, firmata_send*, FIRMATA_*

static struct {
  struct firmata_parser parser;
  uint8_t mode[RIG_PINS];
  uint16_t state[RIG_PINS];  // Firmata's pin state: the level or duty written to an output, 1 for a pulled-up input
  uint8_t report_digital;    // a bit per port
  uint8_t reported_levels[RIG_PORTS];
  uint8_t report_analog;     // a bit per channel
  uint16_t sampling_interval_ms;
  uint32_t last_sample_ms;
} rig;

// The modes each pin offers, in the order CAPABILITY_RESPONSE lists them, with their resolution in bits.
static const struct { uint8_t mode, bits; } modes[] = {
  { FIRMATA_MODE_INPUT, 1 }, { FIRMATA_MODE_PULLUP, 1 }, { FIRMATA_MODE_OUTPUT, 1 },
  { FIRMATA_MODE_ANALOG, RIG_ADC_BITS }, { FIRMATA_MODE_PWM, RIG_PWM_BITS },
};

static int supports(uint8_t pin, uint8_t mode) {
  if (pin < RIG_FIRST_PIN || pin >= RIG_PINS) return 0;
  switch (mode) {
    case FIRMATA_MODE_INPUT: case FIRMATA_MODE_PULLUP: case FIRMATA_MODE_OUTPUT: return 1;
    case FIRMATA_MODE_ANALOG: return pin >= RIG_FIRST_ANALOG_PIN;
    case FIRMATA_MODE_PWM: return (RIG_PWM_PINS >> pin) & 1;
    default: return 0;
  }
}

static void set_mode(uint8_t pin, uint8_t mode) {
  if (!supports(pin, mode)) {
    firmata_send_string("pen-rig: unsupported pin mode");
    return;
  }
  if (rig.mode[pin] == mode) return;  // again the same mode: an output keeps its level
  pins_set_mode(pin, mode);
  rig.mode[pin] = mode;
  rig.state[pin] = mode == FIRMATA_MODE_PULLUP;
}

static void write_level(uint8_t pin, uint8_t level) {
  // Only outputs take levels: a pull-up is chosen with INPUT_PULLUP, not Arduino's old write-high-to-an-input.
  if (pin >= RIG_PINS || rig.mode[pin] != FIRMATA_MODE_OUTPUT) return;
  pins_write(pin, level != 0);
  rig.state[pin] = level != 0;
}

static void write_duty(uint8_t pin, uint32_t value) {
  if (pin >= RIG_PINS || rig.mode[pin] != FIRMATA_MODE_PWM) return;
  uint8_t duty = value > 255 ? 255 : (uint8_t)value;
  pins_set_duty(pin, duty);
  rig.state[pin] = duty;  // the duty the pin really has
}

// The levels of a port's input pins (INPUT and INPUT_PULLUP); its other pins read as 0, so that outputs changing do not
// make a report.
static uint8_t port_input_levels(uint8_t port) {
  uint8_t levels = 0;
  for (uint8_t bit = 0; bit < 8; bit++) {
    uint8_t pin = (uint8_t)(port * 8 + bit);
    if (pin >= RIG_PINS) break;
    if ((rig.mode[pin] == FIRMATA_MODE_INPUT || rig.mode[pin] == FIRMATA_MODE_PULLUP) && pins_read(pin))
      levels |= (uint8_t)(1u << bit);
  }
  return levels;
}

static void send_capabilities(void) {
  firmata_send(FIRMATA_START_SYSEX);
  firmata_send(FIRMATA_CAPABILITY_RESPONSE);
  for (uint8_t pin = 0; pin < RIG_PINS; pin++) {
    for (uint8_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
      if (!supports(pin, modes[i].mode)) continue;
      firmata_send(modes[i].mode);
      firmata_send(modes[i].bits);
    }
    firmata_send(FIRMATA_CAPABILITY_END);
  }
  firmata_send(FIRMATA_END_SYSEX);
}

static void send_analog_mapping(void) {
  firmata_send(FIRMATA_START_SYSEX);
  firmata_send(FIRMATA_ANALOG_MAPPING_RESPONSE);
  for (uint8_t pin = 0; pin < RIG_PINS; pin++)
    firmata_send(pin >= RIG_FIRST_ANALOG_PIN ? (uint8_t)(pin - RIG_FIRST_ANALOG_PIN) : FIRMATA_NOT_ANALOG);
  firmata_send(FIRMATA_END_SYSEX);
}

static void send_pin_state(uint8_t pin) {
  // A pin the board does not have gets no answer: a client indexes its pin table with the pin number it reads back.
  if (pin >= RIG_PINS) return;
  firmata_send(FIRMATA_START_SYSEX);
  firmata_send(FIRMATA_PIN_STATE_RESPONSE);
  firmata_send(pin);
  firmata_send(rig.mode[pin]);
  firmata_send_7bit(rig.state[pin], 1);
  firmata_send(FIRMATA_END_SYSEX);
}

static void report_digital(uint8_t port, uint8_t enable) {
  if (port >= RIG_PORTS) return;
  if (!enable) {
    rig.report_digital &= (uint8_t)~(1u << port);
    return;
  }
  // Firmata 2.4: enabling a report sends the value at once.
  rig.report_digital |= (uint8_t)(1u << port);
  rig.reported_levels[port] = port_input_levels(port);
  firmata_send_digital_port(port, rig.reported_levels[port]);
}

static void report_analog(uint8_t channel, uint8_t enable) {
  if (channel >= RIG_ANALOG_CHANNELS) return;
  if (!enable) {
    rig.report_analog &= (uint8_t)~(1u << channel);
    return;
  }
  rig.report_analog |= (uint8_t)(1u << channel);
  firmata_send_analog(channel, pins_analog_read(channel));
}

static void on_sysex(uint8_t command, const uint8_t *payload, uint8_t length) {
  switch (command) {
    case FIRMATA_REPORT_FIRMWARE:
      firmata_send_firmware(RIG_FIRMWARE_MAJOR, RIG_FIRMWARE_MINOR, RIG_FIRMWARE_NAME);
      break;
    case FIRMATA_CAPABILITY_QUERY: send_capabilities(); break;
    case FIRMATA_ANALOG_MAPPING_QUERY: send_analog_mapping(); break;
    case FIRMATA_PIN_STATE_QUERY:
      if (length >= 1) send_pin_state(payload[0]);
      break;
    case FIRMATA_SAMPLING_INTERVAL:
      if (length >= 2) {
        uint16_t interval_ms = (uint16_t)(payload[0] | (payload[1] << 7));
        rig.sampling_interval_ms = interval_ms < RIG_MIN_SAMPLING_INTERVAL_MS ? RIG_MIN_SAMPLING_INTERVAL_MS : interval_ms;
      }
      break;
    case FIRMATA_SAMPLING_INTERVAL_QUERY: firmata_send_sampling_interval(rig.sampling_interval_ms); break;
    case FIRMATA_EXTENDED_ANALOG:
      if (length >= 2) {
        // pin, then the value in 7-bit bytes, LSB first; anything past 14 bits is beyond a PWM duty anyway.
        uint32_t value = (uint32_t)payload[1] | (length > 2 ? (uint32_t)payload[2] << 7 : 0);
        for (uint8_t i = 3; i < length; i++)
          if (payload[i] != 0) value = UINT32_MAX;
        write_duty(payload[0], value);
      }
      break;
    default: break;  // STRING_DATA from a host and features this board does not have: ignored
  }
}

void rig_receive(uint8_t byte) {
  struct firmata_message message;
  if (!firmata_parse(&rig.parser, byte, &message)) return;
  switch (message.kind) {
    case FIRMATA_REALTIME:
      if (message.command == FIRMATA_REPORT_VERSION) firmata_send_version();
      else rig_reset();
      break;
    case FIRMATA_TWO_BYTE:
      if (message.command == FIRMATA_SET_PIN_MODE) set_mode(message.data[0], message.data[1]);
      else write_level(message.data[0], message.data[1]);
      break;
    case FIRMATA_CHANNEL:
      switch (message.command) {
        case FIRMATA_DIGITAL_MESSAGE: {
          uint8_t levels = (uint8_t)(message.data[0] | (message.data[1] << 7));
          for (uint8_t bit = 0; bit < 8; bit++) write_level((uint8_t)(message.channel * 8 + bit), (levels >> bit) & 1);
          break;
        }
        case FIRMATA_ANALOG_MESSAGE:
          write_duty(message.channel, (uint32_t)message.data[0] | (uint32_t)message.data[1] << 7);
          break;
        case FIRMATA_REPORT_DIGITAL: report_digital(message.channel, message.data[0] != 0); break;
        case FIRMATA_REPORT_ANALOG: report_analog(message.channel, message.data[0] != 0); break;
        default: break;
      }
      break;
    case FIRMATA_SYSEX: on_sysex(message.command, message.sysex, message.sysex_length); break;
    default: break;
  }
}

void rig_reset(void) {
  firmata_parser_reset(&rig.parser);
  for (uint8_t pin = 0; pin < RIG_PINS; pin++) {
    rig.state[pin] = 0;
    if (pin < RIG_FIRST_PIN) {
      rig.mode[pin] = FIRMATA_MODE_IGNORE;
      continue;
    }
    rig.mode[pin] = pin >= RIG_FIRST_ANALOG_PIN ? FIRMATA_MODE_ANALOG : FIRMATA_MODE_INPUT;
    pins_set_mode(pin, rig.mode[pin]);
  }
  rig.report_digital = 0;
  rig.report_analog = 0;
  for (uint8_t port = 0; port < RIG_PORTS; port++) rig.reported_levels[port] = 0;
  rig.sampling_interval_ms = RIG_DEFAULT_SAMPLING_INTERVAL_MS;
}

void rig_start(void) {
  rig_reset();
  firmata_send_version();
  firmata_send_firmware(RIG_FIRMWARE_MAJOR, RIG_FIRMWARE_MINOR, RIG_FIRMWARE_NAME);
}

void rig_poll(uint32_t now_ms) {
  for (uint8_t port = 0; port < RIG_PORTS; port++) {
    if (!(rig.report_digital & (1u << port))) continue;
    uint8_t levels = port_input_levels(port);
    if (levels == rig.reported_levels[port]) continue;
    rig.reported_levels[port] = levels;
    firmata_send_digital_port(port, levels);
  }
  if ((uint32_t)(now_ms - rig.last_sample_ms) < rig.sampling_interval_ms) return;
  // On schedule from the last sample; after a long stall (reports blocked on a full transmit buffer), from now.
  rig.last_sample_ms += rig.sampling_interval_ms;
  if ((uint32_t)(now_ms - rig.last_sample_ms) >= rig.sampling_interval_ms) rig.last_sample_ms = now_ms;
  for (uint8_t channel = 0; channel < RIG_ANALOG_CHANNELS; channel++)
    if (rig.report_analog & (1u << channel)) firmata_send_analog(channel, pins_analog_read(channel));
}

uint8_t rig_pin_mode(uint8_t pin) { return pin < RIG_PINS ? rig.mode[pin] : FIRMATA_MODE_IGNORE; }
uint16_t rig_pin_state(uint8_t pin) { return pin < RIG_PINS ? rig.state[pin] : 0; }
uint16_t rig_sampling_interval_ms(void) { return rig.sampling_interval_ms; }
