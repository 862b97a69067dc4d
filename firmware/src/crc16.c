// CRC-16/CCITT-FALSE for link frames and EEPROM records.
#include "crc16.h" // crc16_ccitt

// One byte in; inlined into both callers, so a frame's CRC costs no call per byte.
static inline __attribute__((always_inline)) uint16_t crc_step(uint16_t crc, uint8_t byte) {
  crc ^= (uint16_t)byte << 8;
  for (uint8_t bit = 0; bit < 8; bit++) crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
  return crc;
}

uint16_t crc16_ccitt_byte(uint16_t crc, uint8_t byte) { return crc_step(crc, byte); }

// CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection (check value 0x29B1 for "123456789").
uint16_t crc16_ccitt(const uint8_t *data, uint8_t length) {
  uint16_t crc = CRC16_CCITT_INIT;
  while (length--) crc = crc_step(crc, *data++);
  return crc;
}
