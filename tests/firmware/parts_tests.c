// Unit tests of the parts logic (src/parts.c) and the 1-Wire CRCs (src/onewire_crc.c), built for this machine over the
// fake board and fake ID chips (fake_chips.c: DS2431s a byte at a time): what each chip fault is reported as, reads that
// must agree, and a mark burnt through scratchpad and copy. Each case runs in its own forked process.
#include <string.h>       // memcpy, memcmp
#include "check.h"        // CHECK, CHECK_EQ, REQUIRE, run_case
#include "fake_board.h"   // fake, fake_board_reset
#include "fake_chips.h"   // fake_chips, fake_chip_lay_out, fake_chip_set_rom
#include "fake_pen.h"     // fake_pen_boot, fake_pen_advance_ms
#include "parts.h"        // parts_record, parts_activity, parts_record_sterilization
#include "onewire_crc.h"  // onewire_crc8, onewire_crc16
#include "protocol.h"     // PART_STATUS_*, WRITE_RESULT_*, ERROR_CODE_*, INPUT_BIT_*
#include "pen_config.h"   // PART_LAYOUT_*, ID_CHIP_*

// Main-loop passes, a millisecond apart, until no chip is read or written (the fake ends each bus operation at once,
// so an operation takes one pass); at most limit_ms.
static void settle(uint32_t limit_ms) {
  for (uint32_t ms = 0; ms < limit_ms && parts_activity() != 0; ms++) fake_pen_advance_ms(1);
}

static void boot_and_read(void) {
  fake_pen_boot();
  settle(1000);
}

static const struct part_record *cartridge(void) { return parts_record(PART_CARTRIDGE); }
static const struct part_record *nosecone(void) { return parts_record(PART_NOSECONE); }

static void reread(uint8_t parts) {
  parts_request_read(parts);
  settle(1000);
}

static void crc_vectors(int unused) {
  (void)unused;
  // Maxim's application note 27: ROM 02 1C B8 01 00 00 00 has CRC-8 A2; the whole id checks to 0.
  static const uint8_t rom[] = { 0x02, 0x1C, 0xB8, 0x01, 0x00, 0x00, 0x00, 0xA2 };
  uint8_t crc8 = 0;
  for (int i = 0; i < 7; i++) crc8 = onewire_crc8(crc8, rom[i]);
  CHECK_EQ(crc8, 0xA2);
  CHECK_EQ(onewire_crc8(crc8, 0xA2), 0);
  // CRC-16/ARC, the same polynomial and bit order: "123456789" gives 0xBB3D.
  uint16_t crc16 = 0;
  for (const char *c = "123456789"; *c; c++) crc16 = onewire_crc16(crc16, (uint8_t)*c);
  CHECK_EQ(crc16, 0xBB3D);
}

static void reads_both_parts(int unused) {
  (void)unused;
  boot_and_read();
  CHECK_EQ(cartridge()->status, PART_STATUS_OK);
  CHECK(memcmp(cartridge()->rom, fake_chips[0].rom, 8) == 0);
  CHECK_EQ(cartridge()->lot, 0x00C0FFEE);
  CHECK_EQ(cartridge()->date, 10000);
  CHECK_EQ(cartridge()->marks, 0);
  CHECK_EQ(nosecone()->status, PART_STATUS_OK);
  CHECK_EQ(nosecone()->marks, 3);
  CHECK_EQ(nosecone()->uses, 2);
  CHECK_EQ(nosecone()->latest_sterilization, 2);
  CHECK_EQ(nosecone()->unused_since_sterilization, 1);
  CHECK_EQ(parts_activity(), 0);
  // Match ROM, two passes over the memory, then a presence check: three resets after Read ROM's.
  CHECK_EQ(fake_chips[0].resets, 4);
}

enum fault { ABSENT, SHORTED, BAD_ROM_CRC, BAD_IDENTITY_CRC, CONTACT_LOST, WRONG_FAMILY, WRONG_KIND, OPEN_PAGE, OLD_LAYOUT, FAULTS };
static const uint8_t fault_status[FAULTS] = {
  PART_STATUS_ABSENT, PART_STATUS_BUS_SHORTED, PART_STATUS_CRC_ROM, PART_STATUS_CRC_MEMORY, PART_STATUS_CONTACT_LOST,
  PART_STATUS_NOT_A_PART, PART_STATUS_NOT_A_PART, PART_STATUS_UNPROTECTED, PART_STATUS_NOT_A_PART,
};

static void fault_reported(int fault) {
  struct fake_chip *chip = &fake_chips[1];
  switch (fault) {
    case ABSENT: chip->present = 0; break;
    case SHORTED: chip->shorted = 1; break;
    case BAD_ROM_CRC: chip->rom[7] ^= 0x40; break;
    case BAD_IDENTITY_CRC: chip->memory[PART_LAYOUT_DATE_ADDRESS] ^= 1; break;
    case CONTACT_LOST: chip->lose_contact_after = 100; break;
    case WRONG_FAMILY: fake_chip_set_rom(1, 0x23, 0x1001); break;
    case WRONG_KIND: fake_chip_lay_out(1, PART_LAYOUT_KIND_CARTRIDGE, 1, 1); break;
    case OPEN_PAGE: chip->memory[PART_LAYOUT_PROTECTION_ADDRESS + 2] = 0x00; break;
    case OLD_LAYOUT: chip->memory[PART_LAYOUT_VERSION_ADDRESS] = 0; break;
  }
  if (fault == OLD_LAYOUT) {  // its CRC made good again: only the version is wrong
    uint16_t crc = 0;
    for (int i = 0; i < PART_LAYOUT_IDENTITY_CRC_ADDRESS; i++) crc = onewire_crc16(crc, chip->memory[i]);
    crc = (uint16_t)~crc;
    chip->memory[PART_LAYOUT_IDENTITY_CRC_ADDRESS] = (uint8_t)crc;
    chip->memory[PART_LAYOUT_IDENTITY_CRC_ADDRESS + 1] = (uint8_t)(crc >> 8);
  }
  boot_and_read();
  CHECK_EQ(nosecone()->status, fault_status[fault]);
  CHECK_EQ(cartridge()->status, PART_STATUS_OK);  // its own bus: untouched
  CHECK_EQ(nosecone()->lot, 0);
  CHECK_EQ(nosecone()->marks, 0);
  // The id is reported when it was read good.
  uint8_t named = fault != ABSENT && fault != SHORTED && fault != BAD_ROM_CRC;
  CHECK_EQ(nosecone()->rom[0] != 0, named);
}

static void one_bad_read_is_read_again(int unused) {
  (void)unused;
  fake_chips[1].flip_memory_read = PART_LAYOUT_MARK_PAGE_ADDRESS + 1;  // one bit wrong in one pass
  boot_and_read();
  CHECK_EQ(nosecone()->status, PART_STATUS_OK);
  CHECK_EQ(nosecone()->marks, 3);  // the two passes that agreed
  CHECK_EQ(fake_chips[1].resets, 5);  // a third pass
}

static void cartridge_follows_its_switch(int unused) {
  (void)unused;
  boot_and_read();
  fake_set_input(INPUT_BIT_CARTRIDGE_PRESENT, 0);
  fake_pen_advance_ms(1);
  CHECK_EQ(cartridge()->status, PART_STATUS_ABSENT);
  reread(PARTS_ALL_BITS);  // nothing to read without a cartridge
  CHECK_EQ(cartridge()->status, PART_STATUS_ABSENT);
  fake_chip_set_rom(0, ID_CHIP_FAMILY_CODE, 0x2222);
  fake_set_input(INPUT_BIT_CARTRIDGE_PRESENT, 1);
  fake_pen_advance_ms(ID_CHIP_SETTLE_AFTER_FIT_MS - 10);
  CHECK_EQ(cartridge()->status, PART_STATUS_UNKNOWN);
  CHECK(parts_activity() & (1 << PART_ACTIVITY_READING_CARTRIDGE));
  settle(1000);
  CHECK_EQ(cartridge()->status, PART_STATUS_OK);
  CHECK_EQ(cartridge()->rom[1], 0x22);
}

static void sterilization_burns_the_next_bit(int unused) {
  (void)unused;
  boot_and_read();
  uint8_t rom[8];
  memcpy(rom, nosecone()->rom, 8);
  int32_t detail = -1;
  CHECK_EQ(parts_record_sterilization(rom, &detail), 0);
  CHECK_EQ(parts_last_write(), WRITE_RESULT_PENDING);
  CHECK_EQ(parts_record_sterilization(rom, &detail), ERROR_CODE_PARTS_BUSY);
  for (int ms = 0; ms < 100 && fake_chips[1].copies == 0; ms++) fake_pen_advance_ms(1);
  CHECK_EQ(fake_chips[1].copies, 1);
  // The copy's tPROG (10 ms) passes with the bus idle: no slot, no result before it.
  uint32_t resets = fake_chips[1].resets;
  fake_pen_advance_ms(ONEWIRE_DATASHEET_PROGRAM_MAX_MS - 1);
  CHECK_EQ(fake_chips[1].resets, resets);
  CHECK_EQ(parts_last_write(), WRITE_RESULT_PENDING);
  settle(1000);
  CHECK_EQ(parts_last_write(), WRITE_RESULT_OK);
  CHECK_EQ(fake_chips[1].memory[PART_LAYOUT_MARK_PAGE_ADDRESS], 0xF0);
  CHECK_EQ(nosecone()->marks, 4);
  CHECK_EQ(nosecone()->unused_since_sterilization, 1);
}

static void a_hole_in_the_tally_still_counts_up(int unused) {
  (void)unused;
  fake_chips[1].memory[PART_LAYOUT_MARK_PAGE_ADDRESS] = 0xFA;  // bits 0 and 2 cleared, bit 1 not
  boot_and_read();
  uint8_t rom[8];
  memcpy(rom, nosecone()->rom, 8);
  int32_t detail = 0;
  CHECK_EQ(parts_record_sterilization(rom, &detail), 0);
  settle(1000);
  CHECK_EQ(fake_chips[1].memory[PART_LAYOUT_MARK_PAGE_ADDRESS], 0xF2);  // bit 3, after the highest cleared
  CHECK_EQ(nosecone()->marks, 3);
}

static void sterilization_refusals(int unused) {
  (void)unused;
  boot_and_read();
  uint8_t rom[8];
  memcpy(rom, nosecone()->rom, 8);
  int32_t detail = 0;
  rom[3] ^= 1;
  CHECK_EQ(parts_record_sterilization(rom, &detail), ERROR_CODE_PART_MISMATCH);
  rom[3] ^= 1;
  fake_chips[1].present = 0;
  reread(PART_BIT(PART_NOSECONE));
  CHECK_EQ(parts_record_sterilization(rom, &detail), ERROR_CODE_PART_UNREADABLE);
  CHECK_EQ(detail, PART_STATUS_ABSENT);
  fake_chips[1].present = 1;
  // At the cycle limit (200 of the tally's 256 bits): refused; one below it, the next cycle is burnt.
  uint8_t *tally = fake_chips[1].memory + PART_LAYOUT_MARK_PAGE_ADDRESS;
  memset(tally, 0, ID_CHIP_NOSECONE_CYCLE_LIMIT / 8);
  reread(PART_BIT(PART_NOSECONE));
  CHECK_EQ(parts_record_sterilization(rom, &detail), ERROR_CODE_NOSECONE_AT_LIMIT);
  CHECK_EQ(detail, ID_CHIP_NOSECONE_CYCLE_LIMIT);
  memset(tally, 0, 32);  // every bit of the tally used
  reread(PART_BIT(PART_NOSECONE));
  CHECK_EQ(parts_record_sterilization(rom, &detail), ERROR_CODE_NOSECONE_AT_LIMIT);
  CHECK_EQ(detail, 256);
  CHECK_EQ(fake_chips[1].copies, 0);
  memset(tally, 0xFF, 32);
  memset(tally, 0, ID_CHIP_NOSECONE_CYCLE_LIMIT / 8 - 1);
  tally[ID_CHIP_NOSECONE_CYCLE_LIMIT / 8 - 1] = 0x80;  // 199 cycles
  reread(PART_BIT(PART_NOSECONE));
  CHECK_EQ(nosecone()->marks, ID_CHIP_NOSECONE_CYCLE_LIMIT - 1);
  CHECK_EQ(parts_record_sterilization(rom, &detail), 0);
  settle(1000);
  CHECK_EQ(parts_last_write(), WRITE_RESULT_OK);
  CHECK_EQ(nosecone()->marks, ID_CHIP_NOSECONE_CYCLE_LIMIT);
}

static void copy_that_programs_nothing_fails(int unused) {
  (void)unused;
  boot_and_read();
  fake_chips[1].copy_fails = 1;
  uint8_t rom[8];
  memcpy(rom, nosecone()->rom, 8);
  int32_t detail = 0;
  CHECK_EQ(parts_record_sterilization(rom, &detail), 0);
  settle(1000);
  CHECK_EQ(parts_last_write(), WRITE_RESULT_VERIFY_FAILED);  // acknowledged, but the row read back is the old one
  CHECK_EQ(fake_chips[1].copies, 2);  // tried twice: the same mark again is harmless
  CHECK_EQ(nosecone()->marks, 3);
}

static void write_stops_when_the_part_goes(int unused) {
  (void)unused;
  fake_chip_lay_out(0, PART_LAYOUT_KIND_CARTRIDGE, 1, 1);
  boot_and_read();
  uint8_t rom[8];
  memcpy(rom, cartridge()->rom, 8);
  int32_t detail = 0;
  CHECK_EQ(parts_start_mark(PART_CARTRIDGE, rom, PART_LAYOUT_MARK_PAGE_ADDRESS * 8, &detail), 0);
  fake_pen_advance_ms(3);
  fake_set_input(INPUT_BIT_CARTRIDGE_PRESENT, 0);
  settle(1000);
  CHECK_EQ(parts_last_write(), WRITE_RESULT_PART_UNREADABLE);
  CHECK_EQ(cartridge()->status, PART_STATUS_ABSENT);
  CHECK_EQ(parts_activity(), 0);
  // Marks go only into the EPROM-mode pages.
  fake_set_input(INPUT_BIT_CARTRIDGE_PRESENT, 1);
  fake_pen_advance_ms(1);  // the main loop sees the switch
  settle(1000);
  CHECK_EQ(cartridge()->status, PART_STATUS_OK);
  CHECK_EQ(parts_start_mark(PART_CARTRIDGE, rom, 0, &detail), ERROR_CODE_OUT_OF_RANGE);
  CHECK_EQ(parts_start_mark(PART_CARTRIDGE, rom, 0x60 * 8, &detail), ERROR_CODE_OUT_OF_RANGE);
}

// Each case: the fake board at power-on, with a good cartridge and nosecone fitted.
static void board_with_parts(void) {
  fake_board_reset();
  fake_chips_fit_parts();
}

int main(void) {
  case_setup = board_with_parts;
  setvbuf(stdout, 0, _IOLBF, 0);
  run_case("1-Wire CRC-8 and CRC-16 vectors", crc_vectors, 0);
  run_case("both parts read at power-on", reads_both_parts, 0);
  for (int fault = 0; fault < FAULTS; fault++) run_case("nosecone fault %d reported with its status", fault_reported, fault);
  run_case("a pass that disagrees is read again", one_bad_read_is_read_again, 0);
  run_case("the cartridge follows its switch", cartridge_follows_its_switch, 0);
  run_case("a sterilization burns the next tally bit", sterilization_burns_the_next_bit, 0);
  run_case("a hole in the tally still counts up by one", a_hole_in_the_tally_still_counts_up, 0);
  run_case("record_sterilization refusals", sterilization_refusals, 0);
  run_case("a copy that programs nothing fails its read-back", copy_that_programs_nothing_fails, 0);
  run_case("a write stops when its part comes out", write_stops_when_the_part_goes, 0);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
