// Main loop: feeds received bytes to the link, sends telemetry, blinks the status LED, kicks the watchdog.
#include <avr/interrupt.h> // sei
#include "board.h"         // board_init
#include "uart.h"          // uart_read
#include "link.h"          // link_feed
#include "safety.h"        // safety_init, safety_poll
#include "stepper.h"       // stepper_init
#include "motor.h"         // motor_init
#include "sensors.h"       // sensors_init
#include "storage.h"       // storage_init, storage_poll
#include "calibration.h"   // calibration_window_max_steps
#include "commands.h"      // commands_telemetry, clock_ms
#include "protocol.h"      // PEN_STATE_FAULT
#include "pen_config.h"    // TELEMETRY_PERIOD_MS

static struct link_parser parser;
static struct link_session session;

void link_transmit(const uint8_t *frame, uint8_t length) { uart_write(frame, length); }
void link_stop_now(void) { safety_stop(); }
void uart_stop_header_received(void) {
  motor_off_now();
  safety_request_stop();
}
uint16_t link_bad_frames(void) { return parser.bad_frames; }
uint16_t link_dropped_bytes(void) { return parser.dropped_bytes + uart_rx_overruns(); }

// Periodic, and at once when a fault is latched so the host hears of it without waiting a period.
static void send_telemetry_when_due(uint32_t now) {
  static uint32_t last_sent_ms;
  static uint8_t report_now;
  report_now |= safety_take_report();
  if (!report_now && now - last_sent_ms < TELEMETRY_PERIOD_MS) return;
  uint8_t payload[LINK_REPLY_MAX];
  uint8_t length = commands_telemetry(payload);
  // Telemetry never waits for room: a reply may be draining, and the next record comes soon.
  if (uart_tx_free() < length + FRAME_MIN_BYTES) return;
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
  uint32_t last_byte_ms = 0;
  board_init();
  uart_init();
  sensors_init();
  stepper_init();
  storage_init();
  stepper_set_limit_steps(calibration_window_max_steps());
  motor_init();
  safety_init(board_reset_cause());
  sei();
  for (;;) {
    board_watchdog_kick();
    uint32_t now = clock_ms();
    uint8_t byte;
    while (uart_read(&byte)) {
      last_byte_ms = now;
      enum link_feed_result result = link_feed(&parser, byte);
      if (result == LINK_FRAME_READY) link_on_frame(&session, parser.frame);
      else if (result == LINK_FRAME_BAD) link_on_bad_frame(&session);
    }
    if (now - last_byte_ms > FRAME_IDLE_TIMEOUT_MS && link_drop_partial(&parser)) link_on_bad_frame(&session);
    safety_poll(now);
    storage_poll();
    send_telemetry_when_due(now);
    blink_status_led(now);
  }
}
