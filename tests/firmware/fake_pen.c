// The pen's main() on this machine, over the fake board: src/pen.c's start-up and main-loop pass, driven a byte and a
// millisecond at a time; and a host side that frames commands and reads the replies.
#include <string.h>      // memcpy
#include "fake_pen.h"    // fake_pen_boot
#include "fake_board.h"  // fake
#include "board.h"       // TIMEBASE_TICKS_PER_MS
#include "pen.h"         // pen_init, pen_take_bytes, pen_housekeeping
#include "protocol.h"    // FRAME_*

uint8_t fake_host_seq;

void fake_pen_boot(void) {
  fake_host_seq = 0;
  pen_init();
}

void fake_pen_receive(const uint8_t *bytes, size_t length) {
  for (size_t i = 0; i < length; i++) {
    if (bytes[i] == FRAME_STOP) {
      fake.on_stop_byte();  // uart.c: acted on in the receive interrupt, never buffered
      continue;
    }
    fake.rx[fake.rx_head++] = bytes[i];
    pen_take_bytes();  // the main loop takes each byte as it lands, before the next one
  }
}

void fake_pen_loop_pass(void) { pen_housekeeping(); }

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
