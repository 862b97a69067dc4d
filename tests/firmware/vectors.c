// Checks the firmware's link code (src/link.c), built for this machine, against tests/vectors/frames.txt.
#include <stdio.h>  // fopen, printf
#include <string.h> // strcmp, memcmp
#include "link.h"   // link_feed, link_encode
#include "crc16.h"  // crc16_ccitt

// The link's hooks into the rest of the firmware are not exercised by the vectors.
void link_transmit(const uint8_t *frame, uint8_t length) { (void)frame; (void)length; }
uint8_t link_execute(const uint8_t *request, uint8_t length, uint8_t *reply) { (void)request; (void)length; (void)reply; return 0; }
void link_stop_now(void) {}

static int passed, failed;

static int parse_hex(const char *text, uint8_t *out, int capacity) {
  if (strcmp(text, "-") == 0) return 0;
  int length = 0;
  unsigned value;
  while (text[0] && text[1] && length < capacity && sscanf(text, "%2x", &value) == 1) {
    out[length++] = (uint8_t)value;
    text += 2;
  }
  return length;
}

static void check(int ok, int line, const char *what) {
  if (ok) passed++;
  else {
    failed++;
    printf("line %d: %s\n", line, what);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s tests/vectors/frames.txt\n", argv[0]);
    return 2;
  }
  FILE *file = fopen(argv[1], "r");
  if (!file) {
    perror(argv[1]);
    return 2;
  }
  char line[1024], kind[16], a[512], b[512], c[512];
  uint8_t bytes_a[256], bytes_b[256], bytes_c[256];
  for (int number = 1; fgets(line, sizeof line, file); number++) {
    if (line[0] == '#' || line[0] == '\n') continue;
    int fields = sscanf(line, "%15s %511s %511s %511s", kind, a, b, c);
    if (strcmp(kind, "crc") == 0 && fields == 3) {
      int length = parse_hex(a, bytes_a, sizeof bytes_a);
      unsigned expected;
      sscanf(b, "%x", &expected);
      check(crc16_ccitt(bytes_a, (uint8_t)length) == expected, number, "crc differs");
    } else if (strcmp(kind, "frame") == 0 && fields == 4) {
      parse_hex(a, bytes_a, 1);
      int payload_length = parse_hex(b, bytes_b, sizeof bytes_b);
      int frame_length = parse_hex(c, bytes_c, sizeof bytes_c);
      uint8_t encoded[LINK_WIRE_MAX_BYTES];
      uint8_t length = link_encode(encoded, bytes_a[0], bytes_b, (uint8_t)payload_length);
      check(length == frame_length && memcmp(encoded, bytes_c, length) == 0, number, "encoder output differs");
      struct link_parser parser = {0};
      enum link_feed_result result = LINK_PENDING;
      for (int i = 0; i < frame_length; i++) result = link_feed(&parser, bytes_c[i]);
      check(result == LINK_FRAME_READY && parser.frame[1] == bytes_a[0] &&
                memcmp(parser.frame + 2, bytes_b, payload_length) == 0, number, "parser did not accept the frame");
    } else if (strcmp(kind, "stream") == 0 && fields == 4) {
      int length = parse_hex(a, bytes_a, sizeof bytes_a);
      int want_good, want_bad, good = 0, bad = 0;
      sscanf(b, "%d", &want_good);
      sscanf(c, "%d", &want_bad);
      struct link_parser parser = {0};
      for (int i = 0; i < length; i++) {
        enum link_feed_result result = link_feed(&parser, bytes_a[i]);
        good += result == LINK_FRAME_READY;
        bad += result == LINK_FRAME_BAD;
      }
      check(good == want_good && bad == want_bad, number, "stream counts differ");
    } else {
      check(0, number, "unreadable vector");
    }
  }
  fclose(file);
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
