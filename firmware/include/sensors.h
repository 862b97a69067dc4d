// Sensors: ADC sampling of current, temperature, supply and depth sensor; switch inputs; interlock edges.
#pragma once
#include <stdint.h> // uint16_t

// on_interlock runs inside the pin-change interrupts with the fault an edge means (e-stop tripped, cartridge out).
void sensors_init(void (*on_interlock)(uint8_t fault_code));
uint16_t sensors_current_ma(void);
int16_t sensors_temperature_deci_c(void);
uint16_t sensors_supply_mv(void);
// The independent depth sensor's output, filtered.
uint16_t sensors_depth_mv(void);
uint8_t sensors_ntc_plausible(void);
uint8_t sensors_depth_sensor_plausible(void);
// Every channel has been sampled enough to trust its value.
uint8_t sensors_settled(void);
// Switch inputs as an input_bit set (estop, home switch, cartridge present, footswitch).
uint8_t sensors_inputs(void);
