//! Malicious: jumps into NK code, calling the body behind the gate
//! directly with an `nk_write` of the sealed system-call table (I4, I11).
//! The attack plays a compromised loader and resolves `evil_gate_body`,
//! `evil_syscall_slot` and `evil_src` (the direct-map address of the new
//! handler's address) for it. On the protected kernel the body runs
//! without the gate's lift, so its first write to NK data faults; on
//! `native` the write lands, and the attack puts the entry back.
#![no_std]

nkmod::module! { name: "evil_nkcall", version: "1", license: "MIT OR Apache-2.0", init: init, exit: exit }

core::arch::global_asm!(
    ".pushsection .data.evil_args, \"aw\"",
    ".p2align 3",
    ".globl evil_nkcall_args",
    "evil_nkcall_args:",
    ".quad evil_gate_body, evil_syscall_slot, evil_src",
    ".popsection",
);

unsafe extern "C" {
    static evil_nkcall_args: [u64; 3];
}

/// `nk::GateResult`: two words, returned in rax and rdx.
#[repr(C)]
struct GateResult {
    status: u64,
    value: u64,
}

/// The gate's operation number for `nk_write` (nk/src/api.rs).
const NK_WRITE: u64 = 18;

fn init() -> Result<(), nkmod::Errno> {
    // SAFETY: the loader filled the three words.
    let [body, slot, src] = unsafe { evil_nkcall_args };
    // SAFETY: deliberately not: NK code entered past its gate.
    let body: extern "C" fn(u64, u64, u64, u64, u64) -> GateResult = unsafe { core::mem::transmute(body as usize) };
    let r = body(NK_WRITE, slot, src, 8, 0);
    Err(nkmod::Errno(if r.status == 0 { evil::PAYLOAD_RAN } else { evil::PAYLOAD_FAILED }))
}

fn exit() {}
