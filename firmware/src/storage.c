// Storage: the records the pen keeps in EEPROM (calibration, identity, auth counters), each in two copies with a
// version, a sequence number and a CRC, written a byte per main-loop pass so a reset mid-write always leaves one good
// copy and the watchdog keeps running.
#include <string.h>     // memcpy
#include "storage.h"    // storage_init
#include "auth.h"       // struct auth_identity, struct auth_counters
#include "board.h"      // eeprom_byte_read, timebase_ticks
#include "protocol.h"   // CALIBRATION_SOURCE_*
#include "crc16.h"      // crc16_ccitt

// A record in a slot: version (1 byte), sequence number (2, little-endian), payload, CRC over all before it (2, LE).
#define HEADER_BYTES 3
#define CRC_BYTES 2
#define RECORD_BYTES(payload_bytes) (HEADER_BYTES + (payload_bytes) + CRC_BYTES)

// Where each record's two slots are (slot 1 right after slot 0) and what version its layout is. 0x380-0x3FF is the
// needle-time ring (usage.c), which writes its own slots through storage_save_bytes.
struct record_place { uint16_t address; uint8_t slot_bytes; uint8_t version; uint8_t payload_bytes; };
static const struct record_place places[STORAGE_RECORDS] = {
  // 2: bounds derived from the tolerances; the sensor reads the carriage
  [STORAGE_CALIBRATION] = { 0x000, 32, 2, sizeof(struct calibration) },
  [STORAGE_AUTH_COUNTERS] = { 0x040, 32, 1, sizeof(struct auth_counters) },
  [STORAGE_IDENTITY] = { 0x100, 128, 1, sizeof(struct auth_identity) },
};
_Static_assert(RECORD_BYTES(sizeof(struct calibration)) <= 32, "the calibration record must fit its slot");
_Static_assert(RECORD_BYTES(sizeof(struct auth_counters)) <= 32, "the counters record must fit its slot");
_Static_assert(RECORD_BYTES(sizeof(struct auth_identity)) <= 128, "the identity record must fit its slot");
_Static_assert(0x040 >= 2 * 32 && 0x100 >= 0x040 + 2 * 32 && 0x100 + 2 * 128 <= 1024, "slots overlap or leave the EEPROM");
#define RECORD_MAX_BYTES RECORD_BYTES(sizeof(struct auth_identity))
_Static_assert(RECORD_MAX_BYTES >= 32, "storage_save_bytes promises 32 bytes");

enum slot_state { SLOT_BLANK, SLOT_GOOD, SLOT_CORRUPT };

static uint16_t sequences[STORAGE_RECORDS];
static uint8_t current_slots[STORAGE_RECORDS];  // the slot holding each record's newest good copy
// The record being written: one image, written to both slots in turn.
static uint8_t pending[RECORD_MAX_BYTES];
static uint16_t pending_addresses[2];
static uint8_t pending_bytes;    // one copy
static uint8_t pending_total;    // bytes to write in all: two copies, or one when the second is dropped
static uint8_t pending_written;

static uint16_t slot_address(const struct record_place *place, uint8_t slot) { return place->address + (uint16_t)slot * place->slot_bytes; }

static uint16_t read_u16(uint16_t address) {
  return (uint16_t)(eeprom_byte_read(address) | (uint16_t)eeprom_byte_read(address + 1) << 8);
}

static enum slot_state check_slot(const struct record_place *place, uint8_t slot, uint16_t *sequence) {
  uint16_t address = slot_address(place, slot);
  uint8_t covered = HEADER_BYTES + place->payload_bytes;
  uint16_t crc = CRC16_CCITT_INIT;
  uint8_t blank = 1;
  for (uint8_t i = 0; i < covered + CRC_BYTES; i++) {
    uint8_t byte = eeprom_byte_read(address + i);
    if (byte != 0xFF) blank = 0;
    if (i < covered) crc = crc16_ccitt_byte(crc, byte);
  }
  if (blank) return SLOT_BLANK;
  if (eeprom_byte_read(address) != place->version || read_u16(address + covered) != crc) return SLOT_CORRUPT;
  *sequence = read_u16(address + 1);
  return SLOT_GOOD;
}

static void read_payload(const struct record_place *place, uint8_t slot, void *payload) {
  uint8_t *bytes = payload;
  uint16_t address = slot_address(place, slot) + HEADER_BYTES;
  for (uint8_t i = 0; i < place->payload_bytes; i++) bytes[i] = eeprom_byte_read(address + i);
}

uint8_t storage_load(uint8_t record, void *payload) {
  const struct record_place *place = &places[record];
  uint16_t slot_sequences[2] = { 0, 0 };
  enum slot_state state[2] = { check_slot(place, 0, &slot_sequences[0]), check_slot(place, 1, &slot_sequences[1]) };
  int8_t best = -1;
  for (uint8_t slot = 0; slot < 2; slot++) {
    if (state[slot] == SLOT_GOOD && (best < 0 || (int16_t)(slot_sequences[slot] - slot_sequences[best]) > 0)) best = (int8_t)slot;
  }
  uint8_t found = state[0] == SLOT_BLANK || state[1] == SLOT_BLANK ? STORAGE_BLANK_SLOT : 0;
  if (best < 0) return found;
  sequences[record] = slot_sequences[best];
  current_slots[record] = (uint8_t)best;
  read_payload(place, (uint8_t)best, payload);
  return found | STORAGE_LOADED;
}

void storage_read_slot(uint8_t record, uint8_t slot, void *payload) { read_payload(&places[record], slot & 1, payload); }

void storage_init(void) {
  // A copy out of the EEPROM, so the calibration functions get an aligned struct (on the host build too).
  struct calibration stored;
  uint8_t found = storage_load(STORAGE_CALIBRATION, &stored);
  if ((found & STORAGE_LOADED) && calibration_depth_plausible(&stored.depth) && calibration_sensor_plausible(&stored.sensor)) {
    calibration_use(&stored, CALIBRATION_SOURCE_STORED);
    return;
  }
  struct calibration fallback;
  calibration_default(&fallback);
  // No good copy. A blank slot means the first save never completed (a reset during it): the nominal calibration
  // was in force and still is. Two unreadable copies: refuse to guess.
  calibration_use(&fallback, found & STORAGE_BLANK_SLOT ? CALIBRATION_SOURCE_DEFAULT : CALIBRATION_SOURCE_INVALID);
}

void storage_save_record(uint8_t record, const void *payload) {
  const struct record_place *place = &places[record];
  uint16_t sequence = (uint16_t)(sequences[record] + 1);
  sequences[record] = sequence;
  uint8_t covered = HEADER_BYTES + place->payload_bytes;
  pending[0] = place->version;
  pending[1] = (uint8_t)sequence;
  pending[2] = (uint8_t)(sequence >> 8);
  memcpy(pending + HEADER_BYTES, payload, place->payload_bytes);
  uint16_t crc = crc16_ccitt(pending, covered);
  pending[covered] = (uint8_t)crc;
  pending[covered + 1] = (uint8_t)(crc >> 8);
  // The slot without the newest good copy goes first: until it is complete, the other one still holds a good record.
  uint8_t first = (uint8_t)(current_slots[record] ^ 1);
  pending_addresses[0] = slot_address(place, first);
  pending_addresses[1] = slot_address(place, first ^ 1);
  pending_bytes = covered + CRC_BYTES;
  pending_total = (uint8_t)(2 * pending_bytes);
  pending_written = 0;
  current_slots[record] = first;
}

void storage_save_bytes(uint16_t address, const void *bytes, uint8_t count) {
  memcpy(pending, bytes, count);
  pending_addresses[0] = address;
  pending_bytes = pending_total = count;
  pending_written = 0;
}

void storage_save(const struct calibration *calibration) { storage_save_record(STORAGE_CALIBRATION, calibration); }
uint16_t storage_sequence(void) { return sequences[STORAGE_CALIBRATION]; }

uint16_t storage_payload_address(uint8_t record) {
  return slot_address(&places[record], current_slots[record]) + HEADER_BYTES;
}

// Starts the next byte's write (only if it differs: each write wears the cell); the EEPROM must be ready.
static void write_next_byte(void) {
  uint8_t copy = pending_written >= pending_bytes;
  uint8_t offset = (uint8_t)(pending_written - (copy ? pending_bytes : 0));
  uint16_t address = pending_addresses[copy] + offset;
  if (eeprom_byte_read(address) != pending[offset]) eeprom_byte_start_write(address, pending[offset]);
  pending_written++;
}

void storage_poll(void) {
  if (pending_written >= pending_total || !eeprom_byte_ready()) return;
  write_next_byte();
}

// A byte takes 3.4 ms to write (3.3 ms in the datasheet); the poll bound ends the wait on the host build too, whose
// fake clock stands still while the logic runs.
#define EEPROM_BYTE_WAIT_TICKS (5 * TIMEBASE_TICKS_PER_MS)
#define EEPROM_BYTE_WAIT_POLLS 60000U

static uint8_t eeprom_wait_ready(void) {
  uint32_t start = timebase_ticks();
  for (uint16_t polls = 0; polls < EEPROM_BYTE_WAIT_POLLS; polls++) {
    if (eeprom_byte_ready()) return 1;
    if (timebase_ticks() - start > EEPROM_BYTE_WAIT_TICKS) return 0;
  }
  return 0;
}

uint8_t storage_finish_first_copy(void) {
  while (pending_written < pending_bytes && pending_written < pending_total) {
    if (!eeprom_wait_ready()) return 0;
    write_next_byte();
  }
  return eeprom_wait_ready();  // the last byte's write has ended too
}

void storage_drop_second_copy(void) {
  if (pending_written >= pending_bytes) pending_total = pending_written;
}

uint8_t storage_busy(void) { return pending_written < pending_total; }
