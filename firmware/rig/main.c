// The HIL rig's firmware: a second ATmega328P (an Arduino Uno, 16 MHz) that drives and watches the pen's signals for
// the QA host, speaking Firmata 2.x over USART0 at 57600 baud so that johnny-five (firmata-io) drives it as it would
// a board running StandardFirmata. The wiring to the pen is hardware/rig.json; the rig itself stays a general Firmata
// board for every pin.
//
// Files:  firmata.c  the protocol: MIDI-style parser (running status, real-time bytes, bounded sysex) and encoders
//         rig.c      the board's behaviour: pin modes and states, queries answered, digital and analog reports
//         avr/pins.c levels on ports B/C/D, PWM on Timers 0/1/2 (D3 D5 D6 D9 D10 D11), the ADC for A0-A5
//         avr/uart.c USART0: interrupt-driven receive ring buffer, polled transmit ring buffer
//         avr/clock.c the millisecond tick (Timer0's overflow)
// firmata.c and rig.c are pure logic: tests/firmware/rig_tests.c builds them for the host (make build/host/rig_tests).
//
// Subset: REPORT_VERSION (2.8, at start and on request), REPORT_FIRMWARE ("pen-rig" 1.0, at start and on request),
// CAPABILITY_QUERY, ANALOG_MAPPING_QUERY, PIN_STATE_QUERY, SET_PIN_MODE (INPUT, OUTPUT, INPUT_PULLUP on D2-A5; ANALOG
// on A0-A5; PWM on D3 D5 D6 D9 D10 D11), DIGITAL_MESSAGE, SET_DIGITAL_PIN_VALUE, REPORT_DIGITAL, REPORT_ANALOG,
// ANALOG_MESSAGE and EXTENDED_ANALOG (PWM writes), SAMPLING_INTERVAL and its query, SYSTEM_RESET. D0 and D1 (the UART)
// have no modes. Digital inputs are reported when they change (scanned every main-loop pass), analog inputs every
// sampling interval (19 ms until the host sets it). Not here: servo, I2C, serial, 1-Wire, stepper, encoder.
#include <avr/io.h>        // MCUSR
#include <avr/interrupt.h> // sei
#include <avr/wdt.h>       // wdt_disable
#include "rig.h"           // rig_start, rig_receive, rig_poll
#include "rig_board.h"     // pins_init
#include "firmata.h"       // firmata_send
#include "uart.h"          // uart_init, uart_read, uart_write, uart_pump
#include "clock.h"         // clock_init, clock_ms

void firmata_send(uint8_t byte) { uart_write(byte); }

int main(void) {
  // The rig never uses the watchdog; one left running by a bootloader (and forced on while WDRF is set) would reset it.
  MCUSR &= (uint8_t)~_BV(WDRF);
  wdt_disable();
  clock_init();
  pins_init();
  uart_init();
  sei();
  rig_start();
  for (;;) {
    uint8_t byte;
    while (uart_read(&byte)) rig_receive(byte);
    rig_poll(clock_ms());
    uart_pump();
  }
}
