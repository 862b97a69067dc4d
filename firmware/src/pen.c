// Pen: the firmware's start-up order and its main-loop pass, apart from main() so that the host build runs them too.
#include "pen.h"         // pen_init, pen_take_bytes, pen_housekeeping
#include "board.h"       // board_init, clock_ms, timebase_ticks, board_status_led
#include "uart.h"        // uart_init, uart_read, uart_write, uart_tx_free
#include "safety.h"      // safety_init, safety_poll, hooks
#include "stepper.h"     // stepper_init
#include "motor.h"       // motor_init, motor_on
#include "sensors.h"     // sensors_init
#include "storage.h"     // storage_init, storage_poll
#include "auth.h"        // auth_init, auth_poll
#include "parts.h"       // parts_init, parts_poll
#include "usage.h"       // usage_init, usage_poll
#include "commands.h"    // commands_init, commands_telemetry
#include "protocol.h"    // PEN_STATE_FAULT, PEN_STATE_RUNNING, FRAME_IDLE_TIMEOUT_MS
#include "pen_config.h"  // TELEMETRY_PERIOD_MS

static struct link_parser parser;
static struct link_session session;
static uint32_t last_byte_ticks;
static uint32_t last_telemetry_ms;
static uint8_t telemetry_now;

void link_transmit(const uint8_t *frame, uint8_t length) { uart_write(frame, length); }
void link_stop_now(void) { safety_stop(); }

const struct link_parser *pen_link_parser(void) { return &parser; }
const struct link_session *pen_link_session(void) { return &session; }

void pen_init(void) {
  board_init(safety_tick_1khz);
  uart_init(safety_on_stop_byte);
  sensors_init(safety_on_interlock);
  stepper_init();
  storage_init();
  auth_init();  // after storage_init: it queues the boot count's write
  usage_init();
  motor_init();
  parts_init();  // after sensors_init: it reads the cartridge switch
  commands_init(&parser);
  safety_init(board_reset_cause());
}

void pen_take_bytes(void) {
  uint8_t byte;
  while (uart_read(&byte)) {
    last_byte_ticks = timebase_ticks();
    enum link_feed_result result = link_feed(&parser, byte);
    if (result == LINK_FRAME_READY) link_on_frame(&session, parser.frame);
    else if (result == LINK_FRAME_BAD) link_on_bad_frame(&session);
  }
}

// Periodic, and at once when a fault is latched so the host hears of it without waiting a period.
static void send_telemetry_when_due(uint32_t now) {
  telemetry_now |= safety_take_report();
  if (!telemetry_now && now - last_telemetry_ms < TELEMETRY_PERIOD_MS) return;
  uint8_t payload[LINK_REPLY_MAX];
  uint8_t length = commands_telemetry(payload);
  // Telemetry never waits for room: a reply may be draining, and the next record comes soon.
  if (uart_tx_free() < LINK_WIRE_BYTES(length)) return;
  last_telemetry_ms = now;
  telemetry_now = 0;
  link_send_event(&session, payload, length);
}

void pen_housekeeping(void) {
  // Timed in timer ticks, not milliseconds, so the drop comes FRAME_IDLE_TIMEOUT_MS after the last byte, not up to 1 ms later.
  if (timebase_ticks() - last_byte_ticks >= FRAME_IDLE_TIMEOUT_MS * TIMEBASE_TICKS_PER_MS && link_drop_partial(&parser)) {
    link_on_bad_frame(&session);
  }
  uint32_t now = clock_ms();
  safety_poll(now);
  auth_poll(now);
  storage_poll();
  usage_poll(now, safety_state() == PEN_STATE_RUNNING && motor_on());
  parts_poll(now);
  send_telemetry_when_due(now);
  // Slow blink while healthy, fast blink with a fault latched.
  board_status_led((now / (safety_state() == PEN_STATE_FAULT ? 100 : 500)) & 1);
}
