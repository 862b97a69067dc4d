// Framed link: frame parser, CRC16-CCITT, sequence numbers with reply replay, frame encoder.
#include <string.h> // memcpy
#include "link.h"   // struct link_parser, struct link_session

// CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection (check value 0x29B1 for "123456789").
uint16_t crc16_ccitt(const uint8_t *data, uint8_t length) {
  uint16_t crc = 0xFFFF;
  while (length--) {
    crc ^= (uint16_t)(*data++) << 8;
    for (uint8_t bit = 0; bit < 8; bit++) crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
  }
  return crc;
}

static enum link_feed_result reject(struct link_parser *parser, uint8_t last_byte) {
  parser->bad_frames++;
  parser->length = 0;
  // A frame that ended on a sync byte leaves us aligned; otherwise skip to the next sync.
  parser->discarding = last_byte != FRAME_SYNC;
  return LINK_FRAME_BAD;
}

enum link_feed_result link_feed(struct link_parser *parser, uint8_t byte) {
  if (parser->discarding) {
    parser->dropped_bytes++;
    if (byte == FRAME_SYNC) parser->discarding = 0;
    return LINK_PENDING;
  }
  if (parser->length == 0) {
    if (byte == FRAME_SYNC) return LINK_PENDING;  // idle fill between frames
    if (byte < FRAME_MIN_BYTES || byte > FRAME_MAX_BYTES) {
      parser->dropped_bytes++;
      return reject(parser, byte);
    }
  }
  parser->frame[parser->length++] = byte;
  if (parser->length < parser->frame[0]) return LINK_PENDING;
  uint8_t length = parser->length;
  if (byte != FRAME_SYNC) return reject(parser, byte);
  uint16_t crc = crc16_ccitt(parser->frame, length - 3);
  if (parser->frame[length - 3] != (crc >> 8) || parser->frame[length - 2] != (crc & 0xFF)) return reject(parser, byte);
  parser->length = 0;
  return LINK_FRAME_READY;
}

uint8_t link_drop_partial(struct link_parser *parser) {
  parser->discarding = 0;  // after idle, the next byte starts a frame
  if (parser->length == 0) return 0;
  parser->dropped_bytes += parser->length;
  parser->bad_frames++;
  parser->length = 0;
  return 1;
}

uint8_t link_encode(uint8_t *out, uint8_t seq_byte, const uint8_t *payload, uint8_t payload_length) {
  uint8_t length = payload_length + FRAME_MIN_BYTES;
  out[0] = length;
  out[1] = seq_byte;
  if (payload_length) memcpy(out + 2, payload, payload_length);  // NAK and sync replies have no payload (and a null pointer)
  uint16_t crc = crc16_ccitt(out, payload_length + 2);
  out[length - 3] = crc >> 8;
  out[length - 2] = crc & 0xFF;
  out[length - 1] = FRAME_SYNC;
  return length;
}

static void send(uint8_t seq_byte, const uint8_t *payload, uint8_t payload_length) {
  uint8_t frame[FRAME_MAX_BYTES];
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
