// UART0: interrupt-driven receive and transmit ring buffers.
#pragma once
#include <stdint.h> // uint8_t

// on_stop_byte runs inside the receive interrupt when the STOP byte arrives: the real-time path (grbl's feed
// hold), ahead of the ring buffer and the main loop.
void uart_init(void (*on_stop_byte)(void));
// Next received byte into *byte; returns 0 when none is waiting.
uint8_t uart_read(uint8_t *byte);
// Free space in the transmit ring, in bytes.
uint8_t uart_tx_free(void);
// Queue bytes; waits for room when the ring is full.
void uart_write(const uint8_t *data, uint8_t length);
// Bytes lost because the receive ring was full.
uint16_t uart_rx_overruns(void);
