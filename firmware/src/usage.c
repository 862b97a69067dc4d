// Usage: the needle time, counted while the pen is RUNNING with the motor on and kept in EEPROM in a ring of slots
// written in turn (wear levelling); a reset loses at most USAGE_WRITE_PERIOD_S seconds of it.
#include <string.h>      // memcpy
#include "usage.h"       // usage_init, usage_poll, USAGE_*
#include "storage.h"     // storage_busy, storage_save_bytes
#include "board.h"       // clock_ms, eeprom_byte_read
#include "crc16.h"       // crc16_ccitt
#include "protocol.h"    // msg_usage_t, MSG_USAGE
#include "pen_config.h"  // USAGE_WRITE_PERIOD_S

// No version byte: a new layout takes a new region, so an old ring never reads as a new one.
struct __attribute__((packed)) usage_slot {
  uint16_t sequence;
  uint32_t needle_seconds;
  uint16_t crc;  // CRC-16/CCITT over sequence and needle_seconds
};
_Static_assert(sizeof(struct usage_slot) == USAGE_SLOT_BYTES, "a usage slot is USAGE_SLOT_BYTES long");
_Static_assert(USAGE_EEPROM_ADDRESS >= 0x200 && USAGE_EEPROM_ADDRESS + USAGE_SLOTS * USAGE_SLOT_BYTES <= 1024,
               "the usage ring must lie past the storage records (0x000-0x1FF) and inside the EEPROM");

static uint32_t needle_seconds;
static uint32_t saved_seconds;     // what the newest slot says (or is being written to say)
static uint32_t running_ms;        // the part of a second counted but not yet in needle_seconds
static uint32_t last_poll_ms;
static uint16_t sequence;          // the newest slot's
static uint8_t newest_slot;

static uint16_t slot_address(uint8_t slot) { return USAGE_EEPROM_ADDRESS + (uint16_t)slot * USAGE_SLOT_BYTES; }

static uint16_t slot_crc(const struct usage_slot *slot) {
  return crc16_ccitt((const uint8_t *)slot, sizeof *slot - sizeof slot->crc);
}

void usage_init(void) {
  needle_seconds = saved_seconds = 0;
  running_ms = 0;
  last_poll_ms = clock_ms();
  sequence = 0;
  // No good slot: the next save goes to slot 0.
  newest_slot = USAGE_SLOTS - 1;
  uint8_t found = 0;
  for (uint8_t slot = 0; slot < USAGE_SLOTS; slot++) {
    struct usage_slot read;
    uint8_t *bytes = (uint8_t *)&read;
    for (uint8_t i = 0; i < sizeof read; i++) bytes[i] = eeprom_byte_read(slot_address(slot) + i);
    if (read.crc != slot_crc(&read)) continue;  // blank, or torn by a reset during its write
    // Newest by sequence, compared by difference so the wrap from 65535 to 0 keeps the order.
    if (found && (int16_t)(read.sequence - sequence) <= 0) continue;
    found = 1;
    sequence = read.sequence;
    newest_slot = slot;
    needle_seconds = saved_seconds = read.needle_seconds;
  }
}

// The slot after the newest: a torn write there leaves the newest one as it was.
static void save(void) {
  struct usage_slot slot = { (uint16_t)(sequence + 1), needle_seconds, 0 };
  slot.crc = slot_crc(&slot);
  newest_slot = (uint8_t)((newest_slot + 1) % USAGE_SLOTS);
  sequence = slot.sequence;
  saved_seconds = needle_seconds;
  storage_save_bytes(slot_address(newest_slot), &slot, sizeof slot);
}

void usage_poll(uint32_t now_ms, uint8_t needle_running) {
  if (needle_running) {
    running_ms += now_ms - last_poll_ms;
    for (; running_ms >= 1000; running_ms -= 1000) {
      if (needle_seconds != UINT32_MAX) needle_seconds++;  // saturates: 136 years of needle time
    }
  }
  last_poll_ms = now_ms;
  if (needle_seconds == saved_seconds || storage_busy()) return;
  if (!needle_running || needle_seconds - saved_seconds >= USAGE_WRITE_PERIOD_S) save();
}

uint32_t usage_needle_seconds(void) { return needle_seconds; }

uint8_t usage_report(uint8_t *reply) {
  msg_usage_t usage = { MSG_USAGE, needle_seconds };
  memcpy(reply, &usage, sizeof usage);
  return sizeof usage;
}
