// Reset-cause handoff, force-included into the Optiboot build (Makefile, -include): Optiboot reads MCUSR and clears it
// before it starts the application, which then cannot tell why the chip reset. Here every MCUSR access in Optiboot
// also ORs the live reset flags into a RAM byte that survives resets, where the application reads them (board.c).
// After a reset on the reset pin (or the serial port's DTR), Optiboot waits for a programmer and leaves by a watchdog
// reset: the byte then holds EXTRF and WDRF, and the application reports an external reset, not a watchdog bite.
#pragma once
#include <avr/io.h>  // MCUSR (I/O 0x34), _SFR_IO8; its include guard keeps optiboot.c's own include from undoing this

#ifndef RESET_HANDOFF_ADDRESS
#error "RESET_HANDOFF_ADDRESS comes from the Makefile: below the bootloader's stack, above the application's"
#endif

#define RESET_HANDOFF (*(volatile uint8_t *)RESET_HANDOFF_ADDRESS)

// Still an lvalue (Optiboot writes MCUSR = 0), so every read and write goes through the OR first.
#undef MCUSR
#define MCUSR (*(RESET_HANDOFF |= _SFR_IO8(0x34), &_SFR_IO8(0x34)))
