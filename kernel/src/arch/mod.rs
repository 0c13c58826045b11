//! Outer-kernel hardware access that needs no privilege from the NK: port
//! I/O, the local APIC's registers, the PIT, the TSC, and the interrupt flag.
#![allow(unsafe_code)]

pub mod fpu;
pub mod lapic;
pub mod pit;
pub mod rtc;
pub mod user;

use x86_64::instructions::{interrupts, port::Port};

pub fn enable_interrupts() {
    interrupts::enable();
}

pub fn disable_interrupts() {
    interrupts::disable();
}

pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    interrupts::without_interrupts(f)
}

/// Waits for the next interrupt with interrupts enabled (no lost wake-up).
pub fn wait_for_interrupt() {
    interrupts::enable_and_hlt();
}

/// CPUID leaf `leaf`: (eax, ebx, ecx, edx).
fn cpuid(leaf: u32) -> [u32; 4] {
    // CPUID only reads identification registers; every x86-64 CPU has it.
    let r = core::arch::x86_64::__cpuid(leaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// The CPU's vendor string (`GenuineIntel`, `AuthenticAMD`, ...).
pub fn cpu_vendor() -> alloc::string::String {
    let [_, b, c, d] = cpuid(0);
    let bytes: alloc::vec::Vec<u8> = [b, d, c].iter().flat_map(|w| w.to_le_bytes()).collect();
    alloc::string::String::from_utf8_lossy(&bytes).into_owned()
}

/// The CPU's brand string (CPUID 0x80000002..4), or "x86-64" without one.
pub fn cpu_brand() -> alloc::string::String {
    if cpuid(0x8000_0000)[0] < 0x8000_0004 {
        return "x86-64".into();
    }
    let bytes: alloc::vec::Vec<u8> =
        (0x8000_0002..=0x8000_0004).flat_map(|l| cpuid(l).into_iter().flat_map(u32::to_le_bytes)).collect();
    let s = alloc::string::String::from_utf8_lossy(&bytes);
    s.trim_matches(|c: char| c == '\0' || c.is_whitespace()).into()
}

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Executes INT3 (used by tests and `crash breakpoint`).
pub fn breakpoint() {
    x86_64::instructions::interrupts::int3();
}

/// Writes a byte to an I/O port.
///
/// Kept private to this module's users by being `pub(crate)`; each caller
/// names the device it drives.
pub(crate) fn outb(port: u16, value: u8) {
    // SAFETY: callers pass legacy PC ports (PIC, PIT, CMOS RTC, debug exit)
    // whose writes have no effect on memory.
    unsafe { Port::<u8>::new(port).write(value) };
}

pub(crate) fn inb(port: u16) -> u8 {
    // SAFETY: as for `outb`; reads of these ports have no memory effects.
    unsafe { Port::<u8>::new(port).read() }
}

/// Remaps the legacy 8259 PICs away from the exception vectors and masks
/// them: the local APIC delivers everything we use.
pub fn disable_legacy_pic() {
    const PIC1_CMD: u16 = 0x20;
    const PIC1_DATA: u16 = 0x21;
    const PIC2_CMD: u16 = 0xa0;
    const PIC2_DATA: u16 = 0xa1;
    outb(PIC1_CMD, 0x11); // ICW1: init, ICW4 follows
    outb(PIC2_CMD, 0x11);
    outb(PIC1_DATA, PIC_SPURIOUS_BASE); // ICW2: vector base
    outb(PIC2_DATA, PIC_SPURIOUS_BASE + 8);
    outb(PIC1_DATA, 4); // ICW3: slave on IRQ2
    outb(PIC2_DATA, 2);
    outb(PIC1_DATA, 1); // ICW4: 8086 mode
    outb(PIC2_DATA, 1);
    outb(PIC1_DATA, 0xff); // mask all
    outb(PIC2_DATA, 0xff);
}

/// Vectors 0xe0..0xf0 can only be spurious interrupts of the masked PICs.
pub const PIC_SPURIOUS_BASE: u8 = 0xe0;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ExitCode {
    Success,
    Failure,
}

/// Ends the run: isa-debug-exit when QEMU has it (status 33 for success,
/// 35 for failure), else ACPI power-off (QEMU q35/PIIX PM1a), else halt.
pub fn exit_qemu(code: ExitCode) -> ! {
    disable_interrupts();
    outb(0xf4, if code == ExitCode::Success { 0x10 } else { 0x11 });
    // SAFETY: the ACPI PM1a control port of QEMU's chipsets; SLP_EN|SLP_TYP=0.
    unsafe { Port::<u16>::new(0x604).write(0x2000) };
    loop {
        x86_64::instructions::hlt();
    }
}
