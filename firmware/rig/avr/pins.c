// Board I/O by Arduino pin number: port B, C or D for the levels, Timer0/1/2 in 8-bit fast PWM for D3, D5, D6, D9, D10
// and D11, the ADC for A0-A5.
#include <avr/io.h>     // DDRx, PORTx, PINx, TCCRnA, OCRnx, ADMUX, ADCSRA, DIDR0
#include "rig_board.h"  // pins_*
#include "firmata.h"    // FIRMATA_MODE_*

#define FIRST_PORT_B_PIN 8
#define FIRST_PORT_C_PIN 14

static volatile uint8_t *ddr_of(uint8_t pin) {
  return pin < FIRST_PORT_B_PIN ? &DDRD : pin < FIRST_PORT_C_PIN ? &DDRB : &DDRC;
}
static volatile uint8_t *port_of(uint8_t pin) {
  return pin < FIRST_PORT_B_PIN ? &PORTD : pin < FIRST_PORT_C_PIN ? &PORTB : &PORTC;
}
static volatile uint8_t *input_of(uint8_t pin) {
  return pin < FIRST_PORT_B_PIN ? &PIND : pin < FIRST_PORT_C_PIN ? &PINB : &PINC;
}
static uint8_t mask_of(uint8_t pin) {
  return (uint8_t)(1u << (pin < FIRST_PORT_B_PIN ? pin : pin < FIRST_PORT_C_PIN ? pin - FIRST_PORT_B_PIN
                                                                                 : pin - FIRST_PORT_C_PIN));
}

// A PWM pin's compare-output bit (non-inverting) in its timer's control register A.
static volatile uint8_t *pwm_control_of(uint8_t pin, uint8_t *connect) {
  switch (pin) {
    case 3: *connect = _BV(COM2B1); return &TCCR2A;
    case 5: *connect = _BV(COM0B1); return &TCCR0A;
    case 6: *connect = _BV(COM0A1); return &TCCR0A;
    case 9: *connect = _BV(COM1A1); return &TCCR1A;
    case 10: *connect = _BV(COM1B1); return &TCCR1A;
    case 11: *connect = _BV(COM2A1); return &TCCR2A;
    default: return 0;
  }
}

static void pwm_set_compare(uint8_t pin, uint8_t duty) {
  switch (pin) {
    case 3: OCR2B = duty; break;
    case 5: OCR0B = duty; break;
    case 6: OCR0A = duty; break;
    case 9: OCR1A = duty; break;  // 16-bit: avr-gcc writes the high byte (through TEMP) first
    case 10: OCR1B = duty; break;
    case 11: OCR2A = duty; break;
    default: break;
  }
}

static void pwm_release(uint8_t pin) {
  uint8_t connect;
  volatile uint8_t *control = pwm_control_of(pin, &connect);
  if (control) *control &= (uint8_t)~connect;
}

void pins_init(void) {
  // Timer0 is set up by avr/clock.c (its overflow is the millisecond tick), the same fast PWM at clk/64.
  TCCR1A = _BV(WGM10);               // with WGM12: fast PWM, 8-bit (mode 5)
  TCCR1B = _BV(WGM12) | _BV(CS11) | _BV(CS10);  // clk/64: 976 Hz
  TCCR2A = _BV(WGM21) | _BV(WGM20);  // fast PWM, TOP 0xFF
  TCCR2B = _BV(CS22);                // clk/64 (Timer2's prescaler codes differ from Timer0/1's)
  ADMUX = _BV(REFS0);                // AVcc reference
  ADCSRA = _BV(ADEN) | _BV(ADPS2) | _BV(ADPS1) | _BV(ADPS0);  // clk/128: 125 kHz, within the ADC's 50-200 kHz
}

void pins_set_mode(uint8_t pin, uint8_t mode) {
  uint8_t mask = mask_of(pin);
  pwm_release(pin);
  if (pin >= FIRST_PORT_C_PIN) DIDR0 &= (uint8_t)~mask;
  switch (mode) {
    case FIRMATA_MODE_OUTPUT:
    case FIRMATA_MODE_PWM:  // duty 0 until written: low, the timer not yet connected
      *port_of(pin) &= (uint8_t)~mask;
      *ddr_of(pin) |= mask;
      break;
    case FIRMATA_MODE_PULLUP:
      *ddr_of(pin) &= (uint8_t)~mask;
      *port_of(pin) |= mask;
      break;
    case FIRMATA_MODE_ANALOG:
      *ddr_of(pin) &= (uint8_t)~mask;
      *port_of(pin) &= (uint8_t)~mask;
      if (pin >= FIRST_PORT_C_PIN) DIDR0 |= mask;  // the digital buffer off: it would draw current at mid levels
      break;
    default:  // FIRMATA_MODE_INPUT
      *ddr_of(pin) &= (uint8_t)~mask;
      *port_of(pin) &= (uint8_t)~mask;
      break;
  }
}

void pins_write(uint8_t pin, uint8_t level) {
  if (level) *port_of(pin) |= mask_of(pin);
  else *port_of(pin) &= (uint8_t)~mask_of(pin);
}

void pins_set_duty(uint8_t pin, uint8_t duty) {
  uint8_t connect;
  volatile uint8_t *control = pwm_control_of(pin, &connect);
  if (!control) return;
  // 0 and 255 as plain levels: fast PWM at compare 0 still gives a one-count spike, and at 255 never reaches high.
  if (duty == 0 || duty == 255) {
    *control &= (uint8_t)~connect;
    pins_write(pin, duty == 255);
    return;
  }
  pwm_set_compare(pin, duty);
  *control |= connect;
}

uint8_t pins_read(uint8_t pin) { return (*input_of(pin) & mask_of(pin)) != 0; }

uint16_t pins_analog_read(uint8_t channel) {
  ADMUX = (uint8_t)(_BV(REFS0) | (channel & 0x07));
  ADCSRA |= _BV(ADSC);
  while (ADCSRA & _BV(ADSC)) {}  // 13 ADC clocks: 104 µs
  return ADC;
}
