// Framed link: byte-stuffed frame parser and encoder, sequence numbers with reply replay.
#pragma once
#include <stdint.h> // uint8_t
#include "protocol.h" // FRAME_MAX_BYTES, SEQ_WINDOW

#define LINK_REPLY_MAX 40
// A frame on the wire: opening and closing sync, every byte possibly escaped.
#define LINK_WIRE_BYTES(payload_length) (2 + 2 * ((payload_length) + FRAME_MIN_BYTES))
#define LINK_WIRE_MAX_BYTES LINK_WIRE_BYTES(FRAME_MAX_PAYLOAD)

enum link_feed_result { LINK_PENDING, LINK_FRAME_READY, LINK_FRAME_BAD };

struct link_parser {
  uint8_t frame[FRAME_MAX_BYTES];
  uint8_t length;      // bytes collected of the current frame, unescaped
  uint8_t escaped;     // the last byte was the escape byte
  uint8_t discarding;  // after an overlong frame: drop bytes until the next sync byte
  uint16_t bad_frames;
  uint16_t dropped_bytes;
};

struct link_session {
  uint8_t expected_seq;
  uint8_t replay_length[SEQ_WINDOW];
  uint8_t replay[SEQ_WINDOW][LINK_REPLY_MAX];
};

enum link_feed_result link_feed(struct link_parser *parser, uint8_t byte);
// Drops a partial frame (the line went idle mid-frame); returns 1 if there was one.
uint8_t link_drop_partial(struct link_parser *parser);
// Writes the frame as it goes on the wire (at most LINK_WIRE_MAX_BYTES); returns its length.
uint8_t link_encode(uint8_t *out, uint8_t seq_byte, const uint8_t *payload, uint8_t payload_length);

// Implemented by the caller: queue a whole frame for transmission.
void link_transmit(const uint8_t *frame, uint8_t length);
// Implemented by the caller: answer one command payload; returns the reply length.
uint8_t link_execute(const uint8_t *request, uint8_t length, uint8_t *reply);
// Implemented by the caller: the STOP path, run as soon as a valid STOP frame arrives.
void link_stop_now(void);

// Handle one complete, CRC-checked frame from the parser.
void link_on_frame(struct link_session *session, const uint8_t *frame);
void link_on_bad_frame(struct link_session *session);
// Send an unsolicited event frame (telemetry).
void link_send_event(const struct link_session *session, const uint8_t *payload, uint8_t length);
