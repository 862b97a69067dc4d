// Pen: the firmware's start-up order and its main-loop pass, apart from main() so that the host build runs them too.
#pragma once
#include "link.h"  // struct link_parser, struct link_session

// Every module initialised, hooks registered, in order; interrupts are still off.
void pen_init(void);
// The first half of a main-loop pass: every byte the UART has received goes to the link, and the commands they
// complete are executed.
void pen_take_bytes(void);
// The second half: a partial frame dropped after line silence, the safety supervisor, EEPROM writes, telemetry, LED.
void pen_housekeeping(void);

// The link's state, for checks from outside (the host build's tests and fuzzer).
const struct link_parser *pen_link_parser(void);
const struct link_session *pen_link_session(void);
