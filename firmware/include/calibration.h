// Calibration: the two depth channels' calibrations in force (default, stored or invalid), their bounds (derived
// from the pen's tolerances) and the conversions between steps, sensor millivolts and true needle depth.
#pragma once
#include <stdint.h> // uint32_t

// Step channel (technician): microsteps per mm of true needle depth, and the true needle depth at home.
struct depth_calibration {
  uint32_t steps_per_mm_x100;
  int16_t zero_offset_um;
};

// Depth sensor channel (engineer): its output at carriage 0 and its slope per mm of carriage travel.
struct sensor_calibration {
  uint16_t zero_mv;
  uint16_t mv_per_mm;
};

struct calibration {
  struct depth_calibration depth;
  struct sensor_calibration sensor;
};

void calibration_use(const struct calibration *calibration, uint8_t source);
const struct calibration *calibration_current(void);
uint8_t calibration_source(void);
void calibration_default(struct calibration *out);
// 1 when every field is inside the bounds derived from the pen's tolerances.
uint8_t calibration_depth_plausible(const struct depth_calibration *depth);
uint8_t calibration_sensor_plausible(const struct sensor_calibration *sensor);

int32_t calibration_steps_for_um(int32_t depth_um);
int16_t calibration_um_for_steps(int32_t steps);
// Where the depth sensor puts the carriage, in microsteps from home.
int32_t calibration_sensor_steps(uint16_t millivolts);
