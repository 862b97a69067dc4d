// Calibration: the depth calibration in force (default, stored or invalid), its bounds and its conversions.
#pragma once
#include <stdint.h> // uint32_t

struct calibration {
  uint32_t steps_per_mm_x100;  // microsteps per mm of true needle depth, x100
  int16_t zero_offset_um;      // true needle depth at step 0 (home)
  uint16_t sensor_zero_mv;     // depth sensor output at 0 mm of carriage travel
  uint16_t sensor_mv_per_mm;   // depth sensor slope
};

void calibration_use(const struct calibration *calibration, uint8_t source);
const struct calibration *calibration_current(void);
uint8_t calibration_source(void);
void calibration_default(struct calibration *out);
// 1 when every field is within the pen description's bounds around nominal.
uint8_t calibration_plausible(const struct calibration *calibration);

int32_t calibration_steps_for_um(int32_t depth_um);
int16_t calibration_um_for_steps(int32_t steps);
int16_t calibration_sensor_um(uint32_t millivolts);
// The step position of the depth window's deep end.
int32_t calibration_window_max_steps(void);
