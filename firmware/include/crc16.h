// CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection (check value 0x29B1 for "123456789").
#pragma once
#include <stdint.h> // uint8_t, uint16_t

#define CRC16_CCITT_INIT 0xFFFF

uint16_t crc16_ccitt(const uint8_t *data, uint8_t length);
// One more byte into a CRC under way (start from CRC16_CCITT_INIT): for data that is not in one buffer (EEPROM).
uint16_t crc16_ccitt_byte(uint16_t crc, uint8_t byte);
