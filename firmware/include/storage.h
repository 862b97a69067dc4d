// Storage: the records the pen keeps in EEPROM (calibration, identity, auth counters), each in two copies with a
// version, a sequence number and a CRC, written a byte per main-loop pass so a reset mid-write always leaves one good
// copy and the watchdog keeps running. One write is in progress at a time.
#pragma once
#include <stdint.h>       // uint16_t
#include "calibration.h"  // struct calibration

enum storage_record { STORAGE_CALIBRATION, STORAGE_AUTH_COUNTERS, STORAGE_IDENTITY, STORAGE_RECORDS };

// What storage_load found: bits.
#define STORAGE_LOADED 1      // a good copy was loaded (the newest, by sequence number)
#define STORAGE_BLANK_SLOT 2  // a slot was never written (so a first save may have been cut short)

// Loads the newest good copy into the calibration module (default when EEPROM is blank, invalid when corrupt).
void storage_init(void);
// Queues the calibration for writing (both copies, older slot first).
void storage_save(const struct calibration *calibration);
uint16_t storage_sequence(void);

// Any record: the newest good copy's payload into payload (left as it is when there is none); STORAGE_* bits.
uint8_t storage_load(uint8_t record, void *payload);
// A slot's payload as it stands, good or not (to recover what a corrupt record still says).
void storage_read_slot(uint8_t record, uint8_t slot, void *payload);
// Queues a record for writing (both copies, older slot first); the caller checks storage_busy() first.
void storage_save_record(uint8_t record, const void *payload);
// Queues count bytes (at most 32) for writing once at address, as they are: for a caller that keeps its own record
// format (the usage ring); the caller checks storage_busy() first.
void storage_save_bytes(uint16_t address, const void *bytes, uint8_t count);
// Writes the rest of the queued record's first copy now, waiting for the EEPROM (3.4 ms a byte written): from its
// return on, a reset loads the new record. 0 if the EEPROM did not become ready in time.
uint8_t storage_finish_first_copy(void);
// Leaves the second copy unwritten (after storage_finish_first_copy): the other slot keeps the record before.
void storage_drop_second_copy(void);
// The EEPROM address of the newest copy's payload (complete when storage_busy() is 0).
uint16_t storage_payload_address(uint8_t record);

// Writes the next byte if the EEPROM is ready; call every main-loop pass.
void storage_poll(void);
uint8_t storage_busy(void);
