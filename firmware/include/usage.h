// Usage: the needle time (seconds RUNNING with the motor on) over the pen's life, kept in EEPROM across resets in a
// ring of slots written in turn, so that each cell is written 1/USAGE_SLOTS as often as the count is saved.
#pragma once
#include <stdint.h>  // uint8_t, uint32_t

// The ring: USAGE_SLOTS slots of {sequence u16, needle seconds u32, CRC-16 over both} from USAGE_EEPROM_ADDRESS, the
// last 128 bytes of the EEPROM (free: the storage.c records end at 0x1FF).
#define USAGE_EEPROM_ADDRESS 0x380
#define USAGE_SLOTS 16
#define USAGE_SLOT_BYTES 8

// Loads the newest good slot (0 s when none is); call after storage_init.
void usage_init(void);
// Every main-loop pass: counts the time since the last pass while needle_running, and queues a save through the
// storage writer every USAGE_WRITE_PERIOD_S seconds counted and when the needle stops (when the writer is free).
void usage_poll(uint32_t now_ms, uint8_t needle_running);
uint32_t usage_needle_seconds(void);
// The usage reply (msg_usage_t) into reply; returns its length.
uint8_t usage_report(uint8_t *reply);
