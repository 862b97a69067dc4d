// Storage: the calibration in EEPROM, two copies each with a version, a sequence number and a CRC, written a byte
// per main-loop pass so a reset mid-write always leaves one good copy and the watchdog keeps running.
#include <string.h>     // memcpy
#include "storage.h"    // storage_init
#include "board.h"      // eeprom_byte_read
#include "protocol.h"   // CALIBRATION_SOURCE_*
#include "crc16.h"      // crc16_ccitt

#define RECORD_VERSION 2  // 2: bounds derived from the tolerances; the sensor reads the carriage
#define SLOT_BYTES 32

struct __attribute__((packed)) record {
  uint8_t version;
  uint16_t sequence;
  struct calibration calibration;
  uint16_t crc;  // over everything before it
};
_Static_assert(sizeof(struct record) <= SLOT_BYTES, "a record must fit its slot");

static uint16_t sequence;
static uint8_t current_slot;  // the slot holding the newest good record
static uint8_t pending[2 * sizeof(struct record)];
static uint16_t pending_addresses[2];
static uint8_t pending_length, pending_written;

static uint8_t read_slot(uint8_t slot, struct record *out) {
  uint8_t *bytes = (uint8_t *)out;
  uint8_t blank = 1;
  for (uint8_t i = 0; i < sizeof *out; i++) {
    bytes[i] = eeprom_byte_read((uint16_t)slot * SLOT_BYTES + i);
    if (bytes[i] != 0xFF) blank = 0;
  }
  if (blank) return 0;
  return out->version == RECORD_VERSION && out->crc == crc16_ccitt(bytes, sizeof *out - sizeof out->crc) ? 1 : 2;
}

void storage_init(void) {
  struct record slots[2];
  uint8_t state[2] = { read_slot(0, &slots[0]), read_slot(1, &slots[1]) };  // 0 blank, 1 good, 2 corrupt
  int8_t best = -1;
  for (uint8_t slot = 0; slot < 2; slot++) {
    if (state[slot] == 1 && (best < 0 || (int16_t)(slots[slot].sequence - slots[best].sequence) > 0)) best = (int8_t)slot;
  }
  // A copy out of the packed record, so the calibration functions get an aligned struct (on the host build too).
  struct calibration stored = best >= 0 ? slots[best].calibration : (struct calibration){ { 0, 0 }, { 0, 0 } };
  if (best >= 0 && calibration_depth_plausible(&stored.depth) && calibration_sensor_plausible(&stored.sensor)) {
    calibration_use(&stored, CALIBRATION_SOURCE_STORED);
    sequence = slots[best].sequence;
    current_slot = (uint8_t)best;
    return;
  }
  struct calibration fallback;
  calibration_default(&fallback);
  // No good copy. A blank slot means the first save never completed (a reset during it): the nominal calibration
  // was in force and still is. Two unreadable copies: refuse to guess.
  calibration_use(&fallback, state[0] == 0 || state[1] == 0 ? CALIBRATION_SOURCE_DEFAULT : CALIBRATION_SOURCE_INVALID);
}

void storage_save(const struct calibration *calibration) {
  struct record record = { RECORD_VERSION, (uint16_t)(sequence + 1), *calibration, 0 };
  record.crc = crc16_ccitt((const uint8_t *)&record, sizeof record - sizeof record.crc);
  sequence = record.sequence;
  // The slot without the newest good copy goes first: until it is complete, the other one still holds a good record.
  uint8_t first = (uint8_t)(current_slot ^ 1);
  memcpy(pending, &record, sizeof record);
  memcpy(pending + sizeof record, &record, sizeof record);
  pending_addresses[0] = (uint16_t)first * SLOT_BYTES;
  pending_addresses[1] = (uint16_t)(first ^ 1) * SLOT_BYTES;
  pending_length = 2 * sizeof record;
  pending_written = 0;
  current_slot = first;
}

void storage_poll(void) {
  if (pending_written >= pending_length || !eeprom_byte_ready()) return;
  uint8_t copy = pending_written / sizeof(struct record);
  uint8_t offset = pending_written % sizeof(struct record);
  uint16_t address = pending_addresses[copy] + offset;
  if (eeprom_byte_read(address) != pending[pending_written]) eeprom_byte_start_write(address, pending[pending_written]);
  pending_written++;
}

uint8_t storage_busy(void) { return pending_written < pending_length; }
uint16_t storage_sequence(void) { return sequence; }
