// 1-Wire: a master at standard speed on one bus per part (src/avr/onewire.c), stepped from the main loop: a reset with
// its presence check, or a run of bytes, is started, then onewire_poll() carries it on a few time slots at a time.
#pragma once
#include <stdint.h> // uint8_t

// The buses, in part order (parts.h): each part's chip is alone on its own pin (hardware/pen.json idChips).
enum onewire_bus { ONEWIRE_BUS_CARTRIDGE, ONEWIRE_BUS_NOSECONE, ONEWIRE_BUSES };

enum onewire_result {
  ONEWIRE_BUSY,         // the operation is still under way: poll again
  ONEWIRE_DONE,         // bytes written or read; after a reset: a presence pulse was seen
  ONEWIRE_NO_PRESENCE,  // after a reset: no presence pulse in the sampling window
  ONEWIRE_SHORTED,      // the bus stayed low where it must be high
  ONEWIRE_TIMING,       // an interrupt stretched a time slot past the datasheet's limit: the bytes are not to be trusted
};

// Both buses released (DDR and PORT bits 0), idle high on their pull-ups.
void onewire_init(void);
// Starts a reset pulse and presence check; the result says whether a chip answered.
void onewire_reset(uint8_t bus);
// Starts writing count bytes (LSB first), or reading count bytes into bytes: the buffer must stay valid until done.
void onewire_write(uint8_t bus, const uint8_t *bytes, uint8_t count);
void onewire_read(uint8_t bus, uint8_t *bytes, uint8_t count);
// Carries the operation on (at most one reset or a few slots, well under a millisecond); its result once it ends.
uint8_t onewire_poll(void);
