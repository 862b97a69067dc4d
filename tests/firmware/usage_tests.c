// Unit tests of the needle-time counter (src/usage.c) over the fake board's EEPROM, with the storage writer it uses:
// counting only while the needle runs, the count kept across a re-init, a write torn at each byte, the slots of the
// ring used in turn, saturation; and get_usage through the wire. Each case runs in its own forked process.
#include <string.h>      // memcpy
#include "check.h"       // CHECK, CHECK_EQ, REQUIRE, run_case
#include "fake_board.h"  // fake, fake_board_reset
#include "fake_pen.h"    // fake_pen_boot, fake_pen_advance_ms, fake_host_sync, fake_host_command
#include "usage.h"       // usage_init, usage_poll, usage_needle_seconds, USAGE_*
#include "storage.h"     // storage_poll, storage_busy
#include "crc16.h"       // crc16_ccitt
#include "protocol.h"    // msg_usage_t, MSG_*, PROTOCOL_VERSION
#include "pen_config.h"  // USAGE_WRITE_PERIOD_S

// Time passes a millisecond a pass, as the main loop polls: the counter, then the EEPROM writer.
static void run_ms(uint32_t ms, uint8_t needle_running) {
  while (ms--) {
    fake.now_ms++;
    usage_poll(fake.now_ms, needle_running);
    storage_poll();
  }
}

// Until the writer has nothing queued (the fake EEPROM is ready at once: a byte a pass).
static void drain(void) {
  for (int pass = 0; pass < 100 && storage_busy(); pass++) storage_poll();
  REQUIRE(!storage_busy());
}

static uint32_t slot_seconds(uint8_t slot) {
  uint32_t seconds;
  memcpy(&seconds, &fake.eeprom[USAGE_EEPROM_ADDRESS + slot * USAGE_SLOT_BYTES + 2], sizeof seconds);
  return seconds;
}

// A good slot written by hand (what an earlier firmware run left).
static void put_slot(uint8_t slot, uint16_t sequence, uint32_t seconds) {
  uint8_t bytes[USAGE_SLOT_BYTES];
  memcpy(bytes, &sequence, 2);
  memcpy(bytes + 2, &seconds, 4);
  uint16_t crc = crc16_ccitt(bytes, 6);
  memcpy(bytes + 6, &crc, 2);
  memcpy(&fake.eeprom[USAGE_EEPROM_ADDRESS + slot * USAGE_SLOT_BYTES], bytes, sizeof bytes);
}

static void blank_ring_counts_from_zero(int unused) {
  (void)unused;
  usage_init();
  CHECK_EQ(usage_needle_seconds(), 0);
}

static void counts_only_while_running(int unused) {
  (void)unused;
  usage_init();
  run_ms(5000, 0);
  CHECK_EQ(usage_needle_seconds(), 0);
  run_ms(2500, 1);
  CHECK_EQ(usage_needle_seconds(), 2);
  run_ms(3000, 0);
  CHECK_EQ(usage_needle_seconds(), 2);
  // The half second before the pause is kept: short runs add up.
  run_ms(500, 1);
  CHECK_EQ(usage_needle_seconds(), 3);
}

static void saved_when_the_needle_stops(int unused) {
  (void)unused;
  usage_init();
  run_ms(3000, 1);
  CHECK_EQ(fake.eeprom_writes, 0);  // under USAGE_WRITE_PERIOD_S: nothing written while running
  run_ms(1, 0);
  drain();
  usage_init();  // a reset
  CHECK_EQ(usage_needle_seconds(), 3);
}

static void reset_while_running_loses_at_most_the_period(int unused) {
  (void)unused;
  usage_init();
  uint32_t run_s = 3 * USAGE_WRITE_PERIOD_S + USAGE_WRITE_PERIOD_S / 2;
  run_ms(run_s * 1000, 1);
  drain();
  usage_init();  // a reset with the needle running: no stop, no final save
  CHECK(usage_needle_seconds() <= run_s);
  CHECK(usage_needle_seconds() + USAGE_WRITE_PERIOD_S >= run_s);
  CHECK_EQ(usage_needle_seconds(), 3 * USAGE_WRITE_PERIOD_S);
}

// A reset during the write of byte `byte` of a slot: the torn slot fails its CRC and the count before it is kept.
static void torn_write_keeps_the_last_good_count(int byte) {
  usage_init();
  run_ms(7000, 1);
  run_ms(1, 0);
  drain();
  run_ms(5000, 1);
  run_ms(1, 0);  // queues 12 s
  for (int i = 0; i < byte; i++) storage_poll();
  uint32_t writes = fake.eeprom_writes;
  fake.eeprom_tear_next = 1;
  storage_poll();
  uint8_t torn = fake.eeprom_writes > writes;  // a byte already right is not written, so not torn
  fake.eeprom_tear_next = 0;
  usage_init();  // the reset: the rest of the slot is never written
  if (torn) CHECK_EQ(usage_needle_seconds(), 7);
  else CHECK(usage_needle_seconds() == 7 || usage_needle_seconds() == 12);
  // Counting goes on from there, and the next save lands.
  run_ms(2000, 1);
  run_ms(1, 0);
  drain();
  uint32_t expected = usage_needle_seconds();
  usage_init();
  CHECK_EQ(usage_needle_seconds(), expected);
}

static void slots_used_in_turn(int unused) {
  (void)unused;
  enum { SAVES = 10 * USAGE_SLOTS };
  uint32_t writes_at[USAGE_SLOTS] = {0};
  usage_init();
  for (int save = 0; save < SAVES; save++) {
    run_ms(1000, 1);
    run_ms(1, 0);
    drain();
    // Each save lands in the slot after the previous one.
    uint8_t slot = (uint8_t)(save % USAGE_SLOTS);
    CHECK_EQ(slot_seconds(slot), save + 1);
    writes_at[slot]++;
  }
  for (int slot = 0; slot < USAGE_SLOTS; slot++) CHECK_EQ(writes_at[slot], SAVES / USAGE_SLOTS);
  // At most one slot's bytes written per save: the ring spreads the wear.
  CHECK(fake.eeprom_writes <= (uint32_t)SAVES * USAGE_SLOT_BYTES);
  usage_init();
  CHECK_EQ(usage_needle_seconds(), SAVES);
}

static void newest_slot_found_across_the_sequence_wrap(int unused) {
  (void)unused;
  put_slot(4, 65534, 100);
  put_slot(5, 65535, 101);
  put_slot(6, 0, 102);
  put_slot(7, 1, 103);
  usage_init();
  CHECK_EQ(usage_needle_seconds(), 103);
  run_ms(1000, 1);
  run_ms(1, 0);
  drain();
  CHECK_EQ(slot_seconds(8), 104);
}

static void saturates_at_its_maximum(int unused) {
  (void)unused;
  put_slot(0, 1, UINT32_MAX - 2);
  usage_init();
  run_ms(5000, 1);
  CHECK_EQ(usage_needle_seconds(), UINT32_MAX);
  run_ms(1, 0);
  drain();
  usage_init();
  CHECK_EQ(usage_needle_seconds(), UINT32_MAX);
}

// Through the pen: its main loop counts nothing while the motor runs outside RUNNING, and get_usage answers the count.
static void get_usage_through_the_wire(int unused) {
  (void)unused;
  put_slot(3, 9, 4321);
  fake_pen_boot();
  REQUIRE(fake_host_sync());
  msg_identify_t identify = { MSG_IDENTIFY, PROTOCOL_VERSION };
  uint8_t reply[FRAME_MAX_PAYLOAD];
  REQUIRE(fake_host_command(&identify, sizeof identify, reply) == (int)sizeof(msg_identify_reply_t));
  fake.motor_running = 1;
  fake_pen_advance_ms(3000);
  uint8_t get = MSG_GET_USAGE;
  REQUIRE(fake_host_command(&get, 1, reply) == (int)sizeof(msg_usage_t));
  msg_usage_t usage;
  memcpy(&usage, reply, sizeof usage);
  CHECK_EQ(usage.msg_id, MSG_USAGE);
  CHECK_EQ(usage.needle_seconds, 4321);
}

int main(void) {
  case_setup = fake_board_reset;
  setvbuf(stdout, 0, _IOLBF, 0);
  run_case("a blank ring counts from 0", blank_ring_counts_from_zero, 0);
  run_case("counts only while the needle runs", counts_only_while_running, 0);
  run_case("saved when the needle stops, kept across a re-init", saved_when_the_needle_stops, 0);
  run_case("a reset while running loses at most USAGE_WRITE_PERIOD_S", reset_while_running_loses_at_most_the_period, 0);
  for (int byte = 0; byte < USAGE_SLOT_BYTES; byte++) run_case("a write torn at byte %d keeps the last good count", torn_write_keeps_the_last_good_count, byte);
  run_case("the ring's slots are used in turn", slots_used_in_turn, 0);
  run_case("the newest slot is found across the sequence wrap", newest_slot_found_across_the_sequence_wrap, 0);
  run_case("the count saturates at its maximum", saturates_at_its_maximum, 0);
  run_case("get_usage through the wire; no count outside RUNNING", get_usage_through_the_wire, 0);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
