// The pen's main() on this machine: wires the logic's hooks into the fake board, feeds received bytes to the link,
// runs the main-loop pass per millisecond; and a host side that frames commands and reads the replies.
#include <string.h>      // memset, memcpy
#include "fake_pen.h"    // fake_pen_boot
#include "fake_board.h"  // fake
#include "board.h"       // board_init, TIMEBASE_TICKS_PER_MS
#include "uart.h"        // uart_init, uart_write
#include "safety.h"      // safety_init, safety_poll, hooks
#include "stepper.h"     // stepper_init
#include "motor.h"       // motor_init
#include "sensors.h"     // sensors_init
#include "storage.h"     // storage_init, storage_poll
#include "commands.h"    // commands_init, commands_telemetry
#include "protocol.h"    // FRAME_*, PEN_STATE_FAULT
#include "pen_config.h"  // TELEMETRY_PERIOD_MS

struct link_parser fake_pen_parser;
struct link_session fake_pen_session;
uint8_t fake_host_seq;
static uint32_t last_byte_ticks, last_telemetry_ms;
static uint8_t report_now;

// main.c's link hooks.
void link_transmit(const uint8_t *frame, uint8_t length) { uart_write(frame, length); }
void link_stop_now(void) { safety_stop(); }

void fake_pen_boot(void) {
  memset(&fake_pen_parser, 0, sizeof fake_pen_parser);
  memset(&fake_pen_session, 0, sizeof fake_pen_session);
  last_byte_ticks = last_telemetry_ms = 0;
  report_now = 0;
  fake_host_seq = 0;
  board_init(safety_tick_1khz);
  uart_init(safety_on_stop_byte);
  sensors_init(safety_on_interlock);
  stepper_init();
  storage_init();
  motor_init();
  commands_init(&fake_pen_parser);
  safety_init(board_reset_cause());
}

void fake_pen_receive(const uint8_t *bytes, size_t length) {
  for (size_t i = 0; i < length; i++) {
    if (bytes[i] == FRAME_STOP) {
      fake.on_stop_byte();  // uart.c: acted on in the receive interrupt, never buffered
      continue;
    }
    last_byte_ticks = fake.ticks;
    enum link_feed_result result = link_feed(&fake_pen_parser, bytes[i]);
    if (result == LINK_FRAME_READY) link_on_frame(&fake_pen_session, fake_pen_parser.frame);
    else if (result == LINK_FRAME_BAD) link_on_bad_frame(&fake_pen_session);
  }
}

// As main.c: periodic, and at once when a fault was latched.
static void send_telemetry_when_due(uint32_t now) {
  report_now |= safety_take_report();
  if (!report_now && now - last_telemetry_ms < TELEMETRY_PERIOD_MS) return;
  uint8_t payload[LINK_REPLY_MAX];
  uint8_t length = commands_telemetry(payload);
  if (uart_tx_free() < LINK_WIRE_BYTES(length)) return;
  last_telemetry_ms = now;
  report_now = 0;
  link_send_event(&fake_pen_session, payload, length);
}

void fake_pen_loop_pass(void) {
  if (fake.ticks - last_byte_ticks >= FRAME_IDLE_TIMEOUT_MS * TIMEBASE_TICKS_PER_MS && link_drop_partial(&fake_pen_parser)) {
    link_on_bad_frame(&fake_pen_session);
  }
  uint32_t now = fake.now_ms;
  safety_poll(now);
  storage_poll();
  send_telemetry_when_due(now);
  fake.status_led = (uint8_t)((now / (safety_state() == PEN_STATE_FAULT ? 100 : 500)) & 1);
}

void fake_pen_advance_ms(uint32_t ms) {
  while (ms--) {
    fake.now_ms++;
    fake.ticks += TIMEBASE_TICKS_PER_MS;
    fake.tick_1khz();
    fake_pen_loop_pass();
  }
}

int fake_host_frame(uint8_t seq_byte, const void *payload, uint8_t length, uint8_t *reply_seq, uint8_t *reply) {
  uint8_t wire[LINK_WIRE_MAX_BYTES];
  uint8_t wire_length = link_encode(wire, seq_byte, payload, length);
  uint32_t start = fake.tx_length;
  fake_pen_receive(wire, wire_length);
  // The pen's answer: the last reply or NAK among what it sent (telemetry events aside).
  struct link_parser host = {0};
  int answer = -1;
  for (uint32_t i = start; i < fake.tx_length; i++) {
    if (link_feed(&host, fake.tx[i]) != LINK_FRAME_READY) continue;
    uint8_t kind = host.frame[1] & 0xF0;
    if (kind != FRAME_KIND_REPLY && kind != FRAME_KIND_NAK) continue;
    answer = host.frame[0] - FRAME_MIN_BYTES;
    if (reply_seq) *reply_seq = host.frame[1];
    if (reply) memcpy(reply, host.frame + 2, (size_t)answer);
  }
  return answer;
}

uint8_t fake_host_sync(void) {
  fake_host_seq = 0;
  uint8_t seq_byte = 0;
  return fake_host_frame(FRAME_KIND_SYNC, 0, 0, &seq_byte, 0) == 0 && seq_byte == FRAME_KIND_REPLY;
}

int fake_host_command(const void *payload, uint8_t length, uint8_t *reply) {
  uint8_t seq = fake_host_seq;
  fake_host_seq = (uint8_t)((fake_host_seq + 1) & 0x0F);
  return fake_host_frame((uint8_t)(FRAME_KIND_DATA | seq), payload, length, 0, reply);
}
