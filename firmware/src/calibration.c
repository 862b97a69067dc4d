// Calibration: the depth calibration in force (default, stored or invalid), its bounds and its conversions.
#include "calibration.h" // struct calibration
#include "protocol.h"    // CALIBRATION_SOURCE_*
#include "pen_config.h"  // STEPS_PER_MM, DEPTH_*_UM, SENSORS_*, CALIBRATION_BOUNDS_*

static struct calibration current = {
  (uint32_t)STEPS_PER_MM * 100, 0, SENSORS_DEPTH_SENSOR_ZERO_MV, SENSORS_DEPTH_SENSOR_MV_PER_MM,
};
static uint8_t source = CALIBRATION_SOURCE_DEFAULT;

void calibration_default(struct calibration *out) {
  out->steps_per_mm_x100 = (uint32_t)STEPS_PER_MM * 100;
  out->zero_offset_um = 0;
  out->sensor_zero_mv = SENSORS_DEPTH_SENSOR_ZERO_MV;
  out->sensor_mv_per_mm = SENSORS_DEPTH_SENSOR_MV_PER_MM;
}

void calibration_use(const struct calibration *calibration, uint8_t new_source) {
  current = *calibration;
  source = new_source;
}

const struct calibration *calibration_current(void) { return &current; }
uint8_t calibration_source(void) { return source; }

static uint8_t within_percent(uint32_t value, uint32_t nominal, uint32_t percent) {
  uint32_t margin = nominal * percent / 100;
  return value >= nominal - margin && value <= nominal + margin;
}

uint8_t calibration_plausible(const struct calibration *c) {
  int16_t offset = c->zero_offset_um < 0 ? -c->zero_offset_um : c->zero_offset_um;
  return within_percent(c->steps_per_mm_x100, (uint32_t)STEPS_PER_MM * 100, CALIBRATION_BOUNDS_STEPS_PER_MM_TOLERANCE_PERCENT) &&
         offset <= CALIBRATION_BOUNDS_ZERO_OFFSET_MAX_UM &&
         within_percent(c->sensor_zero_mv, SENSORS_DEPTH_SENSOR_ZERO_MV, CALIBRATION_BOUNDS_SENSOR_TOLERANCE_PERCENT) &&
         within_percent(c->sensor_mv_per_mm, SENSORS_DEPTH_SENSOR_MV_PER_MM, CALIBRATION_BOUNDS_SENSOR_TOLERANCE_PERCENT);
}

int32_t calibration_steps_for_um(int32_t depth_um) {
  // Rounded to the nearest microstep.
  int64_t scaled = (int64_t)(depth_um - current.zero_offset_um) * current.steps_per_mm_x100;
  return (int32_t)((scaled + (scaled >= 0 ? 50000 : -50000)) / 100000);
}

int16_t calibration_um_for_steps(int32_t steps) {
  // Rounded to the nearest um, so that um -> steps -> um gives back the same um (a step is under 1 um).
  int64_t scaled = (int64_t)steps * 100000;
  int64_t half = (int64_t)current.steps_per_mm_x100 / 2;
  return (int16_t)((scaled + (scaled >= 0 ? half : -half)) / (int64_t)current.steps_per_mm_x100 + current.zero_offset_um);
}

int16_t calibration_sensor_um(uint32_t millivolts) {
  // The sensor reads the carriage; the offset maps it to true depth like the step count.
  return (int16_t)(((int32_t)millivolts - current.sensor_zero_mv) * 1000 / current.sensor_mv_per_mm + current.zero_offset_um);
}

int32_t calibration_window_max_steps(void) { return calibration_steps_for_um(DEPTH_MAX_UM); }
