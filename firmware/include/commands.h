// Command dispatcher and handlers: each command's length, the protocol handshake, the FAULT whitelist, then the
// command itself (home, move, arm, needle, calibration), its preconditions checked against the safety supervisor.
#pragma once
#include <stdint.h> // uint8_t
#include "link.h"   // struct link_parser

// The parser whose counters telemetry reports.
void commands_init(const struct link_parser *parser);
// Fill a telemetry message; returns its length.
uint8_t commands_telemetry(uint8_t *out);
