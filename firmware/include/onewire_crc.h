// The 1-Wire family's CRCs (Maxim): CRC-8 of a ROM id, CRC-16 of the DS2431's scratchpad and of the parts' identity pages.
#pragma once
#include <stdint.h> // uint8_t, uint16_t

// CRC-8, polynomial x^8 + x^5 + x^4 + 1 (0x31 reflected: 0x8C), initial 0: over a ROM id's first 7 bytes it equals the
// 8th; over all 8 it is 0.
uint8_t onewire_crc8(uint8_t crc, uint8_t byte);
// CRC-16, polynomial x^16 + x^15 + x^2 + 1 (0x8005 reflected: 0xA001), initial 0. The chip sends its complement, low
// byte first.
uint16_t onewire_crc16(uint16_t crc, uint8_t byte);
