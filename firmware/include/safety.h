// Safety supervisor: the pen's one state variable and its transition table, interlocks, heartbeat, the depth window
// at run time, the latched fault with its clear rules, and the one safe path.
#pragma once
#include <stdint.h> // uint8_t

void safety_init(uint8_t reset_cause);
uint8_t safety_state(void);
uint8_t safety_fault(void);
// Moves to next_state if the transition table allows it (FAULT only through the safe path); returns 1 if it did.
uint8_t safety_enter(uint8_t next_state);
uint8_t safety_cartridge_cleared(void);
void safety_clear_cartridge(void);

// Hooks run inside interrupts: an interlock edge, the STOP byte, the 1 kHz tick.
void safety_on_interlock(uint8_t fault_code);
void safety_on_stop_byte(void);
void safety_tick_1khz(void);
// A fault flagged by an interrupt and not yet latched: it vetoes a motor start.
const volatile uint8_t *safety_flagged_fault(void);

// The main loop: latches flagged faults, checks interlocks, sensors and the window, runs homing and the needle loop.
void safety_poll(uint32_t now_ms);
// Set when a fault was latched since the last call (for an immediate telemetry report).
uint8_t safety_take_report(void);

void safety_heartbeat(void);
uint8_t safety_heartbeat_fresh(void);
// The first interlock tripped (a fault code), or FAULT_NONE.
uint8_t safety_interlock(void);
// 0 when the needle, by step count and by depth sensor, and its target are inside the depth window; else
// ERROR_CODE_DEPTH_OUTSIDE_WINDOW with the offending depth in *detail.
uint8_t safety_depth_refusal(int32_t *detail);
// Leaves FAULT by its clear rule; 0 or an error code with *detail set.
uint8_t safety_clear_fault(int32_t *detail);
// STOP: motor off, disarm, needle home. Not a fault.
void safety_stop(void);
