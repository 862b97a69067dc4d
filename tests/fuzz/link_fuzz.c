// Fuzzes the firmware's link layer (src/link.c) on the host under ASan/UBSan: random, mutated and truncated
// byte streams through the parser and the sequence logic, checking its invariants after every byte.
#include <stdio.h>   // printf
#include <stdlib.h>  // strtoul
#include <string.h>  // memcpy
#include "link.h"    // link_feed, link_on_frame

static unsigned executed, transmitted, stops;
static uint32_t rng_state;

static uint32_t next_random(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 17;
  rng_state ^= rng_state << 5;
  return rng_state;
}

void link_transmit(const uint8_t *frame, uint8_t length) {
  // Every frame the pen sends must itself be well formed.
  struct link_parser check = {0};
  enum link_feed_result result = LINK_PENDING;
  for (uint8_t i = 0; i < length; i++) result = link_feed(&check, frame[i]);
  if (result != LINK_FRAME_READY || length > FRAME_MAX_BYTES) {
    printf("transmitted a malformed frame of %u bytes\n", length);
    exit(1);
  }
  transmitted++;
}

uint8_t link_execute(const uint8_t *request, uint8_t length, uint8_t *reply) {
  executed++;
  uint8_t reply_length = length < LINK_REPLY_MAX ? length : LINK_REPLY_MAX;
  memcpy(reply, request, reply_length);  // echo: exercises the replay buffer at every length
  return reply_length;
}

void link_stop_now(void) { stops++; }

int main(int argc, char **argv) {
  unsigned long iterations = argc > 1 ? strtoul(argv[1], 0, 10) : 20000;
  rng_state = argc > 2 ? (uint32_t)strtoul(argv[2], 0, 10) : 12345;
  struct link_parser parser = {0};
  struct link_session session = {0};
  uint8_t frame[FRAME_MAX_BYTES + 8], payload[FRAME_MAX_PAYLOAD];
  unsigned long bytes = 0, good = 0;
  for (unsigned long i = 0; i < iterations; i++) {
    uint8_t length;
    if (next_random() % 3 == 0) {
      // Pure noise.
      length = (uint8_t)(next_random() % sizeof frame);
      for (uint8_t b = 0; b < length; b++) frame[b] = (uint8_t)next_random();
    } else {
      // A valid frame, then perhaps mutated (a flipped bit) or truncated.
      uint8_t payload_length = (uint8_t)(next_random() % (FRAME_MAX_PAYLOAD + 1));
      for (uint8_t b = 0; b < payload_length; b++) payload[b] = (uint8_t)next_random();
      uint8_t kinds[] = { FRAME_KIND_DATA, FRAME_KIND_DATA, FRAME_KIND_SYNC, (uint8_t)next_random() };
      // Half the time the sequence number the pen expects, so that commands get executed and replayed too.
      uint8_t seq = next_random() % 2 ? session.expected_seq : (uint8_t)(next_random() & 0x0F);
      length = link_encode(frame, (uint8_t)(kinds[next_random() % 4] | seq), payload, payload_length);
      if (next_random() % 4 == 0) frame[next_random() % length] ^= (uint8_t)(1u << (next_random() % 8));
      if (next_random() % 8 == 0) length = (uint8_t)(next_random() % length);
    }
    for (uint8_t b = 0; b < length; b++) {
      enum link_feed_result result = link_feed(&parser, frame[b]);
      bytes++;
      if (parser.length > FRAME_MAX_BYTES || session.expected_seq > 0x0F) {
        printf("invariant broken after %lu bytes\n", bytes);
        return 1;
      }
      if (result == LINK_FRAME_READY) {
        good++;
        link_on_frame(&session, parser.frame);
      } else if (result == LINK_FRAME_BAD) {
        link_on_bad_frame(&session);
      }
    }
    if (next_random() % 16 == 0 && link_drop_partial(&parser)) link_on_bad_frame(&session);  // the line went idle
  }
  printf("fuzz: %lu bytes, %lu good frames, %u executed, %u transmitted, %u stops, %u bad frames\n",
         bytes, good, executed, transmitted, stops, parser.bad_frames);
  printf("1 passed, 0 failed\n");
  return good == 0 || executed == 0 ? 1 : 0;
}
