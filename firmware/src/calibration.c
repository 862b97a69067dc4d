// Calibration: the two depth channels' calibrations in force (default, stored or invalid), their bounds (derived
// from the pen's tolerances) and the conversions between steps, sensor millivolts and true needle depth.
#include "calibration.h" // struct calibration
#include "protocol.h"    // CALIBRATION_SOURCE_*
#include "pen_config.h"  // STEPS_PER_MM, SENSORS_*, CALIBRATION_*_MIN/MAX

static struct calibration current = {
  { (uint32_t)STEPS_PER_MM * 100, 0 }, { SENSORS_DEPTH_SENSOR_ZERO_MV, SENSORS_DEPTH_SENSOR_MV_PER_MM },
};
static uint8_t source = CALIBRATION_SOURCE_DEFAULT;

void calibration_default(struct calibration *out) {
  out->depth.steps_per_mm_x100 = (uint32_t)STEPS_PER_MM * 100;
  out->depth.zero_offset_um = 0;
  out->sensor.zero_mv = SENSORS_DEPTH_SENSOR_ZERO_MV;
  out->sensor.mv_per_mm = SENSORS_DEPTH_SENSOR_MV_PER_MM;
}

void calibration_use(const struct calibration *calibration, uint8_t new_source) {
  current = *calibration;
  source = new_source;
}

const struct calibration *calibration_current(void) { return &current; }
uint8_t calibration_source(void) { return source; }

// Each field compared in a type wide enough for it and its bounds: no negation or subtraction that could overflow.
uint8_t calibration_depth_plausible(const struct depth_calibration *depth) {
  return depth->steps_per_mm_x100 >= (uint32_t)CALIBRATION_STEPS_PER_MM_X100_MIN &&
         depth->steps_per_mm_x100 <= (uint32_t)CALIBRATION_STEPS_PER_MM_X100_MAX &&
         (int32_t)depth->zero_offset_um >= CALIBRATION_ZERO_OFFSET_UM_MIN &&
         (int32_t)depth->zero_offset_um <= CALIBRATION_ZERO_OFFSET_UM_MAX;
}

uint8_t calibration_sensor_plausible(const struct sensor_calibration *sensor) {
  return (int32_t)sensor->zero_mv >= CALIBRATION_SENSOR_ZERO_MV_MIN && (int32_t)sensor->zero_mv <= CALIBRATION_SENSOR_ZERO_MV_MAX &&
         (int32_t)sensor->mv_per_mm >= CALIBRATION_SENSOR_MV_PER_MM_MIN && (int32_t)sensor->mv_per_mm <= CALIBRATION_SENSOR_MV_PER_MM_MAX;
}

int32_t calibration_steps_for_um(int32_t depth_um) {
  // Rounded to the nearest microstep.
  int64_t scaled = (int64_t)(depth_um - current.depth.zero_offset_um) * current.depth.steps_per_mm_x100;
  return (int32_t)((scaled + (scaled >= 0 ? 50000 : -50000)) / 100000);
}

int16_t calibration_um_for_steps(int32_t steps) {
  // Rounded to the nearest um, so that um -> steps -> um gives back the same um (a step is under 1 um).
  int64_t scaled = (int64_t)steps * 100000;
  int64_t half = (int64_t)current.depth.steps_per_mm_x100 / 2;
  return (int16_t)((scaled + (scaled >= 0 ? half : -half)) / (int64_t)current.depth.steps_per_mm_x100 + current.depth.zero_offset_um);
}

int32_t calibration_sensor_steps(uint16_t millivolts) {
  // The sensor reads the carriage, whose steps per mm are fixed by the lead screw: no step calibration enters here.
  int32_t scaled = ((int32_t)millivolts - current.sensor.zero_mv) * STEPS_PER_MM;
  int32_t half = current.sensor.mv_per_mm / 2;
  return (scaled + (scaled >= 0 ? half : -half)) / current.sensor.mv_per_mm;
}
