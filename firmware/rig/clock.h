// The rig's millisecond clock, from Timer0's overflow (Timer0 also runs the PWM of D5 and D6).
#pragma once
#include <stdint.h>  // uint32_t

void clock_init(void);
uint32_t clock_ms(void);
