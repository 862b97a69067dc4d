// Fake ID chips for the host build: the functions of onewire.h over two DS2431-class chips modelled a byte at a time.
#include <string.h>       // memset, memcpy
#include "fake_chips.h"   // struct fake_chip
#include "onewire.h"      // onewire_reset, onewire_poll, ONEWIRE_*
#include "onewire_crc.h"  // onewire_crc8, onewire_crc16
#include "pen_config.h"   // PART_LAYOUT_*, ID_CHIP_FAMILY_CODE

struct fake_chip fake_chips[2];

enum { STATE_IDLE, STATE_ROM, STATE_MATCH, STATE_FUNCTION, STATE_READ_ROM, STATE_READ_MEMORY_ADDRESS, STATE_READ_MEMORY,
       STATE_WRITE_ADDRESS, STATE_WRITE_DATA, STATE_WRITE_CRC, STATE_READ_SCRATCHPAD, STATE_COPY_AUTH, STATE_COPY_DONE,
       STATE_ONES };

static uint8_t result;
static uint16_t crc;
static uint8_t crc_out[2], crc_index;

void fake_chip_set_rom(uint8_t bus, uint8_t family, uint32_t serial) {
  uint8_t *rom = fake_chips[bus].rom;
  rom[0] = family;
  for (uint8_t i = 0; i < 6; i++) rom[1 + i] = i < 4 ? (uint8_t)(serial >> (8 * i)) : (uint8_t)(0x10 + bus);
  uint8_t check = 0;
  for (uint8_t i = 0; i < 7; i++) check = onewire_crc8(check, rom[i]);
  rom[7] = check;
}

void fake_chip_lay_out(uint8_t bus, uint8_t kind, uint32_t lot, uint16_t date) {
  uint8_t *memory = fake_chips[bus].memory;
  memset(memory, 0xFF, FAKE_CHIP_MEMORY_BYTES);
  memory[PART_LAYOUT_VERSION_ADDRESS] = PART_LAYOUT_VERSION;
  memory[PART_LAYOUT_KIND_ADDRESS] = kind;
  for (uint8_t i = 0; i < 4; i++) memory[PART_LAYOUT_LOT_ADDRESS + i] = (uint8_t)(lot >> (8 * i));
  memory[PART_LAYOUT_DATE_ADDRESS] = (uint8_t)date;
  memory[PART_LAYOUT_DATE_ADDRESS + 1] = (uint8_t)(date >> 8);
  uint16_t check = 0;
  for (uint8_t i = 0; i < PART_LAYOUT_IDENTITY_CRC_ADDRESS; i++) check = onewire_crc16(check, memory[i]);
  check = (uint16_t)~check;
  memory[PART_LAYOUT_IDENTITY_CRC_ADDRESS] = (uint8_t)check;
  memory[PART_LAYOUT_IDENTITY_CRC_ADDRESS + 1] = (uint8_t)(check >> 8);
  memory[PART_LAYOUT_PROTECTION_ADDRESS] = PART_LAYOUT_WRITE_PROTECT;
  memory[PART_LAYOUT_PROTECTION_ADDRESS + 1] = PART_LAYOUT_EPROM;
  memory[PART_LAYOUT_PROTECTION_ADDRESS + 2] = PART_LAYOUT_EPROM;
}

void fake_chips_reset(void) { memset(fake_chips, 0, sizeof fake_chips); }

void fake_chips_fit_parts(void) {
  memset(fake_chips, 0, sizeof fake_chips);
  for (uint8_t bus = 0; bus < 2; bus++) {
    fake_chips[bus].present = 1;
    fake_chip_set_rom(bus, ID_CHIP_FAMILY_CODE, 0x1000 + bus);
  }
  fake_chip_lay_out(0, PART_LAYOUT_KIND_CARTRIDGE, 0x00C0FFEE, 10000);
  fake_chip_lay_out(1, PART_LAYOUT_KIND_NOSECONE, 0x000A1B2C, 9000);
  fake_chips[1].memory[PART_LAYOUT_MARK_PAGE_ADDRESS] = 0xF8;      // sterilized 3 times
  fake_chips[1].memory[PART_LAYOUT_USE_MARK_PAGE_ADDRESS] = 0xFC;  // used after the first two
}

void onewire_init(void) { result = ONEWIRE_DONE; }

void onewire_reset(uint8_t bus) {
  struct fake_chip *chip = &fake_chips[bus];
  chip->resets++;
  if (chip->shorted) {
    result = ONEWIRE_SHORTED;
    return;
  }
  if (chip->state == STATE_WRITE_DATA && chip->count != 0 && chip->count < 8) chip->es = (uint8_t)(chip->es | 0x20);  // PF
  chip->state = STATE_ROM;
  result = chip->present ? ONEWIRE_DONE : ONEWIRE_NO_PRESENCE;
}

static uint8_t page_protection(const struct fake_chip *chip, uint8_t address) {
  return address < 0x80 ? chip->memory[PART_LAYOUT_PROTECTION_ADDRESS + address / 32] : 0;
}

static void take(struct fake_chip *chip, uint8_t byte) {
  switch (chip->state) {
    case STATE_ROM:
      if (byte == 0x33) chip->state = STATE_READ_ROM, chip->count = 0;
      else if (byte == 0x55) chip->state = STATE_MATCH, chip->count = 0;
      else if (byte == 0xCC) chip->state = STATE_FUNCTION;
      else chip->state = STATE_IDLE;
      return;
    case STATE_MATCH:
      if (byte != chip->rom[chip->count]) chip->state = STATE_IDLE;
      else if (++chip->count == 8) chip->state = STATE_FUNCTION;
      return;
    case STATE_FUNCTION:
      chip->command = byte;
      chip->count = 0;
      if (byte == 0xF0 || byte == 0x0F || byte == 0x55) chip->state = STATE_READ_MEMORY_ADDRESS;
      else if (byte == 0xAA) chip->state = STATE_READ_SCRATCHPAD;
      else chip->state = STATE_IDLE;
      crc = onewire_crc16(0, byte);
      return;
    case STATE_READ_MEMORY_ADDRESS:
      if (chip->count == 0) chip->address = byte;
      crc = onewire_crc16(crc, byte);
      if (chip->command == 0x55) {  // Copy Scratchpad: TA1, TA2, E/S must match
        uint8_t expected = chip->count == 0 ? chip->ta1 : chip->count == 1 ? chip->ta2 : chip->es;
        if (byte != expected) chip->state = STATE_ONES;
        else if (++chip->count == 3) {
          uint8_t valid = !(chip->es & 0x20) && (chip->es & 7) == 7 && (chip->ta1 & 7) == 0 && chip->ta2 == 0 &&
                          chip->ta1 < FAKE_CHIP_MEMORY_BYTES;
          if (chip->copy_refused) valid = 0;  // as a DS2431 that did not take the authorization
          if (valid && !chip->copy_fails) memcpy(chip->memory + chip->ta1, chip->scratchpad, 8);
          if (valid) chip->es |= 0x80, chip->copies++;
          chip->state = valid ? STATE_COPY_DONE : STATE_ONES;
        }
        return;
      }
      if (++chip->count < 2) return;
      if (chip->command == 0xF0) {
        chip->state = byte == 0 && chip->address < FAKE_CHIP_MEMORY_BYTES ? STATE_READ_MEMORY : STATE_ONES;
      } else {  // Write Scratchpad
        chip->ta1 = chip->address;
        chip->ta2 = byte;
        chip->es = (uint8_t)(chip->address & 7);
        chip->count = chip->address & 7;
        chip->state = STATE_WRITE_DATA;
      }
      return;
    case STATE_WRITE_DATA: {
      crc = onewire_crc16(crc, byte);
      uint8_t address = (uint8_t)((chip->ta1 & ~7) + chip->count);
      uint8_t mode = page_protection(chip, address);
      uint8_t stored = address < FAKE_CHIP_MEMORY_BYTES ? chip->memory[address] : 0xFF;
      chip->scratchpad[chip->count] = mode == 0x55 ? stored : mode == 0xAA ? (uint8_t)(byte & stored) : byte;
      chip->es = (uint8_t)((chip->es & ~7) | chip->count);
      if (++chip->count == 8) {
        chip->state = STATE_WRITE_CRC;
        crc = (uint16_t)~crc;
        crc_out[0] = (uint8_t)crc;
        crc_out[1] = (uint8_t)(crc >> 8);
        crc_index = 0;
      }
      return;
    }
    default:
      return;  // written while the chip talks or ignores: nothing
  }
}

static uint8_t give(struct fake_chip *chip) {
  switch (chip->state) {
    case STATE_READ_ROM: {
      uint8_t byte = chip->rom[chip->count];
      if (++chip->count == 8) chip->state = STATE_FUNCTION;
      return byte;
    }
    case STATE_READ_MEMORY: {
      if (chip->lose_contact_after && --chip->lose_contact_after == 0) chip->present = 0;
      if (!chip->present) return 0xFF;
      uint8_t address = chip->address++;
      if (address >= FAKE_CHIP_MEMORY_BYTES) return 0xFF;
      uint8_t byte = chip->memory[address];
      if (chip->flip_memory_read == address + 1) {
        chip->flip_memory_read = 0;
        byte ^= 1;
      }
      return byte;
    }
    case STATE_WRITE_CRC:
      if (crc_index < 2) return crc_out[crc_index++];
      return 0xFF;
    case STATE_READ_SCRATCHPAD: {
      // TA1 TA2 E/S, the data from the target offset to the ending offset, the inverted CRC-16, then 1s.
      uint8_t ending = chip->es & 7, start = chip->ta1 & 7;
      uint8_t data_bytes = (uint8_t)(ending - start + 1);
      uint8_t index = chip->count++;
      uint8_t byte;
      if (index == 0) byte = chip->ta1;
      else if (index == 1) byte = chip->ta2;
      else if (index == 2) byte = chip->es;
      else if (index < 3 + data_bytes) byte = chip->scratchpad[start + index - 3];
      else if (index == 3 + data_bytes) return (uint8_t)~crc;
      else if (index == 4 + data_bytes) return (uint8_t)(~crc >> 8);
      else return 0xFF;
      crc = onewire_crc16(crc, byte);
      return byte;
    }
    case STATE_COPY_DONE:
      return 0xAA;
    default:
      return 0xFF;
  }
}

void onewire_write(uint8_t bus, const uint8_t *bytes, uint8_t count) {
  struct fake_chip *chip = &fake_chips[bus];
  result = chip->shorted ? ONEWIRE_SHORTED : ONEWIRE_DONE;
  if (!chip->present) return;
  for (uint8_t i = 0; i < count; i++) take(chip, bytes[i]);
}

void onewire_read(uint8_t bus, uint8_t *bytes, uint8_t count) {
  struct fake_chip *chip = &fake_chips[bus];
  result = chip->shorted ? ONEWIRE_SHORTED : ONEWIRE_DONE;
  for (uint8_t i = 0; i < count; i++) bytes[i] = chip->shorted ? 0x00 : chip->present ? give(chip) : 0xFF;
}

uint8_t onewire_poll(void) { return result; }
