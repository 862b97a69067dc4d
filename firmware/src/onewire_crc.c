// The 1-Wire family's CRCs (Maxim): CRC-8 of a ROM id, CRC-16 of the DS2431's scratchpad and of the parts' identity pages.
#include "onewire_crc.h" // onewire_crc8, onewire_crc16

// Bit by bit, reflected (the bus sends the least significant bit first): small, and a few hundred bytes a read need
// no table.
uint8_t onewire_crc8(uint8_t crc, uint8_t byte) {
  crc ^= byte;
  for (uint8_t bit = 0; bit < 8; bit++) crc = (crc & 1) ? (uint8_t)((crc >> 1) ^ 0x8C) : (uint8_t)(crc >> 1);
  return crc;
}

uint16_t onewire_crc16(uint16_t crc, uint8_t byte) {
  crc ^= byte;
  for (uint8_t bit = 0; bit < 8; bit++) crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
  return crc;
}
