// Safety supervisor: the pen's one state variable, the latched fault, and the safe-state path.
#include "safety.h"   // safety_state
#include "protocol.h" // enum pen_state
#include "faults.h"   // enum fault_code

static uint8_t state = PEN_STATE_BOOT;
static uint8_t fault = FAULT_NONE;

void safety_init(void) {
  board_outputs_safe();
  fault = FAULT_NONE;
  // Position is unknown after any reset: nothing moves before homing.
  state = PEN_STATE_HOMING_REQUIRED;
}

uint8_t safety_state(void) { return state; }
uint8_t safety_fault(void) { return fault; }

void safety_stop(void) {
  board_outputs_safe();
  if (state == PEN_STATE_ARMED || state == PEN_STATE_RUNNING) state = PEN_STATE_IDLE;
}
