/* Cortex-M7 start-up: vector table (QEMU reads SP and PC at address 0), reset handler
 * (enable the FPU before any float instruction, copy .data, clear .bss, call main,
 * exit QEMU with its status), and the semihosting call. */
    .syntax unified
    .thumb

    .section .vectors, "a"
    .balign 4
    .word __stack_top
    .word reset_handler
    .rept 14
    .word fault_handler
    .endr

    .text
    .thumb_func
    .global reset_handler
reset_handler:
    ldr r0, =__stack_top
    mov sp, r0
    ldr r0, =0xE000ED88         /* CPACR: full access to CP10/CP11 */
    ldr r1, [r0]
    orr r1, r1, #(0xF << 20)
    str r1, [r0]
    dsb
    isb
    ldr r0, =__data_start       /* .data from its load image in flash */
    ldr r1, =__data_end
    ldr r2, =__data_load
1:  cmp r0, r1
    bhs 2f
    ldr r3, [r2], #4
    str r3, [r0], #4
    b 1b
2:  ldr r0, =__bss_start        /* .bss = 0 */
    ldr r1, =__bss_end
    movs r2, #0
3:  cmp r0, r1
    bhs 4f
    str r2, [r0], #4
    b 3b
4:  bl main
    bl semihost_exit
5:  b 5b

    .thumb_func
fault_handler:
    movs r0, #70
    bl semihost_exit
6:  b 6b

/* long semihost(long op, void *arg) */
    .thumb_func
    .global semihost
semihost:
    bkpt 0xab
    bx lr
