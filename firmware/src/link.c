// Framed link: byte-stuffed frame parser and encoder, sequence numbers with reply replay.
#include <string.h> // memcpy
#include "link.h"   // struct link_parser, struct link_session
#include "crc16.h"  // crc16_ccitt

static enum link_feed_result reject(struct link_parser *parser, uint8_t skip_to_sync) {
  parser->bad_frames++;
  parser->dropped_bytes += parser->length;
  parser->length = 0;
  parser->escaped = 0;
  parser->discarding = skip_to_sync;
  return LINK_FRAME_BAD;
}

enum link_feed_result link_feed(struct link_parser *parser, uint8_t byte) {
  if (byte == FRAME_STOP) return LINK_PENDING;  // acted on upstream (the receive interrupt); never part of a frame
  if (byte == FRAME_SYNC) {
    if (parser->discarding) {
      parser->discarding = 0;
      return LINK_PENDING;
    }
    if (parser->length == 0 && !parser->escaped) return LINK_PENDING;  // an opening flag, or idle fill
    uint8_t length = parser->length;
    if (parser->escaped || length < FRAME_MIN_BYTES || parser->frame[0] != length) return reject(parser, 0);
    uint16_t crc = crc16_ccitt(parser->frame, length - 2);
    if (parser->frame[length - 2] != (crc >> 8) || parser->frame[length - 1] != (crc & 0xFF)) return reject(parser, 0);
    parser->length = 0;
    return LINK_FRAME_READY;
  }
  if (parser->discarding) {
    parser->dropped_bytes++;
    return LINK_PENDING;
  }
  if (byte == FRAME_ESCAPE && !parser->escaped) {
    parser->escaped = 1;
    return LINK_PENDING;
  }
  if (parser->escaped) {
    byte ^= FRAME_ESCAPE_XOR;
    parser->escaped = 0;
  }
  if (parser->length == FRAME_MAX_BYTES) return reject(parser, 1);  // too long to be a frame
  parser->frame[parser->length++] = byte;
  return LINK_PENDING;
}

uint8_t link_drop_partial(struct link_parser *parser) {
  if (parser->length == 0 && !parser->escaped) return 0;
  reject(parser, 0);
  return 1;
}

static uint8_t needs_escape(uint8_t byte) { return byte == FRAME_SYNC || byte == FRAME_ESCAPE || byte == FRAME_STOP; }

uint8_t link_encode(uint8_t *out, uint8_t seq_byte, const uint8_t *payload, uint8_t payload_length) {
  uint8_t frame[FRAME_MAX_BYTES];
  uint8_t length = payload_length + FRAME_MIN_BYTES;
  frame[0] = length;
  frame[1] = seq_byte;
  if (payload_length) memcpy(frame + 2, payload, payload_length);  // NAK and sync replies have no payload (and a null pointer)
  uint16_t crc = crc16_ccitt(frame, length - 2);
  frame[length - 2] = crc >> 8;
  frame[length - 1] = crc & 0xFF;
  uint8_t written = 0;
  out[written++] = FRAME_SYNC;
  for (uint8_t i = 0; i < length; i++) {
    if (needs_escape(frame[i])) {
      out[written++] = FRAME_ESCAPE;
      out[written++] = frame[i] ^ FRAME_ESCAPE_XOR;
    } else {
      out[written++] = frame[i];
    }
  }
  out[written++] = FRAME_SYNC;
  return written;
}

static void send(uint8_t seq_byte, const uint8_t *payload, uint8_t payload_length) {
  uint8_t frame[LINK_WIRE_MAX_BYTES];
  link_transmit(frame, link_encode(frame, seq_byte, payload, payload_length));
}

void link_on_bad_frame(struct link_session *session) {
  send(FRAME_KIND_NAK | session->expected_seq, 0, 0);
}

void link_send_event(const struct link_session *session, const uint8_t *payload, uint8_t length) {
  send(FRAME_KIND_EVENT | session->expected_seq, payload, length);
}

void link_on_frame(struct link_session *session, const uint8_t *frame) {
  uint8_t kind = frame[1] & 0xF0;
  uint8_t seq = frame[1] & 0x0F;
  const uint8_t *payload = frame + 2;
  uint8_t payload_length = frame[0] - FRAME_MIN_BYTES;

  if (kind == FRAME_KIND_SYNC) {
    memset(session, 0, sizeof *session);
    send(FRAME_KIND_REPLY, 0, 0);
    return;
  }
  if (kind != FRAME_KIND_DATA || payload_length == 0) {
    link_on_bad_frame(session);
    return;
  }
  // STOP skips the sequence check: a retransmitted or out-of-order STOP still stops.
  if (payload[0] == MSG_STOP) link_stop_now();

  uint8_t slot = seq % SEQ_WINDOW;
  uint8_t reply_seq = FRAME_KIND_REPLY | ((seq + 1) & 0x0F);
  if (seq == session->expected_seq) {
    uint8_t reply_length = link_execute(payload, payload_length, session->replay[slot]);
    session->replay_length[slot] = reply_length;
    session->expected_seq = (seq + 1) & 0x0F;
    send(reply_seq, session->replay[slot], reply_length);
    return;
  }
  uint8_t behind = (session->expected_seq - seq) & 0x0F;
  if (behind >= 1 && behind <= SEQ_WINDOW && session->replay_length[slot] != 0) {
    // Our reply was lost: answer again without executing twice.
    send(reply_seq, session->replay[slot], session->replay_length[slot]);
    return;
  }
  link_on_bad_frame(session);
}
