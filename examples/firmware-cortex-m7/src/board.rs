//! The board support this firmware needs, without dependencies: the Cortex-M start-up
//! (vector table at address 0, FPU on, `.data` copied, `.bss` cleared), semihosting
//! console output and exit — the same steps as the test firmware's targets/cortex-m.S,
//! so the example needs no crate beyond edgec's own (cortex-m-rt with a `memory.x`
//! would work too).

use core::fmt;

core::arch::global_asm!(
    r#"
    .section .vectors, "a"
    .balign 4
    .word __stack_top           /* QEMU takes the initial SP and PC from here */
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
    ldr r0, =0xE000ED88         /* CPACR: CP10/CP11 full access before any float */
    ldr r1, [r0]
    orr r1, r1, #(0xF << 20)
    str r1, [r0]
    dsb
    isb
    ldr r0, =__data_start
    ldr r1, =__data_end
    ldr r2, =__data_load
1:  cmp r0, r1
    bhs 2f
    ldr r3, [r2], #4
    str r3, [r0], #4
    b 1b
2:  ldr r0, =__bss_start
    ldr r1, =__bss_end
    movs r2, #0
3:  cmp r0, r1
    bhs 4f
    str r2, [r0], #4
    b 3b
4:  bl firmware_main
5:  b 5b

    .thumb_func
fault_handler:
    ldr r0, =__stack_top
    mov sp, r0
    bl firmware_fault
6:  b 6b
"#
);

extern "C" {
    static __flash_used: u8;
    static __ram_used: u8;
}

/// Bytes of flash and RAM the image uses (linker symbols of link.ld).
pub fn memory_used() -> (usize, usize) {
    // Only the symbols' addresses are read: they are the values.
    (core::ptr::addr_of!(__flash_used) as usize, core::ptr::addr_of!(__ram_used) as usize)
}

/// One semihosting call (`bkpt 0xab`, r0 = operation, r1 = argument block).
fn semihost(op: u32, arg: *const u8) -> u32 {
    let r;
    // SAFETY: the debugger (QEMU) handles the breakpoint; `arg` is valid for `op`.
    unsafe { core::arch::asm!("bkpt 0xab", inout("r0") op => r, in("r1") arg, options(nostack)) };
    r
}

/// The semihosting console (SYS_WRITE0 of NUL-terminated chunks).
pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut buf = [0u8; 129];
        for chunk in s.as_bytes().chunks(128) {
            buf[..chunk.len()].copy_from_slice(chunk);
            buf[chunk.len()] = 0;
            semihost(0x04, buf.as_ptr());
        }
        Ok(())
    }
}

/// Ends the program; QEMU exits with `code` (SYS_EXIT_EXTENDED, ADP_Stopped_ApplicationExit).
pub fn exit(code: u32) -> ! {
    let block = [0x20026u32, code];
    semihost(0x20, block.as_ptr().cast());
    loop {}
}

#[macro_export]
macro_rules! print {
    ($($t:tt)*) => {{ let _ = core::fmt::Write::write_fmt(&mut $crate::board::Console, format_args!($($t)*)); }};
}

#[macro_export]
macro_rules! println {
    ($($t:tt)*) => {{ $crate::print!($($t)*); $crate::print!("\n"); }};
}

#[no_mangle]
extern "C" fn firmware_fault() -> ! {
    println!("fault");
    exit(70)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("panic: {}", info);
    exit(101)
}
