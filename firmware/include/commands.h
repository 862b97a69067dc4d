// Command dispatcher: checks each command's length, the protocol handshake and the FAULT whitelist, then answers it.
#pragma once
#include <stdint.h> // uint8_t

// Fill a telemetry message; returns its length.
uint8_t commands_telemetry(uint8_t *out);

// Implemented by the board and link: inputs the dispatcher reports.
uint32_t clock_ms(void);
uint8_t board_reset_cause(void);
uint32_t board_build_id(void);
uint16_t link_bad_frames(void);
uint16_t link_dropped_bytes(void);
