/* board.h: what a test driver needs from a bare-metal board under QEMU.
 *
 * Implemented by board.c (semihosting file and console I/O, a bump heap, the C start)
 * on top of one architecture primitive, board_semihost() (cortex-m.S, riscv32.S).
 * The generated model code does not use any of it: it needs no libc at all. */
#ifndef EDGEC_BOARD_H
#define EDGEC_BOARD_H

#include <stddef.h>

/* One semihosting call: `op` with the argument block `arg`; returns the host's r0/a0. */
long board_semihost(long op, void *arg);

/* Console: writes a NUL-terminated string (SYS_WRITE0). */
void board_puts(const char *s);
/* Ends the program; QEMU exits with `code` (SYS_EXIT_EXTENDED). */
void board_exit(int code);

/* Files on the host, relative to QEMU's working directory. */
long board_file_size(const char *name);                        /* -1: cannot open */
int board_read_file(const char *name, void *p, size_t size);   /* 0: read all `size` bytes */
int board_write_file(const char *name, const void *p, size_t size); /* 0: ok */

/* The heap (the board's large RAM region, see the linker script): zeroed blocks
 * aligned to 16 bytes. Freeing is last-in first-out: freeing the newest block pops
 * it, freeing an older one does nothing. board_alloc never returns NULL: running out
 * ends the program with exit code 3 and a message. */
void *board_alloc(size_t size);
void board_free(void *p);

#endif
