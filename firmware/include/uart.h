// UART0: interrupt-driven receive and transmit ring buffers.
#pragma once
#include <stdint.h> // uint8_t

void uart_init(void);
// Next received byte into *byte; returns 0 when none is waiting.
uint8_t uart_read(uint8_t *byte);
// Free space in the transmit ring, in bytes.
uint8_t uart_tx_free(void);
// Queue bytes; waits for room when the ring is full.
void uart_write(const uint8_t *data, uint8_t length);
// Bytes lost because the receive ring was full.
uint16_t uart_rx_overruns(void);
// Implemented by the caller, run inside the receive interrupt when a STOP frame's header arrives after a sync
// byte: the real-time path (grbl's feed hold), ahead of the ring buffer and the main loop.
void uart_stop_header_received(void);
