// UART0: interrupt-driven receive and transmit ring buffers.
#include <avr/io.h>        // UDR0, UCSR0B
#include <avr/interrupt.h> // ISR
#include <util/atomic.h>   // ATOMIC_BLOCK
#include "uart.h"          // uart_read
#include "pen_config.h"    // UART_BAUD
#include "protocol.h"      // FRAME_STOP

#define RX_RING_BYTES 64  // > one max frame, so a frame arriving while the main loop is busy is not lost
#define TX_RING_BYTES 128 // two max frames: a reply and a telemetry event
_Static_assert((RX_RING_BYTES & (RX_RING_BYTES - 1)) == 0, "ring sizes are powers of two");
_Static_assert((TX_RING_BYTES & (TX_RING_BYTES - 1)) == 0, "ring sizes are powers of two");

static volatile uint8_t rx_ring[RX_RING_BYTES], tx_ring[TX_RING_BYTES];
static volatile uint8_t rx_head, rx_tail, tx_head, tx_tail;
static volatile uint16_t rx_overruns;
static void (*stop_hook)(void);
void uart_init(void (*on_stop_byte)(void)) {
  stop_hook = on_stop_byte;
  uint16_t ubrr = (uint16_t)(F_CPU / (16UL * UART_BAUD) - 1);
  UBRR0H = ubrr >> 8;
  UBRR0L = ubrr & 0xFF;
  UCSR0A = 0;
  UCSR0C = _BV(UCSZ01) | _BV(UCSZ00);  // 8N1
  UCSR0B = _BV(RXEN0) | _BV(TXEN0) | _BV(RXCIE0);
}

ISR(USART_RX_vect) {
  uint8_t byte = UDR0;
  // The STOP byte is kept out of frames by escaping, so it means STOP wherever it lands: act now, do not buffer.
  if (byte == FRAME_STOP) {
    stop_hook();
    return;
  }
  uint8_t next = (rx_head + 1) & (RX_RING_BYTES - 1);
  if (next == rx_tail) {
    rx_overruns++;
    return;
  }
  rx_ring[rx_head] = byte;
  rx_head = next;
}

ISR(USART_UDRE_vect) {
  if (tx_head == tx_tail) {
    UCSR0B &= ~_BV(UDRIE0);
    return;
  }
  UDR0 = tx_ring[tx_tail];
  tx_tail = (tx_tail + 1) & (TX_RING_BYTES - 1);
}

uint8_t uart_read(uint8_t *byte) {
  if (rx_head == rx_tail) return 0;
  *byte = rx_ring[rx_tail];
  rx_tail = (rx_tail + 1) & (RX_RING_BYTES - 1);
  return 1;
}

uint8_t uart_tx_free(void) {
  return (uint8_t)((tx_tail - tx_head - 1) & (TX_RING_BYTES - 1));
}

void uart_write(const uint8_t *data, uint8_t length) {
  while (length--) {
    uint8_t next = (tx_head + 1) & (TX_RING_BYTES - 1);
    while (next == tx_tail) {}  // the UDRE interrupt drains the ring
    tx_ring[tx_head] = *data++;
    tx_head = next;
    UCSR0B |= _BV(UDRIE0);
  }
}

uint16_t uart_rx_overruns(void) {
  uint16_t count;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { count = rx_overruns; }
  return count;
}
