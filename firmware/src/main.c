// Main: start-up, then the main loop forever, kicking the watchdog once a pass (src/pen.c holds what a pass does).
#include <avr/interrupt.h> // sei
#include "board.h"         // board_watchdog_kick
#include "pen.h"           // pen_init, pen_take_bytes, pen_housekeeping

int main(void) {
  pen_init();
  sei();
  for (;;) {
    board_watchdog_kick();
    pen_take_bytes();
    pen_housekeeping();
  }
}
