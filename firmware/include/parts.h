// Parts: the fitted cartridge's and nosecone's ID chips (DS2431-class, one 1-Wire bus each), read when a cartridge is
// fitted, at start-up and on request, checked (CRCs, two reads that agree, layout, protections) and decoded by the
// layout in hardware/pen.json (idChips.layout); and one-way marks burnt into them (scratchpad, copy, read back).
#pragma once
#include <stdint.h>    // uint8_t, uint16_t, uint32_t
#include "protocol.h"  // msg_parts_t, enum part_status

enum part { PART_CARTRIDGE, PART_NOSECONE, PART_COUNT };  // also the bus index (onewire.h)
#define PART_BIT(part) (1U << (part))
#define PARTS_ALL_BITS (PART_BIT(PART_CARTRIDGE) | PART_BIT(PART_NOSECONE))
#define PART_ROM_BYTES 8

// What the last good read of a part's chip said (fields other than status are 0 unless status is PART_STATUS_OK).
struct part_record {
  uint8_t status;                // enum part_status
  uint8_t rom[PART_ROM_BYTES];   // family code first, CRC-8 last
  uint32_t lot;
  uint16_t date;                 // days since 2000-01-01: the cartridge's expiry, the nosecone's manufacture
  uint16_t marks;                // cleared bits of the marks page: the cartridge's used mark, the nosecone's sterilizations
  uint16_t uses;                 // nosecone: cleared use marks
  int16_t latest_sterilization;  // nosecone: the highest cleared bit of the sterilization tally; -1 without one
  uint8_t unused_since_sterilization;
};

void parts_init(void);
// Every main-loop pass: follows the cartridge switch, starts reads and writes, carries the chip transaction on.
void parts_poll(uint32_t now_ms);
// Reads these parts' chips again (PART_BIT set), after whatever is under way.
void parts_request_read(uint8_t part_bits);
const struct part_record *parts_record(uint8_t part);
// part_activity bits: which chip is being read, whether a write is under way.
uint8_t parts_activity(void);
// The get_parts reply.
uint8_t parts_report(uint8_t *out);
// Starts burning one bit of a part's memory (bit_index = address * 8 + bit) to 0, for a part read good whose ROM id is
// rom: 0, or an error code with *detail (part_unreadable: its status; part_mismatch; parts_busy). The outcome is
// parts_last_write() once parts_activity() shows no write; the part is read again after it.
uint8_t parts_start_mark(uint8_t part, const uint8_t *rom, uint16_t bit_index, int32_t *detail);
uint8_t parts_last_write(void);
// record_sterilization: the nosecone's next sterilization mark.
uint8_t parts_record_sterilization(const uint8_t *rom, int32_t *detail);
// arm: 0 when the fitted parts may be used on todayDay (the host's date), else an error code with *detail and *part
// (cartridge or nosecone unreadable, cartridge used or expired, nosecone not sterilized since its last use or at its
// cycle limit; out_of_range with *part PART_COUNT for a date before ID_CHIP_EARLIEST_HOST_DAY). Marks of the session
// under way do not count.
uint8_t parts_arm_refusal(uint16_t today_day, int32_t *detail, uint8_t *part);
// clear_cartridge: 0 when the fitted cartridge was read good and its ROM id is rom; else an error code with *detail.
uint8_t parts_cartridge_refusal(const uint8_t *rom, int32_t *detail);
// start_needle: 0 once the session's marks are burnt and read back; else parts_busy (burning: retry; the first call
// starts it, claiming the parts fitted now) or mark_failed (once per failure, with the write_result in *detail).
uint8_t parts_session_marks(int32_t *detail, uint8_t *part);
