// Unit tests of the rig's Firmata firmware logic (firmware/rig/firmata.c, rig.c) built for this machine over a fake
// board: every message fed whole and split at each byte boundary (with main-loop passes and a REPORT_VERSION in the
// gap), garbage and MIDI running status, over-long sysex, byte-exact answers against the Firmata protocol text
// (firmata/protocol, protocol.md) and reports on change and on the sampling interval. Each case runs in its own process.
#include <string.h>   // memcmp, memcpy, memset
#include "check.h"    // CHECK, CHECK_EQ, REQUIRE, run_case
#include "rig.h"      // rig_*, RIG_*
#include "rig_board.h" // pins_* (faked here)
#include "firmata.h"  // firmata_send (faked here), FIRMATA_*

// ---- The fake board: what rig.c asked of the pins, and the input levels and ADC readings it sees.
static struct {
  uint8_t mode[RIG_PINS];   // the last pins_set_mode; 0xEE: never set
  uint8_t level[RIG_PINS];  // the last pins_write
  uint8_t duty[RIG_PINS];
  int duty_writes;
  uint8_t input[RIG_PINS];
  uint16_t adc[RIG_ANALOG_CHANNELS];
} board;

void pins_init(void) {}
void pins_set_mode(uint8_t pin, uint8_t mode) {
  REQUIRE(pin >= RIG_FIRST_PIN && pin < RIG_PINS);
  board.mode[pin] = mode;
  board.level[pin] = 0;
  board.duty[pin] = 0;
}
void pins_write(uint8_t pin, uint8_t level) {
  REQUIRE(pin < RIG_PINS);
  board.level[pin] = level;
}
void pins_set_duty(uint8_t pin, uint8_t duty) {
  REQUIRE((RIG_PWM_PINS >> pin) & 1);
  board.duty[pin] = duty;
  board.duty_writes++;
}
uint8_t pins_read(uint8_t pin) {
  REQUIRE(pin < RIG_PINS);
  return board.input[pin];
}
uint16_t pins_analog_read(uint8_t channel) {
  REQUIRE(channel < RIG_ANALOG_CHANNELS);
  return board.adc[channel];
}

// ---- What the rig sent.
static uint8_t sent[8192];
static size_t sent_length;
void firmata_send(uint8_t byte) {
  REQUIRE(sent_length < sizeof sent);
  sent[sent_length++] = byte;
}

static void feed(const uint8_t *bytes, size_t length) {
  for (size_t i = 0; i < length; i++) rig_receive(bytes[i]);
}
#define FEED(...) do { const uint8_t bytes_[] = { __VA_ARGS__ }; feed(bytes_, sizeof bytes_); } while (0)

static void print_bytes(const char *what, const uint8_t *bytes, size_t length) {
  printf("  %s (%zu):", what, length);
  for (size_t i = 0; i < length; i++) printf(" %02X", bytes[i]);
  printf("\n");
}

static void check_sent_at(const char *file, int line, const uint8_t *expected, size_t length) {
  if (sent_length == length && memcmp(sent, expected, length) == 0) return;
  fail_at(file, line, "the rig sent other bytes than expected");
  print_bytes("sent", sent, sent_length);
  print_bytes("expected", expected, length);
}
// The rig sent exactly these bytes since the last clear_sent().
#define EXPECT_SENT(...) \
  do { const uint8_t expected_[] = { __VA_ARGS__ }; check_sent_at(__FILE__, __LINE__, expected_, sizeof expected_); } while (0)
#define EXPECT_NOTHING_SENT() CHECK_EQ(sent_length, 0)

static void clear_sent(void) { sent_length = 0; }

// Each case: a rig just after power-on, its announcement cleared.
static void power_on(void) {
  memset(&board, 0, sizeof board);
  memset(board.mode, 0xEE, sizeof board.mode);
  rig_start();
  clear_sent();
}

#define VERSION 0xF9, 0x02, 0x08
#define FIRMWARE 0xF0, 0x79, 0x01, 0x00, 'p', 0, 'e', 0, 'n', 0, '-', 0, 'r', 0, 'i', 0, 'g', 0, 0xF7

static void announces_itself(int unused) {
  (void)unused;
  memset(&board, 0, sizeof board);
  rig_start();
  EXPECT_SENT(VERSION, FIRMWARE);
  // Pins at reset: D0/D1 untouched (the UART), D2-D13 inputs, A0-A5 analog inputs.
  CHECK_EQ(rig_pin_mode(0), FIRMATA_MODE_IGNORE);
  CHECK_EQ(rig_pin_mode(1), FIRMATA_MODE_IGNORE);
  for (uint8_t pin = 2; pin < 14; pin++) CHECK_EQ(board.mode[pin], FIRMATA_MODE_INPUT);
  for (uint8_t pin = 14; pin < 20; pin++) CHECK_EQ(board.mode[pin], FIRMATA_MODE_ANALOG);
  CHECK_EQ(rig_sampling_interval_ms(), 19);
}

// ---- Every message, whole and split: a setup, the message, what it answers and what it does.
struct message_case {
  const char *name;
  uint8_t setup[8];
  uint8_t setup_length;
  uint8_t message[8];
  uint8_t message_length;
  uint8_t answer[200];
  uint8_t answer_length;
  void (*check)(void);
};

static void pin3_is_pwm(void) { CHECK_EQ(rig_pin_mode(3), FIRMATA_MODE_PWM); CHECK_EQ(board.mode[3], FIRMATA_MODE_PWM); }
static void pin13_is_output(void) { CHECK_EQ(rig_pin_mode(13), FIRMATA_MODE_OUTPUT); CHECK_EQ(board.mode[13], FIRMATA_MODE_OUTPUT); }
static void pin13_is_high(void) { CHECK_EQ(board.level[13], 1); CHECK_EQ(rig_pin_state(13), 1); }
static void pin12_is_pulled_up(void) { CHECK_EQ(board.mode[12], FIRMATA_MODE_PULLUP); CHECK_EQ(rig_pin_state(12), 1); }
static void pin3_duty_255(void) { CHECK_EQ(board.duty[3], 255); CHECK_EQ(rig_pin_state(3), 255); }
static void pin3_duty_64(void) { CHECK_EQ(board.duty[3], 64); }
static void interval_10(void) { CHECK_EQ(rig_sampling_interval_ms(), 10); }
static void interval_300(void) { CHECK_EQ(rig_sampling_interval_ms(), 300); }
static void back_to_reset(void) {
  CHECK_EQ(rig_pin_mode(13), FIRMATA_MODE_INPUT);
  CHECK_EQ(board.mode[13], FIRMATA_MODE_INPUT);
  CHECK_EQ(rig_sampling_interval_ms(), 19);
}

static const struct message_case messages[] = {
  { "REPORT_VERSION", {0}, 0, { 0xF9 }, 1, { VERSION }, 3, 0 },
  { "REPORT_FIRMWARE", {0}, 0, { 0xF0, 0x79, 0xF7 }, 3, { FIRMWARE }, 19, 0 },
  { "ANALOG_MAPPING_QUERY", {0}, 0, { 0xF0, 0x69, 0xF7 }, 3,
    { 0xF0, 0x6A, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F, 0x7F,
      0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0xF7 }, 23, 0 },
  { "PIN_STATE_QUERY", {0}, 0, { 0xF0, 0x6D, 0x03, 0xF7 }, 4, { 0xF0, 0x6E, 0x03, 0x00, 0x00, 0xF7 }, 6, 0 },
  { "SET_PIN_MODE PWM", {0}, 0, { 0xF4, 0x03, 0x03 }, 3, {0}, 0, pin3_is_pwm },
  { "SET_PIN_MODE OUTPUT", {0}, 0, { 0xF4, 0x0D, 0x01 }, 3, {0}, 0, pin13_is_output },
  { "SET_PIN_MODE INPUT_PULLUP", {0}, 0, { 0xF4, 0x0C, 0x0B }, 3, {0}, 0, pin12_is_pulled_up },
  { "DIGITAL_MESSAGE", { 0xF4, 0x0D, 0x01 }, 3, { 0x91, 0x20, 0x00 }, 3, {0}, 0, pin13_is_high },
  { "SET_DIGITAL_PIN_VALUE", { 0xF4, 0x0D, 0x01 }, 3, { 0xF5, 0x0D, 0x01 }, 3, {0}, 0, pin13_is_high },
  { "REPORT_DIGITAL", {0}, 0, { 0xD1, 0x01 }, 2, { 0x91, 0x00, 0x00 }, 3, 0 },
  { "REPORT_ANALOG", {0}, 0, { 0xC2, 0x01 }, 2, { 0xE2, 0x25, 0x05 }, 3, 0 },
  { "ANALOG_MESSAGE", { 0xF4, 0x03, 0x03 }, 3, { 0xE3, 0x7F, 0x01 }, 3, {0}, 0, pin3_duty_255 },
  { "EXTENDED_ANALOG", { 0xF4, 0x03, 0x03 }, 3, { 0xF0, 0x6F, 0x03, 0x40, 0x00, 0xF7 }, 6, {0}, 0, pin3_duty_64 },
  { "SAMPLING_INTERVAL", {0}, 0, { 0xF0, 0x7A, 0x0A, 0x00, 0xF7 }, 5, {0}, 0, interval_10 },
  { "SAMPLING_INTERVAL (two bytes)", {0}, 0, { 0xF0, 0x7A, 0x2C, 0x02, 0xF7 }, 5, {0}, 0, interval_300 },
  { "SAMPLING_INTERVAL_QUERY", {0}, 0, { 0xF0, 0x7C, 0xF7 }, 3, { 0xF0, 0x7A, 0x13, 0x00, 0xF7 }, 5, 0 },
  { "SYSTEM_RESET", { 0xF4, 0x0D, 0x01, 0xF0, 0x7A, 0x0A, 0x00, 0xF7 }, 8, { 0xFF }, 1, {0}, 0, back_to_reset },
};
#define MESSAGES ((int)(sizeof messages / sizeof messages[0]))

// Feeds the case's message with a gap after split bytes (split = its length: no gap); in the gap, main-loop passes and,
// when version_in_gap, a REPORT_VERSION. Checks the answer (after the version in the gap when there is one) and effect.
static void run_message(const struct message_case *c, size_t split, int version_in_gap) {
  board.adc[2] = 0x2A5;  // 0x2A5 = 0x25 | 0x05 << 7
  feed(c->setup, c->setup_length);
  clear_sent();
  feed(c->message, split);
  rig_poll(0);
  rig_poll(0);
  if (version_in_gap) rig_receive(0xF9);
  feed(c->message + split, c->message_length - split);
  rig_poll(0);
  uint8_t expected[sizeof c->answer + 3];
  size_t length = 0;
  // A message completes at its last byte: a version asked before that comes first.
  int version_first = split < c->message_length;
  if (version_in_gap && version_first) { memcpy(expected, (uint8_t[]){ VERSION }, 3); length = 3; }
  memcpy(expected + length, c->answer, c->answer_length);
  length += c->answer_length;
  if (version_in_gap && !version_first) { memcpy(expected + length, (uint8_t[]){ VERSION }, 3); length += 3; }
  check_sent_at(__FILE__, __LINE__, expected, length);
  if (c->check) c->check();
}

static void message_whole(int index) { run_message(&messages[index], messages[index].message_length, 0); }

static void message_split_everywhere(int index) {
  const struct message_case *c = &messages[index];
  for (size_t split = 0; split <= c->message_length; split++) {
    for (int version = 0; version < 2; version++) {
      // A fresh rig for each split, in this same process.
      power_on();
      run_message(c, split, version);
      if (case_failures) {
        printf("  (split after %zu bytes%s)\n", split, version ? ", REPORT_VERSION in the gap" : "");
        return;
      }
    }
  }
}

// ---- Byte-exact answers (the Firmata protocol text, protocol.md: capability query, analog mapping, pin state).

static void capability_response(int unused) {
  (void)unused;
  FEED(0xF0, 0x6B, 0xF7);
  // INPUT 1 bit, INPUT_PULLUP 1 bit, OUTPUT 1 bit; ANALOG 10 bits on A0-A5; PWM 8 bits on D3 D5 D6 D9 D10 D11;
  // D0 and D1 (the UART) no mode at all.
#define DIGITAL 0x00, 0x01, 0x0B, 0x01, 0x01, 0x01
  EXPECT_SENT(0xF0, 0x6C,
              0x7F,                                  // D0
              0x7F,                                  // D1
              DIGITAL, 0x7F,                         // D2
              DIGITAL, 0x03, 0x08, 0x7F,             // D3
              DIGITAL, 0x7F,                         // D4
              DIGITAL, 0x03, 0x08, 0x7F,             // D5
              DIGITAL, 0x03, 0x08, 0x7F,             // D6
              DIGITAL, 0x7F,                         // D7
              DIGITAL, 0x7F,                         // D8
              DIGITAL, 0x03, 0x08, 0x7F,             // D9
              DIGITAL, 0x03, 0x08, 0x7F,             // D10
              DIGITAL, 0x03, 0x08, 0x7F,             // D11
              DIGITAL, 0x7F,                         // D12
              DIGITAL, 0x7F,                         // D13
              DIGITAL, 0x02, 0x0A, 0x7F,             // A0
              DIGITAL, 0x02, 0x0A, 0x7F,             // A1
              DIGITAL, 0x02, 0x0A, 0x7F,             // A2
              DIGITAL, 0x02, 0x0A, 0x7F,             // A3
              DIGITAL, 0x02, 0x0A, 0x7F,             // A4
              DIGITAL, 0x02, 0x0A, 0x7F,             // A5
              0xF7);
#undef DIGITAL
}

static void pin_state_responses(int unused) {
  (void)unused;
  FEED(0xF0, 0x6D, 0x00, 0xF7);  // D0: the UART, left alone
  EXPECT_SENT(0xF0, 0x6E, 0x00, 0x7F, 0x00, 0xF7);
  clear_sent();
  FEED(0xF0, 0x6D, 0x0E, 0xF7);  // A0 at reset: analog input
  EXPECT_SENT(0xF0, 0x6E, 0x0E, 0x02, 0x00, 0xF7);
  clear_sent();
  FEED(0xF4, 0x04, 0x0B, 0xF0, 0x6D, 0x04, 0xF7);  // a pulled-up input: state 1 (the pull-up)
  EXPECT_SENT(0xF0, 0x6E, 0x04, 0x0B, 0x01, 0xF7);
  clear_sent();
  FEED(0xF4, 0x0D, 0x01, 0xF5, 0x0D, 0x01, 0xF0, 0x6D, 0x0D, 0xF7);  // an output written high
  EXPECT_SENT(0xF0, 0x6E, 0x0D, 0x01, 0x01, 0xF7);
  clear_sent();
  FEED(0xF4, 0x03, 0x03, 0xE3, 0x48, 0x01, 0xF0, 0x6D, 0x03, 0xF7);  // PWM 200: state past 7 bits in two bytes
  EXPECT_SENT(0xF0, 0x6E, 0x03, 0x03, 0x48, 0x01, 0xF7);
  clear_sent();
  FEED(0xF0, 0x6D, 0x14, 0xF7, 0xF0, 0x6D, 0x7F, 0xF7);  // pins the board does not have: no answer
  EXPECT_NOTHING_SENT();
  FEED(0xF0, 0x6D, 0xF7);  // no pin at all: no answer
  EXPECT_NOTHING_SENT();
}

// ---- Garbage and running status.

static void garbage_is_ignored(int unused) {
  (void)unused;
  FEED(0x00, 0x7F, 0x12, 0x34);              // data bytes no command asked for
  FEED(0x80, 0x10, 0x20, 0x30, 0x40);        // MIDI note off, with running status: not Firmata
  FEED(0xA5, 0x01, 0x02, 0xB3, 0x7F, 0x7F);  // polyphonic aftertouch, control change
  FEED(0xF1, 0x01, 0xF2, 0x01, 0x02, 0xF3, 0x01, 0xF6, 0x55);  // MIDI system common messages, undefined in Firmata
  FEED(0xF7, 0xF7, 0xF0, 0xF7);              // stray END_SYSEX, an empty sysex
  FEED(0xF0, 0x01, 0x02, 0x03, 0xF7);        // a sysex of a feature the rig does not have
  FEED(0xF0, 0x71, 0x41, 0x00, 0xF7);        // STRING_DATA from the host means nothing
  FEED(0xF8, 0xFA, 0xFE);                    // other real-time bytes (clock, start, active sensing)
  FEED(0xC7, 0x01, 0xD5, 0x01);              // reports of a channel and port the board does not have
  FEED(0xF5, 0x02, 0x01, 0x91, 0x7F, 0x01);  // levels written to inputs: ignored (no pull-up either)
  FEED(0xE5, 0x10, 0x00, 0xF0, 0x6F, 0x13, 0x10, 0xF7);  // PWM to pins that are not PWM
  EXPECT_NOTHING_SENT();
  for (uint8_t pin = 2; pin < 20; pin++) {
    CHECK_EQ(rig_pin_mode(pin), pin < 14 ? FIRMATA_MODE_INPUT : FIRMATA_MODE_ANALOG);
    CHECK_EQ(rig_pin_state(pin), 0);
  }
  CHECK_EQ(board.duty_writes, 0);
  CHECK_EQ(rig_sampling_interval_ms(), 19);
  FEED(0xF9);  // and the parser still answers
  EXPECT_SENT(VERSION);
}

static void a_command_abandons_the_message_in_progress(int unused) {
  (void)unused;
  FEED(0xF4, 0x0D, 0x01, 0xF5, 0x0D);  // pin 13 output; a level write cut short...
  FEED(0xF4, 0x0C, 0x01);              // ...by SET_PIN_MODE of pin 12
  CHECK_EQ(rig_pin_mode(12), FIRMATA_MODE_OUTPUT);
  CHECK_EQ(board.level[13], 0);
  FEED(0xF0, 0x79, 0xF5, 0x0D, 0x01, 0xF7);  // a sysex cut by a command: the command runs, the sysex is dropped
  CHECK_EQ(board.level[13], 1);
  FEED(0xF0, 0x7C, 0xF0, 0x79, 0xF7);        // a sysex cut by another
  EXPECT_SENT(FIRMWARE);
  clear_sent();
  FEED(0xF4, 0x0D, 0xFF, 0x01, 0x01);        // SYSTEM_RESET in the middle: the message is gone with everything else
  CHECK_EQ(rig_pin_mode(13), FIRMATA_MODE_INPUT);
  CHECK_EQ(rig_pin_mode(1), FIRMATA_MODE_IGNORE);
  FEED(0xF0, 0x79, 0xFF, 0xF7);              // and in a sysex
  EXPECT_NOTHING_SENT();
}

static void running_status(int unused) {
  (void)unused;
  FEED(0xF4, 0x03, 0x03, 0xF4, 0x0D, 0x01);
  FEED(0xE3, 0x10, 0x00, 0x20, 0x00);  // two PWM writes, the second on the running status
  CHECK_EQ(board.duty_writes, 2);
  CHECK_EQ(board.duty[3], 0x20);
  FEED(0xE3, 0x30, 0xF9, 0x00);        // a real-time byte inside a message leaves it whole
  EXPECT_SENT(VERSION);
  clear_sent();
  CHECK_EQ(board.duty[3], 0x30);
  FEED(0x40, 0x00);                    // and the running status too
  CHECK_EQ(board.duty[3], 0x40);
  FEED(0x91, 0x20, 0x00, 0x00, 0x00, 0x20, 0x00);  // port writes: high, low, high
  CHECK_EQ(board.level[13], 1);
  FEED(0xD1, 0x01, 0x00, 0x01);        // port 1 reports: on (a report), off, on (another)
  EXPECT_SENT(0x91, 0x00, 0x00, 0x91, 0x00, 0x00);
  clear_sent();
  FEED(0xE3, 0x50, 0x00, 0xF5, 0x0D, 0x00, 0x60, 0x00);  // a system command ends the running status
  CHECK_EQ(board.duty[3], 0x50);
  CHECK_EQ(board.level[13], 0);
  FEED(0xF4, 0x0D, 0x01, 0x0D, 0x00);  // system commands have none of their own
  CHECK_EQ(rig_pin_mode(13), FIRMATA_MODE_OUTPUT);
  FEED(0xF0, 0x79, 0xF7, 0x10, 0x00);  // nor does a sysex
  EXPECT_SENT(FIRMWARE);
  CHECK_EQ(board.duty[3], 0x50);
}

// ---- Over-long sysex: read to its end and dropped, nothing written past the buffer (ASan watches).

static void over_long_sysex_is_dropped(int unused) {
  (void)unused;
  FEED(0xF4, 0x03, 0x03);
  rig_receive(0xF0);
  rig_receive(0x79);
  for (int i = 0; i < 1000; i++) rig_receive((uint8_t)(i & 0x7F));
  rig_receive(0xF7);
  EXPECT_NOTHING_SENT();
  // The longest kept: the command and FIRMATA_SYSEX_MAX payload bytes. EXTENDED_ANALOG with zero-padded value bytes.
  rig_receive(0xF0);
  rig_receive(0x6F);
  rig_receive(0x03);
  rig_receive(0x40);
  for (int i = 2; i < FIRMATA_SYSEX_MAX; i++) rig_receive(0x00);
  rig_receive(0xF7);
  CHECK_EQ(board.duty[3], 0x40);
  rig_receive(0xF0);
  rig_receive(0x6F);
  rig_receive(0x03);
  rig_receive(0x20);
  for (int i = 2; i < FIRMATA_SYSEX_MAX + 1; i++) rig_receive(0x00);
  rig_receive(0xF7);
  CHECK_EQ(board.duty[3], 0x40);  // one byte too many: dropped
  FEED(0xF0, 0x79, 0xF7);
  EXPECT_SENT(FIRMWARE);
  FEED(0xF0, 0x6F, 0x03, 0x01, 0x00, 0x00, 0x01, 0xF7);  // a value past 14 bits: the highest duty
  CHECK_EQ(board.duty[3], 255);
}

// ---- Modes.

static void unsupported_modes_are_refused(int unused) {
  (void)unused;
  static const uint8_t refused[][2] = {
    { 0x03, FIRMATA_MODE_ANALOG }, { 0x02, FIRMATA_MODE_PWM }, { 0x0D, FIRMATA_MODE_PWM }, { 0x0E, FIRMATA_MODE_PWM },
    { 0x00, FIRMATA_MODE_OUTPUT }, { 0x01, FIRMATA_MODE_INPUT }, { 0x14, FIRMATA_MODE_INPUT }, { 0x09, 0x04 /* servo */ },
    { 0x12, 0x06 /* I2C */ }, { 0x05, 0x7F },
  };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    clear_sent();
    uint8_t before = rig_pin_mode(refused[i][0]);
    FEED(0xF4, refused[i][0], refused[i][1]);
    CHECK_EQ(rig_pin_mode(refused[i][0]), before);
    // A STRING_DATA telling the host why.
    CHECK(sent_length > 3 && sent[0] == 0xF0 && sent[1] == 0x71 && sent[sent_length - 1] == 0xF7);
  }
  CHECK_EQ(board.mode[0], 0xEE);
  CHECK_EQ(board.mode[1], 0xEE);
}

static void outputs_keep_their_level_on_the_same_mode(int unused) {
  (void)unused;
  FEED(0xF4, 0x02, 0x01, 0xF5, 0x02, 0x01, 0xF4, 0x02, 0x01);
  CHECK_EQ(board.level[2], 1);
  CHECK_EQ(rig_pin_state(2), 1);
  FEED(0xF4, 0x02, 0x00, 0xF4, 0x02, 0x01);  // through another mode: driven low again
  CHECK_EQ(board.level[2], 0);
  CHECK_EQ(rig_pin_state(2), 0);
  FEED(0xF4, 0x03, 0x03, 0xE3, 0x10, 0x00, 0xF5, 0x03, 0x01);  // a level written to a PWM pin: ignored
  CHECK_EQ(board.duty[3], 0x10);
  CHECK_EQ(board.level[3], 0);
}

// ---- Reports.

static void digital_reports_only_on_change(int unused) {
  (void)unused;
  FEED(0xF4, 0x0C, 0x0B, 0xF4, 0x0D, 0x01);  // D12 pulled up, D13 output; D8-D11 inputs
  board.input[12] = 1;
  FEED(0xD1, 0x01);
  EXPECT_SENT(0x91, 0x10, 0x00);
  clear_sent();
  for (uint32_t ms = 0; ms < 100; ms++) rig_poll(ms);
  EXPECT_NOTHING_SENT();
  board.input[8] = 1;
  rig_poll(100);
  EXPECT_SENT(0x91, 0x11, 0x00);
  clear_sent();
  rig_poll(101);
  rig_poll(102);
  EXPECT_NOTHING_SENT();
  FEED(0xF5, 0x0D, 0x01);  // an output changing is no input change
  board.input[13] = 1;
  rig_poll(103);
  EXPECT_NOTHING_SENT();
  board.input[8] = 0;
  board.input[12] = 0;
  rig_poll(104);
  EXPECT_SENT(0x91, 0x00, 0x00);
  clear_sent();
  board.input[2] = 1;  // port 0 is not reported
  board.input[7] = 1;
  rig_poll(105);
  EXPECT_NOTHING_SENT();
  FEED(0xD0, 0x01);    // until asked; D7 is bit 7: the second data byte
  EXPECT_SENT(0x90, 0x04, 0x01);
  clear_sent();
  FEED(0xF4, 0x07, 0x01);  // D7 becomes an output: it leaves the report
  rig_poll(106);
  EXPECT_SENT(0x90, 0x04, 0x00);
  clear_sent();
  FEED(0xD0, 0x00);
  board.input[2] = 0;
  rig_poll(107);
  EXPECT_NOTHING_SENT();
  FEED(0xF4, 0x10, 0x00, 0xD2, 0x01);  // port 2: A2 (pin 16) as a digital input
  board.input[16] = 1;
  rig_poll(108);
  EXPECT_SENT(0x92, 0x00, 0x00, 0x92, 0x01, 0x00);
}

static void analog_reports_every_sampling_interval(int unused) {
  (void)unused;
  board.adc[0] = 512;
  board.adc[5] = 1023;
  FEED(0xF0, 0x7A, 0x0A, 0x00, 0xF7);  // 10 ms
  rig_poll(3);
  EXPECT_NOTHING_SENT();               // nothing asked for yet
  FEED(0xC0, 0x01);
  EXPECT_SENT(0xE0, 0x00, 0x04);       // at once on enabling: 512 = 0 | 4 << 7
  clear_sent();
  rig_poll(9);
  EXPECT_NOTHING_SENT();
  rig_poll(10);
  EXPECT_SENT(0xE0, 0x00, 0x04);
  clear_sent();
  FEED(0xC5, 0x01);
  EXPECT_SENT(0xE5, 0x7F, 0x07);
  clear_sent();
  for (uint32_t ms = 11; ms < 20; ms++) rig_poll(ms);
  EXPECT_NOTHING_SENT();
  board.adc[0] = 3;
  rig_poll(20);
  EXPECT_SENT(0xE0, 0x03, 0x00, 0xE5, 0x7F, 0x07);
  clear_sent();
  rig_poll(95);  // a stall: one report, then on schedule from now
  EXPECT_SENT(0xE0, 0x03, 0x00, 0xE5, 0x7F, 0x07);
  clear_sent();
  rig_poll(104);
  EXPECT_NOTHING_SENT();
  FEED(0xC0, 0x00, 0xC5, 0x00);
  rig_poll(200);
  EXPECT_NOTHING_SENT();
  FEED(0xF0, 0x7A, 0x00, 0x00, 0xF7);  // 0 ms is raised to the least
  CHECK_EQ(rig_sampling_interval_ms(), RIG_MIN_SAMPLING_INTERVAL_MS);
  FEED(0xF0, 0x7A, 0x05, 0xF7);        // too short to hold an interval: ignored
  CHECK_EQ(rig_sampling_interval_ms(), RIG_MIN_SAMPLING_INTERVAL_MS);
}

static void pwm_duty_clamps(int unused) {
  (void)unused;
  FEED(0xF4, 0x0B, 0x03);
  CHECK_EQ(board.mode[11], FIRMATA_MODE_PWM);
  FEED(0xEB, 0x7F, 0x7F);  // 16383: past 8 bits
  CHECK_EQ(board.duty[11], 255);
  FEED(0xEB, 0x00, 0x00);
  CHECK_EQ(board.duty[11], 0);
  FEED(0xEB, 0x7E, 0x01);  // 254
  CHECK_EQ(board.duty[11], 254);
  CHECK_EQ(rig_pin_state(11), 254);
}

int main(void) {
  case_setup = power_on;
  setvbuf(stdout, 0, _IOLBF, 0);
  run_case("the rig announces its version and firmware at start", announces_itself, 0);
  for (int i = 0; i < MESSAGES; i++) {
    char name[120];
    snprintf(name, sizeof name, "%s, whole", messages[i].name);
    run_case(name, message_whole, i);
    snprintf(name, sizeof name, "%s, split at every byte boundary", messages[i].name);
    run_case(name, message_split_everywhere, i);
  }
  run_case("CAPABILITY_RESPONSE byte for byte", capability_response, 0);
  run_case("PIN_STATE_RESPONSE byte for byte", pin_state_responses, 0);
  run_case("garbage is ignored", garbage_is_ignored, 0);
  run_case("a command abandons the message in progress", a_command_abandons_the_message_in_progress, 0);
  run_case("MIDI running status", running_status, 0);
  run_case("an over-long sysex is dropped", over_long_sysex_is_dropped, 0);
  run_case("unsupported modes are refused", unsupported_modes_are_refused, 0);
  run_case("an output keeps its level when set to the same mode", outputs_keep_their_level_on_the_same_mode, 0);
  run_case("digital reports only on change", digital_reports_only_on_change, 0);
  run_case("analog reports every sampling interval", analog_reports_every_sampling_interval, 0);
  run_case("PWM duty clamps to 8 bits", pwm_duty_clamps, 0);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
