// USART0 for the host link: received bytes land in a ring buffer from the receive interrupt, so none is lost while the
// main loop reports; bytes to send wait in another, moved to the data register by uart_pump whenever it is empty.
// Sending is polled on purpose: it never writes UCSR0B after init, and avr8js (the virtual rig) clears a pending
// received byte's interrupt on every UCSR0B write, which toggling UDRIE for an interrupt-driven sender would do.
#include <avr/io.h>        // UBRR0, UCSR0A, UCSR0B, UCSR0C, UDR0
#include <avr/interrupt.h> // ISR
#include "uart.h"          // uart_init, uart_read, uart_write, uart_pump, UART_BAUD

#define RX_SIZE 128  // powers of two: the indices wrap with a mask
#define TX_SIZE 128
// Double speed (U2X0): 16 MHz / (8 x 35) = 57143 baud, 0.8% off 57600 (single speed would be 2.1% off).
#define UBRR_VALUE ((F_CPU + 4UL * UART_BAUD) / (8UL * UART_BAUD) - 1)  // rounded: 34

static volatile uint8_t rx_buffer[RX_SIZE];
static volatile uint8_t rx_head, rx_tail;  // head: written by the interrupt; tail: by the main loop
static uint8_t tx_buffer[TX_SIZE];
static uint8_t tx_head, tx_tail;  // the main loop's alone

void uart_init(void) {
  UBRR0 = UBRR_VALUE;
  UCSR0A = _BV(U2X0);
  UCSR0C = _BV(UCSZ01) | _BV(UCSZ00);                  // 8 data bits, no parity, 1 stop bit
  UCSR0B = _BV(RXEN0) | _BV(TXEN0) | _BV(RXCIE0);
}

ISR(USART_RX_vect) {
  uint8_t byte = UDR0;
  uint8_t next = (uint8_t)((rx_head + 1) & (RX_SIZE - 1));
  if (next == rx_tail) return;  // full: the host sends faster than the rig reads; the byte is dropped
  rx_buffer[rx_head] = byte;
  rx_head = next;
}

void uart_pump(void) {
  if (tx_tail == tx_head || !(UCSR0A & _BV(UDRE0))) return;
  UDR0 = tx_buffer[tx_tail];
  tx_tail = (uint8_t)((tx_tail + 1) & (TX_SIZE - 1));
}

uint8_t uart_read(uint8_t *byte) {
  if (rx_tail == rx_head) return 0;
  *byte = rx_buffer[rx_tail];
  rx_tail = (uint8_t)((rx_tail + 1) & (RX_SIZE - 1));
  return 1;
}

void uart_write(uint8_t byte) {
  uint8_t next = (uint8_t)((tx_head + 1) & (TX_SIZE - 1));
  while (next == tx_tail) uart_pump();  // full: a place frees every 174 µs
  tx_buffer[tx_head] = byte;
  tx_head = next;
  uart_pump();
}
