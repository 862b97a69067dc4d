// The pen's main() on this machine, over the fake board: src/pen.c's start-up and main-loop pass, driven a byte and a
// millisecond at a time; and a host side that frames commands and reads the replies.
#pragma once
#include <stddef.h>  // size_t
#include <stdint.h>  // uint8_t

// main()'s start, with fake.reset_cause: every module initialised in main.c's order.
void fake_pen_boot(void);
// Bytes arriving on the UART: the STOP byte runs the receive interrupt's hook at once; the others go through the
// main loop's parse (link_feed, then link_on_frame or link_on_bad_frame). No main-loop pass runs after them.
void fake_pen_receive(const uint8_t *bytes, size_t length);
// One main-loop pass with no byte waiting: the idle drop of a partial frame, safety_poll, storage_poll, telemetry.
void fake_pen_loop_pass(void);
// Time passes: per millisecond the clock and timebase advance, the 1 kHz tick hook runs, then one main-loop pass.
void fake_pen_advance_ms(uint32_t ms);

// Host side. Sends a sync frame (the host's sequence restarts at 0); returns 1 when the pen answered it.
uint8_t fake_host_sync(void);
// Sends one frame (seq_byte = kind | seq) and returns the payload length of the pen's reply or NAK to it, copying the
// payload to reply and its seq byte to *reply_seq; -1 when the pen sent none.
int fake_host_frame(uint8_t seq_byte, const void *payload, uint8_t length, uint8_t *reply_seq, uint8_t *reply);
// Sends a data frame with the host's next sequence number; returns the reply payload length or -1.
int fake_host_command(const void *payload, uint8_t length, uint8_t *reply);
// The sequence number fake_host_command uses next.
extern uint8_t fake_host_seq;
