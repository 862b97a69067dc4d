// Sensors: ADC sampling of current, temperature, supply and depth sensor; switch inputs; interlock edges.
#pragma once
#include <stdint.h> // uint16_t

void sensors_init(void);
uint16_t sensors_current_ma(void);
int16_t sensors_temperature_deci_c(void);
uint16_t sensors_supply_mv(void);
// Needle depth from the independent depth sensor, in um (through the calibration).
int16_t sensors_depth_um(void);
uint8_t sensors_ntc_plausible(void);
uint8_t sensors_depth_sensor_plausible(void);
// Every channel has been sampled enough to trust its value.
uint8_t sensors_settled(void);
// Switch inputs as an input_bit set (estop, home switch, cartridge present, footswitch).
uint8_t sensors_inputs(void);
