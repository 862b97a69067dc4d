// Sensors: ADC sampling of current, temperature, supply and depth sensor; switch inputs; interlock edges.
#include <avr/io.h>        // ADMUX, ADCSRA, PCICR
#include <avr/interrupt.h> // ISR
#include <util/atomic.h>   // ATOMIC_BLOCK
#include "sensors.h"       // sensors_inputs
#include "faults.h"        // FAULT_ESTOP
#include "protocol.h"      // INPUT_BIT_*
#include "pen_config.h"    // ADC_*, SENSORS_*, LIMITS_*, PIN_*

#define CHANNELS 4
#define FILTER_SHIFT 2  // each sample moves the filtered value a quarter of the way
#define SETTLE_SAMPLES 16

static const uint8_t channel_of[CHANNELS] = { ADC_MOTOR_CURRENT, ADC_TEMPERATURE, ADC_SUPPLY, ADC_DEPTH_SENSOR };
static const int16_t ntc_table[] = NTC_TABLE;
static volatile uint16_t filtered_x16[CHANNELS];  // counts * 16
static volatile uint16_t latest[CHANNELS];  // unfiltered: open and short show at once, not after the filter
static volatile uint8_t samples[CHANNELS];
static volatile uint8_t current_slot;
static void (*interlock_hook)(uint8_t fault_code);

#define INPUT_ACTIVE(name) \
  ((((PIN_##name##_PIN >> PIN_##name##_BIT) & 1) ^ PIN_##name##_ACTIVE_LOW) != 0)

void sensors_init(void (*on_interlock)(uint8_t fault_code)) {
  interlock_hook = on_interlock;
  ADMUX = _BV(REFS0) | channel_of[0];                          // AVcc reference
  ADCSRA = _BV(ADEN) | _BV(ADIE) | _BV(ADSC) | 7;              // clk/128, interrupt, start
  EICRA |= _BV(ISC10);                                         // INT1 (e-stop) on any edge
  EIMSK |= _BV(INT1);
  PCMSK0 |= _BV(PIN_CARTRIDGE_PRESENT_BIT);                    // cartridge switch on pin change
  PCICR |= _BV(PCIE0);
}

ISR(ADC_vect) {
  uint8_t slot = current_slot;
  uint16_t counts = ADC;
  latest[slot] = counts;
  uint16_t value = samples[slot] == 0 ? counts << 4 : filtered_x16[slot];
  filtered_x16[slot] = value - (value >> FILTER_SHIFT) + ((counts << 4) >> FILTER_SHIFT);
  if (samples[slot] < SETTLE_SAMPLES) samples[slot]++;
  slot = (slot + 1) % CHANNELS;
  current_slot = slot;
  ADMUX = _BV(REFS0) | channel_of[slot];
  ADCSRA |= _BV(ADSC);
}

// Interlock edges are handed to the hook at once, within microseconds: it cuts the motor, the main loop completes the
// safe path.
ISR(INT1_vect) {
  if (INPUT_ACTIVE(ESTOP)) interlock_hook(FAULT_ESTOP);
}

ISR(PCINT0_vect) {
  if (!INPUT_ACTIVE(CARTRIDGE_PRESENT)) interlock_hook(FAULT_CARTRIDGE_REMOVED);
}

static uint16_t counts(uint8_t slot) {
  uint16_t value;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { value = filtered_x16[slot]; }
  return (value + 8) >> 4;
}

static uint32_t millivolts(uint8_t slot) {
  return (uint32_t)counts(slot) * SENSORS_ADC_REFERENCE_MV / 1023;
}

uint16_t sensors_current_ma(void) {
  return (uint16_t)(millivolts(0) * 1000 / SENSORS_CURRENT_SHUNT_MV_PER_A);
}

int16_t sensors_temperature_deci_c(void) {
  uint16_t adc = counts(1);
  uint8_t index = adc / NTC_TABLE_STEP_COUNTS;
  if (index >= sizeof ntc_table / sizeof ntc_table[0] - 1) return ntc_table[sizeof ntc_table / sizeof ntc_table[0] - 1];
  int16_t low = ntc_table[index], high = ntc_table[index + 1];
  return low + (int16_t)((int32_t)(high - low) * (adc % NTC_TABLE_STEP_COUNTS) / NTC_TABLE_STEP_COUNTS);
}

uint16_t sensors_supply_mv(void) {
  return (uint16_t)(millivolts(2) * SENSORS_SUPPLY_DIVIDER_RATIO);
}

uint16_t sensors_depth_mv(void) { return (uint16_t)millivolts(3); }

static uint16_t latest_counts(uint8_t slot) {
  uint16_t value;
  ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { value = latest[slot]; }
  return value;
}

uint8_t sensors_ntc_plausible(void) {
  uint16_t adc = latest_counts(1);
  return adc > LIMITS_NTC_SHORT_COUNTS && adc < LIMITS_NTC_OPEN_COUNTS;
}

uint8_t sensors_depth_sensor_plausible(void) {
  uint32_t mv = (uint32_t)latest_counts(3) * SENSORS_ADC_REFERENCE_MV / 1023;
  return mv >= LIMITS_DEPTH_SENSOR_MIN_MV && mv <= LIMITS_DEPTH_SENSOR_MAX_MV;
}

uint8_t sensors_settled(void) {
  for (uint8_t slot = 0; slot < CHANNELS; slot++) {
    if (samples[slot] < SETTLE_SAMPLES) return 0;
  }
  return 1;
}

uint8_t sensors_inputs(void) {
  return (INPUT_ACTIVE(ESTOP) << INPUT_BIT_ESTOP) | (INPUT_ACTIVE(HOME_SWITCH) << INPUT_BIT_HOME_SWITCH) |
         (INPUT_ACTIVE(CARTRIDGE_PRESENT) << INPUT_BIT_CARTRIDGE_PRESENT) | (INPUT_ACTIVE(FOOTSWITCH) << INPUT_BIT_FOOTSWITCH);
}
