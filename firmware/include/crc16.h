// CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection (check value 0x29B1 for "123456789").
#pragma once
#include <stdint.h> // uint8_t, uint16_t

uint16_t crc16_ccitt(const uint8_t *data, uint8_t length);
