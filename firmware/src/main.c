// Main loop: wires the register layer's hooks to the logic, feeds received bytes to the link, drops a partial frame
// after line silence, sends telemetry, blinks the status LED, kicks the watchdog.
#include <avr/interrupt.h> // sei
#include "board.h"         // board_init, clock_ms, timebase_ticks
#include "uart.h"          // uart_init, uart_read
#include "link.h"          // link_feed
#include "safety.h"        // safety_init, safety_poll, hooks
#include "stepper.h"       // stepper_init
#include "motor.h"         // motor_init
#include "sensors.h"       // sensors_init
#include "storage.h"       // storage_init, storage_poll
#include "commands.h"      // commands_init, commands_telemetry
#include "protocol.h"      // PEN_STATE_FAULT, FRAME_IDLE_TIMEOUT_MS
#include "pen_config.h"    // TELEMETRY_PERIOD_MS

static struct link_parser parser;
static struct link_session session;

void link_transmit(const uint8_t *frame, uint8_t length) { uart_write(frame, length); }
void link_stop_now(void) { safety_stop(); }

// Periodic, and at once when a fault is latched so the host hears of it without waiting a period.
static void send_telemetry_when_due(uint32_t now) {
  static uint32_t last_sent_ms;
  static uint8_t report_now;
  report_now |= safety_take_report();
  if (!report_now && now - last_sent_ms < TELEMETRY_PERIOD_MS) return;
  uint8_t payload[LINK_REPLY_MAX];
  uint8_t length = commands_telemetry(payload);
  // Telemetry never waits for room: a reply may be draining, and the next record comes soon.
  if (uart_tx_free() < LINK_WIRE_BYTES(length)) return;
  last_sent_ms = now;
  report_now = 0;
  link_send_event(&session, payload, length);
}

// Slow blink while healthy, fast blink with a fault latched.
static void blink_status_led(uint32_t now) {
  uint16_t half_period_ms = safety_state() == PEN_STATE_FAULT ? 100 : 500;
  board_status_led((now / half_period_ms) & 1);
}

int main(void) {
  uint32_t last_byte_ticks = 0;
  board_init(safety_tick_1khz);
  uart_init(safety_on_stop_byte);
  sensors_init(safety_on_interlock);
  stepper_init();
  storage_init();
  motor_init();
  commands_init(&parser);
  safety_init(board_reset_cause());
  sei();
  for (;;) {
    board_watchdog_kick();
    uint8_t byte;
    while (uart_read(&byte)) {
      last_byte_ticks = timebase_ticks();
      enum link_feed_result result = link_feed(&parser, byte);
      if (result == LINK_FRAME_READY) link_on_frame(&session, parser.frame);
      else if (result == LINK_FRAME_BAD) link_on_bad_frame(&session);
    }
    // Timed in timer ticks, not milliseconds, so the drop comes FRAME_IDLE_TIMEOUT_MS after the last byte, not up to 1 ms later.
    if (timebase_ticks() - last_byte_ticks >= FRAME_IDLE_TIMEOUT_MS * TIMEBASE_TICKS_PER_MS && link_drop_partial(&parser)) {
      link_on_bad_frame(&session);
    }
    uint32_t now = clock_ms();
    safety_poll(now);
    storage_poll();
    send_telemetry_when_due(now);
    blink_status_led(now);
  }
}
