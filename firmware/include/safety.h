// Safety supervisor: the pen's one state variable, interlocks, heartbeat, the latched fault and the one safe path.
#pragma once
#include <stdint.h> // uint8_t
#include "calibration.h" // struct calibration

void safety_init(uint8_t reset_cause);
uint8_t safety_state(void);
uint8_t safety_fault(void);
uint8_t safety_cartridge_cleared(void);
// Motor on, armed, or the needle moving on the host's command: what the heartbeat must keep alive.
uint8_t safety_outputs_active(void);

// From interrupts: the fault to latch at the next main-loop pass (the first one wins).
void safety_flag_fault(uint8_t code);
// The 1 kHz tick: heartbeat expiry, acted on within the tick.
void safety_tick_1khz(void);
// The main loop: latches flagged faults, checks interlocks and sensors, runs homing and the needle loop.
void safety_poll(uint32_t now_ms);
// Set when a fault was latched since the last call (for an immediate telemetry report).
uint8_t safety_take_report(void);

// Commands; each returns 0 or an error_code, with *detail set for the error reply.
void safety_heartbeat(void);
uint8_t safety_home(int32_t *detail);
uint8_t safety_move_to(uint16_t depth_um, int32_t *detail);
uint8_t safety_arm(int32_t *detail);
void safety_disarm(void);
uint8_t safety_start_needle(uint16_t strokes_per_second, int32_t *detail);
void safety_stop_needle(void);
uint8_t safety_clear_fault(int32_t *detail);
uint8_t safety_clear_cartridge(uint32_t cartridge_id, int32_t *detail);
// Uses and stores a new calibration; refused while the needle may move or a write is still in progress.
uint8_t safety_set_calibration(const struct calibration *calibration, int32_t *detail);
// STOP: motor off, disarm, needle home. Not a fault.
void safety_stop(void);
// From the receive interrupt: run safety_stop at the next main-loop pass.
void safety_request_stop(void);

// Implemented by the board: drive every output to its safe level.
void board_outputs_safe(void);
