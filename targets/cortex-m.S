/* cortex-m.S: start-up of the Cortex-M test firmware (mps2-an386, mps2-an500,
 * mps3-an547). QEMU takes the initial SP and PC from the vector table at address 0
 * (it ignores the ELF entry), so the table is the first thing in the image. */
    .syntax unified
    .thumb

    .section .vectors, "a"
    .global __vectors
    .balign 4
__vectors:
    .word __stack_top           /* initial SP */
    .word reset_handler         /* reset */
    .rept 14                    /* NMI, HardFault, MemManage, BusFault, UsageFault, */
    .word fault_handler         /* SecureFault, reserved, SVCall, DebugMon, ... SysTick */
    .endr
    .rept 32                    /* the first external interrupts: none is enabled */
    .word fault_handler
    .endr

    .text
    .thumb_func
    .global reset_handler
reset_handler:
    ldr r0, =__stack_top
    mov sp, r0
#if defined(__ARM_FP)
    /* Full access to CP10/CP11 (CPACR bits 20-23) before the first float instruction,
       or the core faults. */
    ldr r0, =0xE000ED88
    ldr r1, [r0]
    orr r1, r1, #(0xF << 20)
    str r1, [r0]
    dsb
    isb
#endif
    bl board_start
1:  b 1b

    .thumb_func
fault_handler:
    ldr r0, =__stack_top        /* a fresh stack: the fault may come from a broken one */
    mov sp, r0
    bl board_fault
2:  b 2b

/* long board_semihost(long op, void *arg): r0 = operation, r1 = argument block. */
    .thumb_func
    .global board_semihost
board_semihost:
    bkpt 0xab
    bx lr
