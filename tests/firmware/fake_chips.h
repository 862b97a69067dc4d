// Fake ID chips for the host build: the functions of onewire.h over two DS2431-class chips modelled a byte at a time
// (ROM commands, Read Memory, Write/Read/Copy Scratchpad, page protections), with fault switches, so src/parts.c
// runs here unmodified. Bit timing is the virtual pen's business (hardware/sim/id-chip.ts), not this fake's.
#pragma once
#include <stdint.h>  // uint8_t

#define FAKE_CHIP_MEMORY_BYTES 0x90

struct fake_chip {
  uint8_t present;        // answers resets
  uint8_t shorted;        // the bus is held low
  uint8_t rom[8];
  uint8_t memory[FAKE_CHIP_MEMORY_BYTES];
  uint8_t scratchpad[8], ta1, ta2, es;
  uint8_t lose_contact_after;  // reads of memory bytes until the contact goes (0: never)
  uint8_t flip_memory_read;    // a read of memory returns this byte's bit 0 flipped once (0: never; address + 1)
  uint8_t copy_fails;          // a copy is acknowledged but nothing is programmed
  uint8_t copy_refused;        // a copy is refused: nothing programmed, and the chip answers 1s, not the done pattern
  uint32_t copies, resets;
  // Protocol state (the fake's own).
  uint8_t state, command, count, address;
};

extern struct fake_chip fake_chips[2];

// No chip on either bus (fake_board_reset calls it): a read ends at its first reset, so the logic tests and the fuzzer
// spend no time on chips they do not look at.
void fake_chips_reset(void);
// Two good parts: a fresh cartridge (bus 0) and a nosecone with 3 sterilizations and 2 uses (bus 1).
void fake_chips_fit_parts(void);
// Lays out a part's memory as hardware/pen.json's idChips.layout says (identity with its CRC, protections).
void fake_chip_lay_out(uint8_t bus, uint8_t kind, uint32_t lot, uint16_t date);
// A ROM id with the family code, the serial's 6 bytes from serial, and its CRC-8.
void fake_chip_set_rom(uint8_t bus, uint8_t family, uint32_t serial);
