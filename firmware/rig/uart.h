// The rig's host link: USART0 at 57600 baud, 8N1; received bytes through an interrupt-driven ring buffer, sent ones
// through a ring buffer the main loop empties.
#pragma once
#include <stdint.h>  // uint8_t

#define UART_BAUD 57600  // hardware/rig.json firmataBaud

void uart_init(void);
// Takes the oldest received byte into *byte: 1, or 0 when none is waiting.
uint8_t uart_read(uint8_t *byte);
// Queues a byte to send; while the transmit buffer is full, sends to make room.
void uart_write(uint8_t byte);
// Moves the next queued byte to the transmitter if it is free: every main-loop pass, and in uart_write.
void uart_pump(void);
