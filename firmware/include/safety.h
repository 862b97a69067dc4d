// Safety supervisor: the pen's one state variable, the latched fault, and the safe-state path.
#pragma once
#include <stdint.h> // uint8_t

void safety_init(void);
uint8_t safety_state(void);
uint8_t safety_fault(void);
// Outputs to their safe level at once (STOP, faults); called from the link layer.
void safety_stop(void);

// Implemented by the board: drive every output to its safe level.
void board_outputs_safe(void);
