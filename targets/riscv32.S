/* riscv32.S: start-up of the RV32 test firmware (qemu-system-riscv32 -M virt -bios
 * none). QEMU jumps to the ELF entry, _start, in machine mode. */
    .section .text.start, "ax"
    .global _start
_start:
    .option arch, +zicsr        /* binutils >= 2.38 wants Zicsr named for csr* */
    .option push
    .option norelax
    la gp, __global_pointer$
    .option pop
    la sp, __stack_top
    la t0, trap_handler
    csrw mtvec, t0
#if defined(__riscv_flen)
    /* mstatus.FS = initial before the first float instruction, or the core traps. */
    li t0, 0x6000
    csrs mstatus, t0
#endif
    call board_start
1:  j 1b

    .balign 4
trap_handler:
    la sp, __stack_top          /* a fresh stack: the trap may come from a broken one */
    call board_fault
2:  j 2b

/* long board_semihost(long op, void *arg): a0 = operation, a1 = argument block. The
   three instructions must be uncompressed and in one page (the semihosting spec). */
    .text
    .balign 16
    .global board_semihost
board_semihost:
    .option push
    .option norvc
    slli x0, x0, 0x1f
    ebreak
    srai x0, x0, 7
    .option pop
    ret
