//! The NK's operations as the gate dispatches them, and the typed wrappers
//! the outer kernel calls. Arguments cross the gate as raw integers: they are
//! allegations until the operation has checked them.

use crate::cpu_state::{self, CpuStateError, Register};
use crate::gate::{self, GateResult};
use crate::services::{self, Refusal};
use crate::vmmu::{self, BatchFailure};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};
use nk_model::chain::AuditEntry;
use nk_model::mediate::{MediateError, Policy};
use nk_model::vmmu::{BatchError, Entry, Report, VmmuError, Wire};

pub use crate::vmmu::{BatchOp, MAX_BATCH, frame_count, frame_kind, kernel_root};

/// Declares the operations once: their numbers, names and the enum the
/// dispatcher, the counters and the wrappers all derive from.
macro_rules! operations {
    ($($(#[$doc:meta])* $variant:ident = $number:literal, $name:literal;)*) => {
        /// An NK operation: the gate's first argument.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u64)]
        pub enum Op {
            $($(#[$doc])* $variant = $number,)*
        }

        impl Op {
            /// Every operation, in number order.
            pub const ALL: [Op; [$($number),*].len()] = [$(Op::$variant),*];

            /// The operation a raw gate argument names, if any.
            pub const fn from_raw(raw: u64) -> Option<Op> {
                match raw {
                    $($number => Some(Op::$variant),)*
                    _ => None,
                }
            }

            /// Its name, as `nk stat` prints it.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Op::$variant => $name,)*
                }
            }
        }
    };
}

operations! {
    /// Does nothing: measures a gate round trip.
    Nop = 0, "nop";
    DeclarePtp = 1, "declare_ptp";
    RemovePtp = 2, "remove_ptp";
    WritePte = 3, "write_pte";
    WritePtes = 4, "write_ptes";
    LoadCr3 = 5, "load_cr3";
    FlushTlb = 6, "flush_tlb";
    SetTrapHandler = 7, "set_trap_handler";
    SetCr0 = 8, "set_cr0";
    SetCr4 = 9, "set_cr4";
    WriteMsr = 10, "write_msr";
    /// Times the gate's own lift and re-arm (for benchmarks).
    MeasureToggle = 11, "measure_toggle";
    Audit = 12, "audit";
    MapCode = 13, "map_code";
    SetSyscallEntry = 14, "set_syscall_entry";
    SetKernelStack = 15, "set_kernel_stack";
    NkAlloc = 16, "nk_alloc";
    NkDeclare = 17, "nk_declare";
    NkWrite = 18, "nk_write";
    NkFree = 19, "nk_free";
    AuditAppend = 20, "audit_append";
    AuditSwitch = 21, "audit_switch";
    ReleaseCode = 22, "release_code";
    /// A context switch: kernel stack, FS base and CR3 in one crossing.
    Switch = 23, "switch";
}

// The numbers are the indices of `Op::ALL`: the counters rely on it.
const _: () = {
    let mut i = 0;
    while i < Op::ALL.len() {
        assert!(Op::ALL[i] as usize == i);
        i += 1;
    }
};

fn call(op: Op, a0: u64, a1: u64, a2: u64) -> GateResult {
    gate::call(op as u64, a0, a1, a2)
}

/// A refusal, as it comes back through the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NkError {
    /// Another call of this CPU is inside the NK (an NMI re-entered it).
    Busy,
    /// The gate's protection-lifting step was skipped (a jump into the gate).
    NotEntered,
    /// Unknown operation number.
    BadOperation,
    /// A control-register or MSR write the NK refused.
    CpuState(CpuStateError),
    /// A page-table operation the vMMU refused; in a batch, `index` is the
    /// refused operation (those before it were applied).
    Vmmu { error: VmmuError, index: Option<usize> },
    /// A batch operation of no known kind; those before it were applied.
    BadBatchOp { index: usize },
    /// A batch buffer outside the direct map of RAM, or longer than `MAX_BATCH`.
    BadBatchBuffer,
    /// This backend does not offer the operation (auditing on `native`).
    Unsupported,
    /// A write-mediation call its rules refused.
    Mediate(MediateError),
}

impl core::fmt::Display for NkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Busy => f.write_str("the NK is busy on this CPU"),
            Self::NotEntered => f.write_str("the NK was not entered through its gate"),
            Self::BadOperation => f.write_str("unknown NK operation"),
            Self::CpuState(e) => write!(f, "{}", e),
            Self::Vmmu { error, index: None } => write!(f, "vMMU refused: {error}"),
            Self::Vmmu { error, index: Some(i) } => write!(f, "vMMU refused operation {i} of the batch: {error}"),
            Self::BadBatchOp { index } => write!(f, "operation {index} of the batch has no known kind"),
            Self::BadBatchBuffer => f.write_str("the batch is not in the direct map of RAM or is too long"),
            Self::Unsupported => f.write_str("not offered by this backend"),
            Self::Mediate(e) => write!(f, "{e}"),
        }
    }
}

// Refusals cross the gate as a status code and one detail word.
const STATUS_PINNED: u64 = 0x200;
const STATUS_FORBIDDEN: u64 = 0x201;
const STATUS_MSR: u64 = 0x202;
const STATUS_CANONICAL: u64 = 0x203;
const STATUS_BATCH_KIND: u64 = 0x204;
const STATUS_BATCH_BUFFER: u64 = 0x205;
const STATUS_UNSUPPORTED: u64 = 0x206;
/// Write-mediation refusals: `0x400 | code`, the detail word in `detail`.
const STATUS_MEDIATE: u64 = 0x400;
/// vMMU refusals: `0x300 | code` in bits 0..16, the auxiliary word in bits
/// 16..48, the batch index plus one (0: not a batch) in bits 48..64; the
/// main word in `detail`.
const STATUS_VMMU: u64 = 0x300;

fn encode_vmmu(error: VmmuError, index: Option<usize>) -> GateResult {
    let w = error.to_wire();
    let index = index.map_or(0, |i| (i as u64 + 1).min(0xffff));
    GateResult { status: STATUS_VMMU | u64::from(w.code) | u64::from(w.aux) << 16 | index << 48, detail: w.main }
}

fn decode_vmmu(r: GateResult) -> NkError {
    let wire = Wire { code: (r.status & 0xff) as u32, main: r.detail, aux: (r.status >> 16) as u32 };
    let index = match r.status >> 48 {
        0 => None,
        i => Some(i as usize - 1),
    };
    match VmmuError::from_wire(wire) {
        Some(error) => NkError::Vmmu { error, index },
        None => NkError::BadOperation,
    }
}

fn vmmu_done(r: Result<(), VmmuError>) -> GateResult {
    r.map_or_else(|e| encode_vmmu(e, None), |()| GateResult::OK)
}

fn batch_done(r: Result<(), BatchFailure>) -> GateResult {
    match r {
        Ok(()) => GateResult::OK,
        Err(BatchFailure::Rule(BatchError { index, error })) => encode_vmmu(error, Some(index)),
        Err(BatchFailure::BadKind { index }) => GateResult { status: STATUS_BATCH_KIND, detail: index as u64 },
        Err(BatchFailure::BadBuffer) => GateResult { status: STATUS_BATCH_BUFFER, detail: 0 },
    }
}

fn encode_cpu(e: CpuStateError) -> GateResult {
    let (status, detail) = match e {
        CpuStateError::PinnedBit { reg, bit } => (STATUS_PINNED, (reg as u64) << 8 | u64::from(bit)),
        CpuStateError::ForbiddenBit { reg, bit } => (STATUS_FORBIDDEN, (reg as u64) << 8 | u64::from(bit)),
        CpuStateError::MsrNotAllowed { msr } => (STATUS_MSR, u64::from(msr)),
        CpuStateError::NonCanonical { msr } => (STATUS_CANONICAL, u64::from(msr)),
    };
    GateResult { status, detail }
}

fn decode(r: GateResult) -> Result<u64, NkError> {
    let reg = match r.detail >> 8 {
        0 => Register::Cr0,
        4 => Register::Cr4,
        _ => Register::Efer,
    };
    let bit = r.detail as u8;
    Err(match r.status {
        0 => return Ok(r.detail),
        gate::STATUS_BUSY => NkError::Busy,
        gate::STATUS_NOT_ENTERED => NkError::NotEntered,
        STATUS_PINNED => NkError::CpuState(CpuStateError::PinnedBit { reg, bit }),
        STATUS_FORBIDDEN => NkError::CpuState(CpuStateError::ForbiddenBit { reg, bit }),
        STATUS_MSR => NkError::CpuState(CpuStateError::MsrNotAllowed { msr: r.detail as u32 }),
        STATUS_CANONICAL => NkError::CpuState(CpuStateError::NonCanonical { msr: r.detail as u32 }),
        STATUS_BATCH_KIND => NkError::BadBatchOp { index: r.detail as usize },
        STATUS_BATCH_BUFFER => NkError::BadBatchBuffer,
        STATUS_UNSUPPORTED => NkError::Unsupported,
        s if s & 0xff00 == STATUS_VMMU => decode_vmmu(r),
        s if s & 0xff00 == STATUS_MEDIATE => {
            MediateError::from_wire((s & 0xff) as u32, r.detail).map_or(NkError::BadOperation, NkError::Mediate)
        }
        _ => NkError::BadOperation,
    })
}

/// Calls and refusals per operation number, for `nk stat`.
struct OpStat {
    calls: AtomicU64,
    refused: AtomicU64,
}

const OPS: usize = Op::ALL.len();
static STATS: [OpStat; OPS] = [const { OpStat { calls: AtomicU64::new(0), refused: AtomicU64::new(0) } }; OPS];
/// Operations applied or refused inside batches.
static BATCHED: AtomicU64 = AtomicU64::new(0);

/// One operation's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpCount {
    pub name: &'static str,
    pub calls: u64,
    pub refused: u64,
}

/// Calls and refusals of every operation so far, all CPUs.
pub fn op_counts() -> [OpCount; OPS] {
    core::array::from_fn(|i| OpCount {
        name: Op::ALL[i].name(),
        calls: STATS[i].calls.load(Ordering::Relaxed),
        refused: STATS[i].refused.load(Ordering::Relaxed),
    })
}

/// Operations carried inside `write_ptes` batches so far.
pub fn batched_ops() -> u64 {
    BATCHED.load(Ordering::Relaxed)
}

/// The last audit of each CPU, which the wrapper reads back on that CPU with
/// interrupts off, so no other audit can write the slot meanwhile.
struct AuditSlots([UnsafeCell<Option<Report>>; crate::MAX_CPUS]);

// SAFETY: each slot is written by the NK on its own CPU and read by `audit`
// on the same CPU, with interrupts off across both.
unsafe impl Sync for AuditSlots {}

static AUDITS: AuditSlots = AuditSlots([const { UnsafeCell::new(None) }; crate::MAX_CPUS]);

fn run_audit() -> GateResult {
    match vmmu::audit() {
        Some(report) => {
            // SAFETY: this CPU's slot; see `AuditSlots`.
            unsafe { *AUDITS.0[crate::percpu::current()].get() = Some(report) };
            GateResult { status: 0, detail: report.violations }
        }
        None => GateResult { status: STATUS_UNSUPPORTED, detail: 0 },
    }
}

/// The gate body's dispatch. Runs inside the NK with protection lifted.
pub(crate) fn dispatch(raw: u64, a0: u64, a1: u64, a2: u64, caller: u64) -> GateResult {
    let Some(op) = Op::from_raw(raw) else {
        return GateResult { status: gate::STATUS_BAD_OP, detail: raw };
    };
    let r = dispatch_op(op, a0, a1, a2, caller);
    let stat = &STATS[op as usize];
    stat.calls.fetch_add(1, Ordering::Relaxed);
    if r.status != 0 {
        stat.refused.fetch_add(1, Ordering::Relaxed);
    }
    r
}

fn services_done(r: Result<u64, Refusal>) -> GateResult {
    match r {
        Ok(detail) => GateResult { status: 0, detail },
        Err(Refusal::Rule(e)) => {
            let (code, detail) = e.to_wire();
            GateResult { status: STATUS_MEDIATE | u64::from(code), detail }
        }
        Err(Refusal::Frame(e)) => encode_vmmu(e, None),
    }
}

fn dispatch_op(op: Op, a0: u64, a1: u64, a2: u64, caller: u64) -> GateResult {
    let done = |r: Result<(), CpuStateError>| r.map_or_else(encode_cpu, |()| GateResult::OK);
    let accepted = |ok: bool, what: u64| match ok {
        true => GateResult::OK,
        false => GateResult { status: gate::STATUS_BAD_OP, detail: what },
    };
    match op {
        Op::Nop => GateResult { status: 0, detail: crate::cpu::read_rflags() & CONTROL_FLAGS },
        Op::DeclarePtp => vmmu_done(vmmu::declare(a0, a1)),
        Op::RemovePtp => vmmu_done(vmmu::remove(a0)),
        Op::WritePte => vmmu_done(vmmu::write(a0, a1, a2)),
        Op::WritePtes => {
            BATCHED.fetch_add(a1.min(MAX_BATCH), Ordering::Relaxed);
            write_batch(a0, a1, caller)
        }
        Op::LoadCr3 => vmmu_done(vmmu::load_cr3(a0)),
        Op::FlushTlb => {
            vmmu::flush();
            GateResult::OK
        }
        Op::Audit => run_audit(),
        Op::MapCode => vmmu_done(vmmu::map_code(a0, a1, a2)),
        Op::ReleaseCode => vmmu_done(vmmu::release_code(a0)),
        Op::SetSyscallEntry => accepted(crate::trap::set_syscall_entry(a0), a0),
        Op::SetKernelStack => accepted(crate::gdt::set_kernel_stack(a0), a0),
        Op::Switch => switch_parts(a0, a1, a2),
        Op::SetTrapHandler => accepted(crate::trap::install_handler(a0), a0),
        Op::SetCr0 => done(cpu_state::set_cr0(a0)),
        Op::SetCr4 => done(cpu_state::set_cr4(a0, &crate::boot_info::published().cpu)),
        Op::WriteMsr => done(cpu_state::write_msr(a0 as u32, a1)),
        // The gate measured its lift into `a0` (see `gate.rs`); the exit
        // adds the re-arm's ticks to the detail.
        Op::MeasureToggle => GateResult { status: 0, detail: if cfg!(feature = "native") { 0 } else { a0 } },
        Op::NkAlloc => services_done(services::alloc(a0, a1)),
        Op::NkDeclare => services_done(services::declare(a0, a1, a2).map(|()| 0)),
        Op::NkWrite => services_done(services::write(a0, a1, a2, caller).map(|()| 0)),
        Op::NkFree => services_done(services::free(a0).map(|()| 0)),
        Op::AuditAppend => services_done(services::audit(a0).map(|()| 0)),
        Op::AuditSwitch => services_done(services::audit_switch(a0, caller)),
    }
}

/// `switch`: each part as its own operation would do it, with the same
/// checks, in this order; `KEEP` leaves a part alone. The first refusal
/// ends the call with that part's error (the parts before it are done).
fn switch_parts(rsp0: u64, fs_base: u64, root: u64) -> GateResult {
    if rsp0 != KEEP && !crate::gdt::set_kernel_stack(rsp0) {
        return GateResult { status: gate::STATUS_BAD_OP, detail: rsp0 };
    }
    if fs_base != KEEP
        && let Err(e) = cpu_state::write_msr(crate::sites::MSR_FS_BASE, fs_base)
    {
        return encode_cpu(e);
    }
    if root != KEEP {
        return vmmu_done(vmmu::load_cr3(root));
    }
    GateResult::OK
}

/// `write_ptes`: the vMMU's operations in order, and between them the
/// switches and mediated writes the batch holds, each checked as its own
/// operation would be. The first refusal ends the batch: a vMMU refusal
/// names its index, another is that operation's own error.
#[inline(never)]
fn write_batch(ptr: u64, count: u64, caller: u64) -> GateResult {
    let mut reader = match vmmu::BatchReader::open(ptr, count) {
        Ok(reader) => reader,
        Err(e) => return batch_done(Err(e)),
    };
    loop {
        let r = match vmmu::write_batch(&mut reader) {
            Err(e) => return batch_done(Err(e)),
            Ok(None) => return GateResult::OK,
            Ok(Some(Entry::Switch { rsp0, fs_base, root })) => switch_parts(rsp0, fs_base, root),
            Ok(Some(Entry::NkWrite { dst, src, len })) => {
                services_done(services::write(dst, src, len, caller).map(|()| 0))
            }
            // The reader stops only at the other two.
            Ok(Some(Entry::Vmmu(_))) => GateResult { status: STATUS_BATCH_KIND, detail: 0 },
        };
        if r.status != 0 {
            return r;
        }
    }
}

/// A part of `switch` to leave as it is (no stack, FS base or root has
/// this value: it is neither aligned, canonical nor a frame).
pub const KEEP: u64 = u64::MAX;

/// Switches this CPU to a thread in one crossing: its kernel stack (the
/// one taken on an interrupt from user mode), FS base and root, each
/// `Some` only when it changes. Refused as the separate calls would be
/// (`set_kernel_stack`, `write_msr` of FS base, `load_cr3`), in that order.
#[inline(never)]
pub fn switch(rsp0: Option<u64>, fs_base: Option<u64>, root: Option<u64>) -> Result<(), NkError> {
    let keep = |v: Option<u64>| v.unwrap_or(KEEP);
    decode(call(Op::Switch, keep(rsp0), keep(fs_base), keep(root))).map(|_| ())
}

/// An empty NK call: one gate round trip, nothing else.
#[inline(never)]
pub fn nop() -> Result<(), NkError> {
    nop_flags().map(|_| ())
}

/// RFLAGS' control bits: TF, IF, DF, IOPL, NT, AC. The gate clears them all
/// for the NK, whatever the caller's.
pub const CONTROL_FLAGS: u64 = (1 << 8) | (1 << 9) | (1 << 10) | (3 << 12) | (1 << 14) | (1 << 18);

/// An empty NK call that returns the control bits of the RFLAGS the NK ran
/// it with (`CONTROL_FLAGS`): 0 on `wp`, whatever the caller had on `native`.
#[inline(never)]
pub fn nop_flags() -> Result<u64, NkError> {
    decode(call(Op::Nop, 0, 0, 0))
}

/// Writes CR0; refused if it would change a pinned bit (PE, PG, WP).
#[inline(never)]
pub fn set_cr0(value: u64) -> Result<(), NkError> {
    decode(call(Op::SetCr0, value, 0, 0)).map(|_| ())
}

/// Writes CR4; refused if it would change a pinned bit (PAE, PGE, SMEP, SMAP).
#[inline(never)]
pub fn set_cr4(value: u64) -> Result<(), NkError> {
    decode(call(Op::SetCr4, value, 0, 0)).map(|_| ())
}

/// Writes an allow-listed MSR (FS/GS bases, TSC deadline; EFER with LME,
/// LMA and NXE pinned).
#[inline(never)]
pub fn write_msr(msr: u32, value: u64) -> Result<(), NkError> {
    decode(call(Op::WriteMsr, u64::from(msr), value, 0)).map(|_| ())
}

/// TSC ticks of one raw protection toggle, measured by the gate around
/// its own lift and re-arm (each the CR0 write and its check): the
/// physical floor of a gate crossing. Zero on `native`, which has nothing
/// to toggle.
#[inline(never)]
pub fn measure_toggle() -> Result<u64, NkError> {
    decode(call(Op::MeasureToggle, 0, 0, 0))
}

/// Makes frame `pfn` a page-table page of `level` (1 to 4): its direct-map
/// alias turns read-only and it is zeroed (a level-4 table gets the kernel
/// half).
#[inline(never)]
pub fn declare_ptp(pfn: u64, level: u8) -> Result<(), NkError> {
    decode(call(Op::DeclarePtp, pfn, u64::from(level), 0)).map(|_| ())
}

/// Writes a kernel-executable leaf (entry `index` of level-1 table `table`).
/// A frame of data it maps is vetted first: refused if a protected
/// instruction starts at any byte offset; accepted, it is code, never
/// writable (so never give it back to the frame allocator) until
/// [`release_code`] makes it data again.
#[inline(never)]
pub fn map_code(table: u64, index: usize, pte: u64) -> Result<(), NkError> {
    decode(call(Op::MapCode, table, index as u64, pte)).map(|_| ())
}

/// Gives a frame [`map_code`] vetted back as data (a module's unload): it
/// must be mapped by nothing but its read-only direct-map alias. The NK
/// flushes the TLB, zeroes the frame and makes the alias writable again;
/// then the frame may go back to the frame allocator.
#[inline(never)]
pub fn release_code(pfn: u64) -> Result<(), NkError> {
    decode(call(Op::ReleaseCode, pfn, 0, 0)).map(|_| ())
}

/// Points this CPU's `syscall` instruction at `entry`, which must lie in
/// outer-kernel code; the NK sets the selectors and the flag mask itself.
#[inline(never)]
pub fn set_syscall_entry(entry: u64) -> Result<(), NkError> {
    decode(call(Op::SetSyscallEntry, entry, 0, 0)).map(|_| ())
}

/// Sets the stack this CPU takes on an interrupt from user mode.
#[inline(never)]
pub fn set_kernel_stack(rsp0: u64) -> Result<(), NkError> {
    decode(call(Op::SetKernelStack, rsp0, 0, 0)).map(|_| ())
}

/// Makes a page-table page nothing points at ordinary data again.
#[inline(never)]
pub fn remove_ptp(pfn: u64) -> Result<(), NkError> {
    decode(call(Op::RemovePtp, pfn, 0, 0)).map(|_| ())
}

/// Writes entry `index` of the page-table page `table`.
#[inline(never)]
pub fn write_pte(table: u64, index: usize, pte: u64) -> Result<(), NkError> {
    decode(call(Op::WritePte, table, index as u64, pte)).map(|_| ())
}

/// Applies `ops` in order in one gate crossing per `MAX_BATCH` operations;
/// stops at the first refusal (those before it stay applied). The buffer
/// must be in the direct map or the kernel image's data.
pub fn write_ptes(ops: &[BatchOp]) -> Result<(), NkError> {
    for (n, chunk) in ops.chunks(MAX_BATCH as usize).enumerate() {
        let va = chunk.as_ptr() as u64;
        // The image is linked at KERNEL_BASE + its physical address: name
        // the same bytes by their direct-map address, which the NK accepts.
        let va = match va.checked_sub(crate::layout::KERNEL_BASE) {
            Some(phys) => crate::layout::phys_to_virt(phys),
            None => va,
        };
        let r = decode(call(Op::WritePtes, va, chunk.len() as u64, 0));
        let offset = n * MAX_BATCH as usize;
        match r {
            Ok(_) => {}
            Err(NkError::Vmmu { error, index: Some(i) }) => {
                return Err(NkError::Vmmu { error, index: Some(i + offset) });
            }
            Err(NkError::BadBatchOp { index }) => return Err(NkError::BadBatchOp { index: index + offset }),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Switches this CPU to the declared level-4 table `root`.
#[inline(never)]
pub fn load_cr3(root: u64) -> Result<(), NkError> {
    decode(call(Op::LoadCr3, root, 0, 0)).map(|_| ())
}

/// Flushes this CPU's TLB, global translations included.
#[inline(never)]
pub fn flush_tlb() -> Result<(), NkError> {
    decode(call(Op::FlushTlb, 0, 0, 0)).map(|_| ())
}

/// Runs the invariant checker over every address space and the frame table
/// inside the NK. `Unsupported` on `native`, which keeps no frame table.
pub fn audit() -> Result<Report, NkError> {
    crate::cpu::without_interrupts(|| {
        decode(call(Op::Audit, 0, 0, 0))?;
        // SAFETY: this CPU's slot, just written by the NK on this CPU; with
        // interrupts off nothing else on this CPU can write it meanwhile.
        let report = unsafe { *AUDITS.0[crate::percpu::current()].get() };
        report.ok_or(NkError::BadOperation)
    })
}

/// Names kernel data by its direct-map address, which the NK accepts for
/// sources (the image is linked at `KERNEL_BASE` + its physical address).
pub fn direct_map(va: u64) -> u64 {
    match va.checked_sub(crate::layout::KERNEL_BASE) {
        Some(phys) => crate::layout::phys_to_virt(phys),
        None => va,
    }
}

/// Allocates `len` bytes of fresh, zeroed NK-protected memory under
/// `policy`: readable by the outer kernel, changed only by [`nk_write`].
#[inline(never)]
pub fn nk_alloc(len: usize, policy: Policy) -> Result<u64, NkError> {
    decode(call(Op::NkAlloc, len as u64, policy.as_raw(), 0))
}

/// Puts existing kernel data under `policy`: whole pages of the direct map
/// whose only mapping is the direct map itself. Their contents stay; from
/// now on only [`nk_write`] changes them (a write-once region is sealed).
#[inline(never)]
pub fn nk_declare(base: u64, len: usize, policy: Policy) -> Result<(), NkError> {
    decode(call(Op::NkDeclare, base, len as u64, policy.as_raw())).map(|_| ())
}

/// Writes `bytes` at `dst` inside a protected region, if its policy allows.
/// Always inlined: the NK logs the return address of the gate call, which
/// is then the caller's own code.
#[inline(always)]
pub fn nk_write(dst: u64, bytes: &[u8]) -> Result<(), NkError> {
    let src = direct_map(bytes.as_ptr() as u64);
    decode(call(Op::NkWrite, dst, src, bytes.len() as u64)).map(|_| ())
}

/// Frees a region that keeps nothing (never written, or never appended to).
#[inline(never)]
pub fn nk_free(base: u64) -> Result<(), NkError> {
    decode(call(Op::NkFree, base, 0, 0)).map(|_| ())
}

/// Appends one system call's record to the hash-chained audit log.
#[inline(never)]
pub fn audit_append(entry: &AuditEntry) -> Result<(), NkError> {
    let ptr = direct_map(entry as *const AuditEntry as u64);
    decode(call(Op::AuditAppend, ptr, 0, 0)).map(|_| ())
}

/// Switches the security monitor (`Lock`: on until the next boot). The
/// change goes into the audit chain with this call's return address; a
/// locked monitor refuses. Whether it is on now.
#[inline(never)]
pub fn audit_switch(request: nk_model::monitor::Request) -> Result<bool, NkError> {
    decode(call(Op::AuditSwitch, request.as_raw(), 0, 0)).map(|on| on != 0)
}

/// Gate crossings so far, all CPUs.
pub fn gate_crossings() -> u64 {
    gate::crossings()
}
