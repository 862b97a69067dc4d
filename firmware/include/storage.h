// Storage: the calibration in EEPROM, two copies each with a version, a sequence number and a CRC, written a byte
// per main-loop pass so a reset mid-write always leaves one good copy and the watchdog keeps running.
#pragma once
#include <stdint.h>       // uint16_t
#include "calibration.h"  // struct calibration

// Loads the newest good copy into the calibration module (default when EEPROM is blank, invalid when corrupt).
void storage_init(void);
// Queues the calibration for writing (both copies, older slot first).
void storage_save(const struct calibration *calibration);
// Writes the next byte if the EEPROM is ready; call every main-loop pass.
void storage_poll(void);
uint8_t storage_busy(void);
uint16_t storage_sequence(void);
